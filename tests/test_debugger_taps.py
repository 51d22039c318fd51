"""Debugger taps: near-free with no viewer, coalesced into few messages, lossy with a count."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import orjson
import pytest

from cdp.debugger import stages
from cdp.debugger.taps import MESSAGE_TYPE, Taps, source_group
from cdp.tracking.http import HttpError
from tests.support.delivery import ingest, track

GROUP = source_group(1)


def quiet_taps(watched: set[str], **options) -> Taps:
    """Taps that already know who watches and have no background thread (the test flushes)."""
    taps = Taps(**options)
    taps._thread = threading.current_thread()
    taps._watched = frozenset(watched)
    return taps


def decoded(message: dict) -> dict:
    assert message["type"] == MESSAGE_TYPE
    return orjson.loads(message["text"])


def test_taps_with_no_viewer_keep_nothing_and_build_nothing():
    taps = quiet_taps(set())
    built = []

    for _ in range(1000):
        taps.publish(GROUP, lambda limit: built.append(1) or [{}])

    assert taps.take() == {} and built == []


def test_taps_with_no_viewer_cost_about_a_set_lookup():
    taps = quiet_taps({source_group(2)})
    started = time.perf_counter()
    for _ in range(100_000):
        taps.publish(GROUP, {"kind": "accepted"})
    per_call = (time.perf_counter() - started) / 100_000
    assert per_call < 5e-6, f"{per_call * 1e9:.0f} ns per publish() with nobody watching"


def test_taps_coalesce_many_items_into_one_message_per_group():
    other = source_group(2)
    taps = quiet_taps({GROUP, other})
    for number in range(50):
        taps.publish(GROUP, {"n": number})
    taps.publish(other, lambda limit: [{"n": "a"}, {"n": "b"}], count=2)

    messages = taps.take()

    assert set(messages) == {GROUP, other}
    assert decoded(messages[GROUP]) == {"kind": "live", "items": [{"n": n} for n in range(50)], "dropped": 0}
    assert decoded(messages[other])["items"] == [{"n": "a"}, {"n": "b"}]
    assert taps.take() == {}


def test_taps_drop_the_oldest_when_the_buffer_is_full_and_count_them():
    taps = quiet_taps({GROUP}, max_entries=10)
    for number in range(20):
        taps.publish(GROUP, lambda limit, number=number: [{"n": number}] * 3, count=3)

    message = decoded(taps.take()[GROUP])

    assert message["dropped"] == 30
    assert [item["n"] for item in message["items"]] == [n for n in range(10, 20) for _ in range(3)]


def test_taps_message_keeps_the_newest_items_and_counts_the_rest():
    taps = quiet_taps({GROUP}, max_items=5)
    taps.publish(GROUP, lambda limit: [{"n": n} for n in range(4)], count=4)
    taps.publish(GROUP, lambda limit: [{"n": n} for n in range(4, 8)][-limit:], count=4)

    message = decoded(taps.take()[GROUP])

    assert [item["n"] for item in message["items"]] == [3, 4, 5, 6, 7]
    assert message["dropped"] == 3


def test_taps_flush_a_group_under_pressure_half_as_often():
    busy, quiet = source_group(1), source_group(2)
    taps = quiet_taps({busy, quiet}, max_items=2, flush_seconds=0.4)
    for group, count in ((busy, 5), (quiet, 1)):
        for number in range(count):
            taps.publish(group, {"n": number})
    assert set(taps.take()) == {busy, quiet}

    time.sleep(0.32)  # the quiet group is due after 0.3 s, the busy one after 0.7 s
    taps.publish(busy, {"n": 5})
    taps.publish(quiet, {"n": 1})
    assert set(taps.take()) == {quiet}
    time.sleep(0.45)
    assert decoded(taps.take()[busy])["items"] == [{"n": 5}]


def test_taps_count_a_failing_builder_as_dropped_instead_of_raising():
    taps = quiet_taps({GROUP})
    taps.publish(GROUP, lambda limit: 1 / 0, count=4)
    taps.publish(GROUP, {"n": 1})

    assert decoded(taps.take()[GROUP]) == {"kind": "live", "items": [{"n": 1}], "dropped": 4}


def test_taps_forget_buffered_items_of_a_group_nobody_watches_any_more():
    taps = quiet_taps({GROUP})
    taps.publish(GROUP, {"n": 1})
    taps._watched = frozenset()
    assert taps.take() == {}


def test_taps_take_an_unreachable_redis_for_nobody_watching(settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # the discard port: refused at once
    taps = quiet_taps({GROUP})
    taps.refresh()
    assert not taps.watching(GROUP)


def test_taps_before_the_first_read_buffer_and_let_the_flush_decide():
    taps = Taps()
    taps._start = lambda: None  # no thread: the test plays its part
    taps.publish(GROUP, {"n": 1})
    taps.publish(source_group(2), {"n": 2})
    taps._watched = frozenset({GROUP})
    assert set(taps.take()) == {GROUP}


def test_stages_accepted_single_call_carries_the_endpoint_type(monkeypatch):
    taps = quiet_taps({GROUP})
    monkeypatch.setattr(stages, "taps", taps)
    body = orjson.dumps({"userId": "ada", "traits": {"plan": "pro"}, "messageId": "m-1"})

    stages.accepted(1, "identify", body, datetime(2026, 1, 2, tzinfo=UTC), 1, [])

    [item] = decoded(taps.take()[GROUP])["items"]
    assert (item["kind"], item["type"], item["userId"], item["messageId"]) == ("accepted", "identify", "ada", "m-1")
    assert item["at"] == "2026-01-02T00:00:00+00:00" and item["endpoint"] == "identify"


def test_stages_refused_request_is_shown_on_its_source(monkeypatch, source):
    taps = quiet_taps({source_group(source.pk)})
    monkeypatch.setattr(stages, "taps", taps)
    scope = {
        "method": "POST",
        "path": "/v1/batch",
        "headers": [],
        "query_string": f"writeKey={source.write_key}".encode(),
    }

    stages.refused(scope, HttpError(429, "rate_limited", "this source may send 10 events per second"))
    stages.refused({**scope, "query_string": b"writeKey=unknown"}, HttpError(401, "invalid_write_key", "unknown"))

    [item] = decoded(taps.take()[source_group(source.pk)])["items"]
    assert (item["kind"], item["status"], item["code"]) == ("refused", 429, "rate_limited")


@pytest.mark.django_db
def test_stages_processor_reports_stored_and_duplicates_for_watched_sources_only(monkeypatch, source):
    taps = quiet_taps({source_group(source.pk)})
    monkeypatch.setattr(stages, "taps", taps)

    ingest(source, track(messageId="s-1"), track(messageId="s-2"))
    ingest(source, track(messageId="s-1"))

    items = [item for message in taps.take().values() for item in decoded(message)["items"]]
    assert [(i["kind"], i["messageId"]) for i in items] == [("stored", "s-1"), ("stored", "s-2"), ("duplicate", "s-1")]


def test_stages_accepted_big_batch_shapes_only_the_newest_messages(monkeypatch):
    taps = quiet_taps({GROUP}, max_items=50)
    monkeypatch.setattr(stages, "taps", taps)
    batch = [{"type": "track", "event": f"E{n}", "userId": "u", "messageId": f"m-{n}"} for n in range(300)]

    stages.accepted(1, "batch", orjson.dumps({"batch": batch}), datetime.now(UTC), 300, [])

    message = decoded(taps.take()[GROUP])
    assert [item["messageId"] for item in message["items"]] == [f"m-{n}" for n in range(250, 300)]
    assert message["dropped"] == 250
