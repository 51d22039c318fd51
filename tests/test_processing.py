"""The processor: intake requests in, normalised, deduplicated events (or rejections) out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cdp.core.models import Source
from cdp.processing.models import Event, RejectedMessage
from cdp.processing.processor import process_pending
from cdp.processing.tasks import process_intake, purge_intake
from cdp.tracking.models import IntakeRequest

RECEIVED = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)


def intake(
    source: Source,
    body: dict[str, Any] | bytes,
    endpoint: str = "batch",
    received_at: datetime = RECEIVED,
    ip: str = "",
) -> IntakeRequest:
    """An accepted request as the Tracking API writes it."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return IntakeRequest.objects.create(source=source, received_at=received_at, endpoint=endpoint, body=raw, ip=ip)


def track(message_id: str | None = None, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "track", "event": "Order Completed", "userId": "u1", **fields}
    if message_id is not None:
        message["messageId"] = message_id
    return message


def batch(*messages: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {"batch": list(messages), **envelope}


def stored(source: Source, message_id: str) -> dict[str, Any]:
    return Event.objects.get(source=source, message_id=message_id).payload


@pytest.fixture
def source(make_workspace) -> Source:
    # no user in the workspace: hashing a password per test would double this module's runtime
    return Source.objects.create(workspace=make_workspace("acme"), name="Website", kind="website")


@pytest.fixture
def other_source(source: Source) -> Source:
    return Source.objects.create(workspace=source.workspace, name="Mobile app", kind="mobile")


# --- splitting ------------------------------------------------------------------------------


def test_process_pending_splits_batch_into_one_event_per_message(source):
    request = intake(source, batch(track("m1"), {"type": "identify", "userId": "u1", "messageId": "m2"}, track("m3")))

    result = process_pending()

    assert (result.requests, result.stored, result.duplicates, result.rejected) == (1, 3, 0, 0)
    events = list(Event.objects.filter(source=source).order_by("message_id"))
    assert [(e.message_id, e.type, e.intake_id) for e in events] == [
        ("m1", "track", request.id),
        ("m2", "identify", request.id),
        ("m3", "track", request.id),
    ]
    request.refresh_from_db()
    assert request.processed_at is not None


@pytest.mark.parametrize(
    ("endpoint", "expected_type"),
    [("track", "track"), ("t", "track"), ("identify", "identify"), ("i", "identify"), ("page", "page"),
     ("p", "page"), ("screen", "screen"), ("s", "screen"), ("group", "group"), ("g", "group"),
     ("alias", "alias"), ("a", "alias")],
)  # fmt: skip
def test_process_pending_single_call_takes_type_from_endpoint(source, endpoint, expected_type):
    # The body's own `type` (or none at all) never overrides the endpoint the client called.
    body = {"type": "screen" if expected_type != "screen" else "page", "userId": "u1", "messageId": "m1",
            "event": "Clicked", "groupId": "g1", "previousId": "old"}  # fmt: skip
    intake(source, body, endpoint=endpoint)

    process_pending()

    event = Event.objects.get(source=source)
    assert event.type == expected_type
    assert event.payload["type"] == expected_type


def test_process_pending_batch_accepts_every_message_type(source):
    messages = [
        {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}},
        {"type": "track", "userId": "u1", "event": "Signed Up"},
        {"type": "page", "anonymousId": "a1", "name": "Home"},
        {"type": "screen", "anonymousId": "a1", "name": "Settings"},
        {"type": "group", "userId": "u1", "groupId": "g1"},
        {"type": "alias", "userId": "u1", "previousId": "a1"},
    ]
    intake(source, batch(*messages), endpoint="import")

    process_pending()

    assert sorted(Event.objects.filter(source=source).values_list("type", flat=True)) == sorted(
        ["identify", "track", "page", "screen", "group", "alias"]
    )


# --- normalisation --------------------------------------------------------------------------


def test_process_pending_sets_received_at_from_intake(source):
    intake(source, batch(track("m1")), received_at=datetime(2024, 5, 1, 12, 0, 5, 123456, tzinfo=UTC))

    process_pending()

    event = Event.objects.get(source=source)
    assert event.received_at == datetime(2024, 5, 1, 12, 0, 5, 123456, tzinfo=UTC)
    assert event.payload["receivedAt"] == "2024-05-01T12:00:05.123Z"


def test_process_pending_without_any_time_uses_received_at_as_timestamp(source):
    intake(source, batch(track("m1")))

    process_pending()

    event = Event.objects.get(source=source)
    assert event.timestamp == RECEIVED
    assert event.payload["timestamp"] == "2024-05-01T12:00:05.000Z"
    assert event.payload["originalTimestamp"] is None


def test_process_pending_keeps_client_timestamp_when_there_is_no_sent_at(source):
    intake(source, batch(track("m1", timestamp="2024-04-30T08:15:00.250Z")))

    process_pending()

    event = Event.objects.get(source=source)
    assert event.timestamp == datetime(2024, 4, 30, 8, 15, 0, 250000, tzinfo=UTC)
    assert event.payload["timestamp"] == "2024-04-30T08:15:00.250Z"
    assert event.payload["originalTimestamp"] == "2024-04-30T08:15:00.250Z"


def test_process_pending_uses_original_timestamp_when_timestamp_is_missing(source):
    intake(source, batch(track("m1", originalTimestamp="2024-04-30T08:15:00.250Z")))

    process_pending()

    event = Event.objects.get(source=source)
    assert event.timestamp == datetime(2024, 4, 30, 8, 15, 0, 250000, tzinfo=UTC)
    assert event.payload["timestamp"] == "2024-04-30T08:15:00.250Z"


def test_process_pending_corrects_clock_skew_with_envelope_sent_at(source):
    # The client's clock is an hour fast: it says it sent the batch at 13:00:02 and the event
    # happened two seconds earlier; the server received it at 12:00:05, so it happened at 12:00:03.
    intake(
        source,
        batch(track("m1", timestamp="2024-05-01T13:00:00.000Z"), sentAt="2024-05-01T13:00:02.000Z"),
        received_at=RECEIVED,
    )

    process_pending()

    event = Event.objects.get(source=source)
    assert event.timestamp == datetime(2024, 5, 1, 12, 0, 3, tzinfo=UTC)
    assert event.payload["timestamp"] == "2024-05-01T12:00:03.000Z"
    assert event.payload["originalTimestamp"] == "2024-05-01T13:00:00.000Z"
    assert event.payload["sentAt"] == "2024-05-01T13:00:02.000Z"
    assert event.payload["receivedAt"] == "2024-05-01T12:00:05.000Z"


def test_process_pending_corrects_clock_skew_with_sent_at_on_the_event(source):
    # analytics-next: one event per request, sentAt inside the event, clock 10 minutes slow.
    body = track("m1", timestamp="2024-05-01T11:50:01.500Z", sentAt="2024-05-01T11:50:04.000Z")
    intake(source, body, endpoint="t", received_at=RECEIVED)

    process_pending()

    assert Event.objects.get(source=source).timestamp == datetime(2024, 5, 1, 12, 0, 2, 500000, tzinfo=UTC)


def test_process_pending_event_sent_at_wins_over_envelope_sent_at(source):
    message = track("m1", timestamp="2024-05-01T12:00:00.000Z", sentAt="2024-05-01T12:00:01.000Z")
    intake(source, batch(message, sentAt="2024-05-01T12:00:04.000Z"), received_at=RECEIVED)

    process_pending()

    assert Event.objects.get(source=source).timestamp == datetime(2024, 5, 1, 12, 0, 4, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("2024-04-30T08:15:00.250Z", datetime(2024, 4, 30, 8, 15, 0, 250000, tzinfo=UTC)),
        ("2024-04-30T08:15:00.250+00:00", datetime(2024, 4, 30, 8, 15, 0, 250000, tzinfo=UTC)),
        ("2024-04-30T08:15:00.250000Z", datetime(2024, 4, 30, 8, 15, 0, 250000, tzinfo=UTC)),
        ("2024-04-30T08:15:00.250987+00:00", datetime(2024, 4, 30, 8, 15, 0, 250000, tzinfo=UTC)),
        ("2024-04-30T10:15:00.250+02:00", datetime(2024, 4, 30, 8, 15, 0, 250000, tzinfo=UTC)),
        ("2024-04-30T08:15:00Z", datetime(2024, 4, 30, 8, 15, tzinfo=UTC)),
    ],
)
def test_process_pending_reads_every_timestamp_spelling(source, sent, expected):
    intake(source, batch(track("m1", timestamp=sent)))

    process_pending()

    event = Event.objects.get(source=source)
    assert event.timestamp == expected
    # Stored the way Segment writes times: UTC, millisecond precision, `Z`.
    assert event.payload["timestamp"] == expected.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_process_pending_skew_correction_mixes_z_and_offset_spellings(source):
    message = track("m1", timestamp="2024-05-01T12:00:00.000123Z")
    intake(source, batch(message, sentAt="2024-05-01T12:00:02.000123+00:00"), received_at=RECEIVED)

    process_pending()

    assert Event.objects.get(source=source).timestamp == datetime(2024, 5, 1, 12, 0, 3, tzinfo=UTC)


def test_process_pending_out_of_range_times_do_not_block_the_request(source):
    # Broken device clocks send anything; the message is still stored, timed by the server.
    messages = [
        track("m1", timestamp="0001-01-01T00:00:00+01:00"),
        track("m2", timestamp="0001-01-01T00:00:00Z", sentAt="9999-12-31T23:59:59Z"),
        track("m3", timestamp="9999-12-31T23:59:59Z", sentAt="0001-01-01T00:00:00Z"),
        track("m4", timestamp="not a time"),
        track("m5"),
    ]
    request = intake(source, batch(*messages))

    process_pending()

    request.refresh_from_db()
    assert request.processed_at is not None, request.error
    assert Event.objects.filter(source=source).count() == 5
    assert Event.objects.get(message_id="m4").timestamp == RECEIVED


def test_process_pending_generates_message_id_when_missing(source):
    intake(source, batch(track(), track(), track(messageId=None), track(messageId="")))

    process_pending()

    ids = list(Event.objects.filter(source=source).values_list("message_id", flat=True))
    assert len(ids) == 4
    assert len(set(ids)) == 4
    assert all(ids)
    assert sorted(ids) == sorted(e["messageId"] for e in Event.objects.values_list("payload", flat=True))


def test_process_pending_generated_message_id_is_stable_when_request_is_processed_again(source):
    request = intake(source, batch(track(), track(event="Second")))
    process_pending()
    first = sorted(Event.objects.values_list("message_id", flat=True))

    # e.g. a worker died after storing the events but the row was handed out again
    IntakeRequest.objects.filter(id=request.id).update(processed_at=None)
    result = process_pending()

    assert (result.requests, result.stored, result.duplicates) == (1, 0, 2)
    assert sorted(Event.objects.values_list("message_id", flat=True)) == first


@pytest.mark.parametrize(
    "message_id",
    [
        "node-next-1714564805123-9f0a3b0e-6c4d-4f5e-8a1b-2c3d4e5f6a7b",
        "ajs-next-1714564805123-2bd4c2d1-0e0f-4d8a-9c7e-1a2b3c4d5e6f",
        "python-d8a5f2e1a3b44c6d",
        "42",
    ],
)
def test_process_pending_keeps_non_uuid_message_ids(source, message_id):
    intake(source, batch(track(message_id)))

    process_pending()

    event = Event.objects.get(source=source)
    assert event.message_id == message_id
    assert event.payload["messageId"] == message_id


def test_process_pending_accepts_explicit_nulls(source):
    message = {
        "type": "track", "event": "Viewed", "userId": "u1", "anonymousId": None, "messageId": "m1",
        "properties": None, "context": None, "integrations": None, "timestamp": None, "sentAt": None,
    }  # fmt: skip
    identify = {"type": "identify", "userId": None, "anonymousId": "a1", "messageId": "m2", "traits": None}
    intake(source, batch(message, identify))

    process_pending()

    tracked = Event.objects.get(message_id="m1")
    assert (tracked.user_id, tracked.anonymous_id) == ("u1", "")
    assert tracked.payload["anonymousId"] is None
    assert tracked.payload["properties"] == {}
    assert tracked.timestamp == RECEIVED
    identified = Event.objects.get(message_id="m2")
    assert (identified.user_id, identified.anonymous_id) == ("", "a1")
    assert identified.payload["traits"] == {}


def test_process_pending_stores_numeric_ids_as_strings(source):
    messages = [
        {"type": "identify", "userId": 12345, "anonymousId": 987, "messageId": "m1"},
        {"type": "group", "userId": 12345, "groupId": 77, "messageId": "m2"},
        {"type": "alias", "userId": 12345, "previousId": 987, "messageId": "m3"},
    ]
    intake(source, batch(*messages))

    process_pending()

    event = Event.objects.get(message_id="m1")
    assert (event.user_id, event.anonymous_id) == ("12345", "987")
    assert (event.payload["userId"], event.payload["anonymousId"]) == ("12345", "987")
    assert Event.objects.filter(user_id="12345").count() == 3
    assert stored(source, "m2")["groupId"] == "77"
    assert stored(source, "m3")["previousId"] == "987"


def test_process_pending_keeps_identify_traits_at_the_root(source):
    message = {"type": "identify", "userId": "u1", "messageId": "m1", "traits": {"email": "a@example.com"},
               "context": {"traits": {"email": "old@example.com"}}}  # fmt: skip
    intake(source, batch(message))

    process_pending()

    assert stored(source, "m1")["traits"] == {"email": "a@example.com"}


def test_process_pending_takes_identify_traits_from_context_when_root_has_none(source):
    messages = [
        {"type": "identify", "userId": "u1", "messageId": "m1", "context": {"traits": {"plan": "pro"}}},
        {"type": "identify", "userId": "u2", "messageId": "m2", "traits": {}, "context": {"traits": {"plan": "free"}}},
    ]
    intake(source, batch(*messages))

    process_pending()

    assert stored(source, "m1")["traits"] == {"plan": "pro"}
    assert stored(source, "m1")["context"]["traits"] == {"plan": "pro"}
    assert stored(source, "m2")["traits"] == {"plan": "free"}


def test_process_pending_does_not_keep_write_key(source):
    # analytics-next puts the key in every event as well as in the envelope
    message = track("m1", writeKey=source.write_key)
    intake(source, batch(message, writeKey=source.write_key, sentAt="2024-05-01T12:00:04Z"))
    intake(source, track("m2", writeKey=source.write_key), endpoint="track")

    process_pending()

    for event in Event.objects.filter(source=source):
        assert "writeKey" not in event.payload
        assert source.write_key not in orjson.dumps(event.payload).decode()


def test_process_pending_applies_batch_context_and_integrations_to_every_message(source):
    messages = [
        track("m1"),
        track("m2", context={"locale": "fr-FR"}, integrations={"Mixpanel": True}),
        track("m3", context=None),
    ]
    envelope = {"context": {"device": {"type": "phone"}, "locale": "en-GB"}, "integrations": {"All": False}}
    intake(source, batch(*messages, **envelope))

    process_pending()

    assert stored(source, "m1")["context"] == {"device": {"type": "phone"}, "locale": "en-GB"}
    assert stored(source, "m1")["integrations"] == {"All": False}
    assert stored(source, "m2")["context"] == {"device": {"type": "phone"}, "locale": "fr-FR"}
    assert stored(source, "m2")["integrations"] == {"All": False, "Mixpanel": True}
    assert stored(source, "m3")["context"]["locale"] == "en-GB"


def test_process_pending_records_client_ip_in_context(source):
    intake(source, batch(track("m1"), track("m2", context={"ip": "10.1.2.3"})), ip="127.0.0.1")

    process_pending()

    assert stored(source, "m1")["context"]["ip"] == "127.0.0.1"
    assert stored(source, "m2")["context"]["ip"] == "10.1.2.3"


def test_process_pending_stores_strings_with_nul_characters(source):
    # JSON allows "\u0000"; PostgreSQL text and jsonb do not. The message must still be stored.
    messages = [
        track("m1", userId="u\u00001", properties={"note": "a\u0000b", "k\u0000": 1}),
        track("m2"),
    ]
    request = intake(source, batch(*messages))
    good = intake(source, batch(track("m3")))

    process_pending()

    request.refresh_from_db()
    good.refresh_from_db()
    assert request.processed_at is not None, request.error
    assert good.processed_at is not None
    assert Event.objects.filter(source=source).count() == 3
    event = Event.objects.get(message_id="m1")
    assert event.user_id == "u\ufffd1"
    assert event.payload["properties"] == {"note": "a\ufffdb", "k\ufffd": 1}


# --- deduplication --------------------------------------------------------------------------


def test_process_pending_same_batch_twice_stores_nothing_new(source):
    body = batch(track("m1"), track("m2"))
    intake(source, body)
    intake(source, body)

    result = process_pending()

    assert (result.requests, result.stored, result.duplicates) == (2, 2, 2)
    assert Event.objects.filter(source=source).count() == 2


def test_process_pending_same_batch_in_a_later_run_stores_nothing_new(source):
    body = batch(track("m1"), track("m2"))
    intake(source, body)
    process_pending()
    intake(source, body)

    result = process_pending()

    assert (result.stored, result.duplicates) == (0, 2)
    assert Event.objects.filter(source=source).count() == 2


def test_process_pending_duplicates_inside_one_batch_are_stored_once(source):
    intake(source, batch(track("m1", event="First"), track("m1", event="Second"), track("m2")))

    result = process_pending()

    assert (result.stored, result.duplicates) == (2, 1)
    assert Event.objects.get(message_id="m1").event == "First"


def test_process_pending_same_message_id_in_two_sources_is_stored_twice(source, other_source):
    intake(source, batch(track("shared")))
    intake(other_source, batch(track("shared")))

    process_pending()

    assert Event.objects.filter(message_id="shared").count() == 2
    assert Event.objects.get(source=source, message_id="shared")
    assert Event.objects.get(source=other_source, message_id="shared")


def test_process_pending_drops_duplicate_arriving_after_more_than_a_day(source):
    intake(source, batch(track("m1")))
    process_pending()
    Event.objects.filter(message_id="m1").update(received_at=timezone.now() - timedelta(days=3))

    intake(source, batch(track("m1", event="Retried")), received_at=timezone.now())
    result = process_pending()

    assert (result.stored, result.duplicates) == (0, 1)
    assert list(Event.objects.values_list("event", flat=True)) == ["Order Completed"]


# --- bulk writes ----------------------------------------------------------------------------


# The dashboard's aggregates (cdp/insights) add a fixed number of queries per batch, whatever its size: a
# savepoint and its release, one upsert each for events per hour and per minute and the observed events, the
# sources' workspaces, and for the tracked users a look-up of the identities seen, the new ones inserted and the
# month's counts (the observed fields add one more when events have properties; these have none).
INSIGHTS_QUERIES = 8


def test_process_pending_writes_500_messages_in_a_constant_number_of_queries(source, django_assert_max_num_queries):
    intake(source, batch(track("single")))
    with CaptureQueriesContext(connection) as single:
        process_pending()
    intake(source, batch(*[track(f"m{i}") for i in range(500)]))

    # 7 to claim, store and mark, 2 for routing (the sources' workspaces, their destinations), the aggregates.
    with django_assert_max_num_queries(9 + INSIGHTS_QUERIES), CaptureQueriesContext(connection) as bulk:
        result = process_pending()

    assert result.stored == 500
    # Not more than for one event (which, its user being new, also inserted the identity and the month's count).
    assert len(bulk) <= len(single)


def test_process_pending_writes_many_requests_without_a_query_per_event(source, django_assert_max_num_queries):
    for r in range(20):
        intake(source, batch(*[track(f"r{r}-{i}") for i in range(100)]))
    with django_assert_max_num_queries(13 + INSIGHTS_QUERIES):
        result = process_pending()
    assert (result.requests, result.stored) == (20, 2000)


# --- rejected messages ----------------------------------------------------------------------


def test_process_pending_rejects_bad_messages_and_keeps_the_others(source):
    messages = [
        track("ok1"),
        {"type": "track", "userId": "u1", "messageId": "bad1"},
        {"type": "unknown", "userId": "u1", "messageId": "bad2"},
        {"type": "identify", "messageId": "bad3"},
        "not an object",
        {"type": "track", "event": "X", "userId": "u1", "properties": [1, 2]},
        track("ok2"),
    ]
    request = intake(source, batch(*messages))

    result = process_pending()

    assert (result.stored, result.rejected) == (2, 5)
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["ok1", "ok2"]
    rejected = {r.index: r for r in RejectedMessage.objects.filter(source=source)}
    assert {i: r.code for i, r in rejected.items()} == {
        1: "missing_event",
        2: "invalid_type",
        3: "missing_identity",
        4: "invalid_message",
        5: "invalid_field",
    }
    assert all(r.reason and r.intake_id == request.id and r.received_at == RECEIVED for r in rejected.values())
    assert orjson.loads(rejected[1].body) == messages[1]


def test_process_pending_rejects_oversized_message_in_a_batch(source, settings):
    big = track("big", properties={"blob": "x" * (settings.CDP_MAX_MESSAGE_BYTES + 10)})
    intake(source, batch(track("small"), big))

    process_pending()

    assert list(Event.objects.values_list("message_id", flat=True)) == ["small"]
    rejected = RejectedMessage.objects.get(source=source)
    assert (rejected.index, rejected.code) == (1, "message_too_large")
    assert len(rejected.body) <= 65536


def test_process_pending_rejections_match_the_tracking_api_answer(cdp_server, source):
    messages = [track("ok"), {"type": "track", "userId": "u1"}, {"type": "page"}]
    response = requests.post(
        f"{cdp_server.url}/v1/batch", auth=(source.write_key, ""), json=batch(*messages), timeout=5
    )
    assert response.status_code == 200
    answer = response.json()

    process_pending()

    assert answer["accepted"] == 1
    assert list(Event.objects.values_list("message_id", flat=True)) == ["ok"]
    assert sorted((r.index, r.code) for r in RejectedMessage.objects.filter(source=source)) == sorted(
        (r["index"], r["code"]) for r in answer["rejected"]
    )


# --- failures -------------------------------------------------------------------------------


def test_process_pending_request_that_raises_stays_pending_and_others_are_processed(source, settings):
    before = intake(source, batch(track("m1")))
    broken = intake(source, b"{not json", endpoint="batch")
    after = intake(source, track("m2"), endpoint="track")

    result = process_pending()

    assert result.requests == 2
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["m1", "m2"]
    for request in (before, broken, after):
        request.refresh_from_db()
    assert before.processed_at is not None and after.processed_at is not None
    assert broken.processed_at is None
    assert broken.attempts == 1
    assert "JSONDecodeError" in broken.error

    # Its next attempt waits CDP_INTAKE_RETRY_SECONDS, so one drain cannot spend every attempt.
    process_pending()
    broken.refresh_from_db()
    assert broken.attempts == 1
    assert broken.retry_at > timezone.now()

    settings.CDP_INTAKE_RETRY_SECONDS = 0
    IntakeRequest.objects.filter(id=broken.id).update(retry_at=None)
    for _ in range(settings.CDP_INTAKE_MAX_ATTEMPTS + 2):
        process_pending()
    broken.refresh_from_db()
    assert broken.processed_at is None
    assert broken.attempts == settings.CDP_INTAKE_MAX_ATTEMPTS


def test_process_pending_request_failing_at_write_stays_pending_and_others_are_stored(source, monkeypatch):
    # Whatever the database refuses in one request must not hold up every other request.
    from cdp.processing import processor

    real_normalise = processor.normalise
    broken = intake(source, batch(track("bad"), track("fine-but-same-request")))
    good = intake(source, batch(track("good")))

    def unstorable(message: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        event = real_normalise(message, **kwargs)
        if event["messageId"] == "bad":
            event["messageId"] = {"not": "bindable"}  # serialisable, but no database driver binds a dict
        return event

    monkeypatch.setattr(processor, "normalise", unstorable)
    result = process_pending()

    broken.refresh_from_db()
    good.refresh_from_db()
    assert result.requests == 1
    assert list(Event.objects.values_list("message_id", flat=True)) == ["good"]
    assert good.processed_at is not None
    assert broken.processed_at is None
    assert broken.attempts == 1 and broken.error


# --- tasks ----------------------------------------------------------------------------------


def test_process_intake_drains_the_whole_backlog(source, settings):
    settings.CDP_PROCESS_BATCH_ROWS = 2
    for r in range(7):
        intake(source, batch(track(f"r{r}-a"), track(f"r{r}-b")))

    assert process_intake() == 7

    assert Event.objects.filter(source=source).count() == 14
    assert not IntakeRequest.objects.filter(processed_at__isnull=True).exists()
    assert process_intake() == 0


def test_purge_intake_removes_only_processed_rows_older_than_retention(source, settings):
    now = timezone.now()
    retention = timedelta(days=settings.CDP_INTAKE_RETENTION_DAYS)
    old_processed = intake(source, batch(track("m1")), received_at=now - retention - timedelta(days=2))
    recent_processed = intake(source, batch(track("m2")), received_at=now - retention)
    old_pending = intake(source, batch(track("m3")), received_at=now - retention * 3)
    IntakeRequest.objects.filter(id=old_processed.id).update(processed_at=now - retention - timedelta(hours=1))
    IntakeRequest.objects.filter(id=recent_processed.id).update(processed_at=now - retention + timedelta(hours=1))
    failed = intake(source, b"{not json", received_at=now - retention * 3)
    IntakeRequest.objects.filter(id=failed.id).update(attempts=settings.CDP_INTAKE_MAX_ATTEMPTS, error="boom")

    assert purge_intake() == 1

    assert set(IntakeRequest.objects.values_list("id", flat=True)) == {recent_processed.id, old_pending.id, failed.id}


def test_purge_intake_keeps_events_and_their_dedupe(source, settings):
    request = intake(source, batch(track("m1")))
    process_pending()
    IntakeRequest.objects.filter(id=request.id).update(
        processed_at=timezone.now() - timedelta(days=settings.CDP_INTAKE_RETENTION_DAYS + 1)
    )

    purge_intake()
    intake(source, batch(track("m1")))
    process_pending()

    assert not IntakeRequest.objects.filter(id=request.id).exists()
    assert Event.objects.filter(source=source, message_id="m1").count() == 1


# --- querying -------------------------------------------------------------------------------


def test_events_are_queryable_by_source_type_name_identity_id_and_time(source, other_source):
    messages = [
        track("t1", event="Signed Up", userId="u1", timestamp="2024-05-01T09:00:00Z"),
        track("t2", event="Order Completed", userId="u1", timestamp="2024-05-01T10:00:00Z"),
        {"type": "page", "anonymousId": "a1", "messageId": "p1", "timestamp": "2024-05-01T11:00:00Z"},
        {"type": "identify", "userId": "u2", "anonymousId": "a1", "messageId": "i1",
         "timestamp": "2024-04-29T11:00:00Z"},
    ]  # fmt: skip
    intake(source, batch(*messages))
    intake(other_source, batch(track("o1", event="Signed Up", userId="u1", timestamp="2024-05-01T09:30:00Z")))
    process_pending()

    def ids(**lookup: Any) -> list[str]:
        return sorted(Event.objects.filter(**lookup).values_list("message_id", flat=True))

    assert ids(source=source) == ["i1", "p1", "t1", "t2"]
    assert ids(source=other_source) == ["o1"]
    assert ids(source=source, type="track") == ["t1", "t2"]
    assert ids(event="Signed Up") == ["o1", "t1"]
    assert ids(source=source, user_id="u1") == ["t1", "t2"]
    assert ids(anonymous_id="a1") == ["i1", "p1"]
    assert ids(message_id="p1") == ["p1"]
    day = datetime(2024, 5, 1, tzinfo=UTC)
    assert ids(source=source, timestamp__gte=day, timestamp__lt=day + timedelta(hours=10, minutes=30)) == ["t1", "t2"]
    latest = Event.objects.filter(source=source).order_by("-timestamp").first()
    assert latest is not None and latest.message_id == "p1"
    assert ids(received_at__gte=RECEIVED - timedelta(seconds=1)) == ["i1", "o1", "p1", "t1", "t2"]


# --- through the Tracking API -----------------------------------------------------------------


def test_process_pending_stores_what_analytics_node_sends(cdp_server, source):
    sent_at = datetime.now(UTC)
    message_ids = [f"node-next-{int(sent_at.timestamp() * 1000)}-{uuid.uuid4()}" for _ in range(3)]
    body = {
        "batch": [
            {"type": "track", "event": "Item Viewed", "userId": 42, "anonymousId": None, "messageId": message_ids[0],
             "properties": {"sku": "A-1"}, "timestamp": sent_at.isoformat(), "context": {"library": {"name": "x"}},
             "_metadata": {"jsRuntime": "node"}},
            {"type": "identify", "userId": "u-7", "messageId": message_ids[1], "traits": {"name": "Ann"},
             "timestamp": sent_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")},
            {"type": "page", "anonymousId": "anon-1", "messageId": message_ids[2], "name": "Pricing",
             "originalTimestamp": sent_at.isoformat()},
        ],
        "writeKey": source.write_key,
        "sentAt": sent_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }  # fmt: skip

    response = requests.post(f"{cdp_server.url}/v1/batch", auth=(source.write_key, ""), json=body, timeout=5)
    assert response.status_code == 200
    process_pending()

    events = {e.message_id: e for e in Event.objects.filter(source=source)}
    assert set(events) == set(message_ids)
    first = events[message_ids[0]]
    assert (first.type, first.event, first.user_id, first.anonymous_id) == ("track", "Item Viewed", "42", "")
    assert first.payload["properties"] == {"sku": "A-1"}
    assert first.payload["context"]["ip"] == "127.0.0.1"
    assert "writeKey" not in first.payload
    # sent and received within moments of each other: no skew to speak of
    assert abs(first.timestamp - first.received_at) < timedelta(seconds=5)
    assert events[message_ids[1]].payload["traits"] == {"name": "Ann"}
    assert events[message_ids[2]].type == "page"


def test_process_pending_event_column_holds_only_track_event_names(source):
    intake(source, batch({"type": "page", "name": "Home", "event": "stray", "anonymousId": "a1", "messageId": "p1"}))
    process_pending()
    assert Event.objects.get(message_id="p1").event == ""
