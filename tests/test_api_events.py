"""The management API's read-only records: stored events and rejected messages (filters, paging)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cdp.core.models import Source
from tests.support.api import assert_error
from tests.support.data import make_event, make_events, make_rejected

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- Events ----------------------------------------------------------------------------------------


def test_events_list_is_newest_first(alice_api, source):
    first = make_event(source, event="First")
    second = make_event(source, event="Second")
    rows = alice_api.get("/api/v1/events/").json()["results"]
    assert [row["id"] for row in rows] == [second.pk, first.pk]
    assert rows[0]["event"] == "Second" and rows[0]["payload"]["messageId"] == second.message_id


@pytest.fixture
def varied_events(source):
    """One event per filter value, so each filter must pick exactly its own."""
    backend = Source.objects.create(workspace=source.workspace, name="Backend")
    noon = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    return {
        "track": make_event(source, "track", at=noon, event="Signed Up", user_id="u-1", message_id="m-track"),
        "page": make_event(source, "page", at=noon - timedelta(days=1), anonymous_id="a-9", message_id="m-page"),
        "other_source": make_event(backend, "identify", at=noon + timedelta(days=1), message_id="m-other"),
        "backend": backend,
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"type": "page"}, ["page"]),
        ({"event": "Signed Up"}, ["track"]),
        ({"user_id": "u-1"}, ["track"]),
        ({"anonymous_id": "a-9"}, ["page"]),
        ({"message_id": "m-other"}, ["other_source"]),
        ({"since": "2026-01-15T12:00:00Z"}, ["other_source", "track"]),
        ({"until": "2026-01-15T12:00:00Z"}, ["page"]),
        ({"since": "2026-01-15", "until": "2026-01-16"}, ["track"]),
        ({"since": "2026-01-15T13:00:00+02:00", "until": "2026-01-17T00:00:00"}, ["other_source", "track"]),
        ({"type": "track", "user_id": "nobody"}, []),
    ],
)
def test_events_list_filters(alice_api, varied_events, params, expected):
    rows = alice_api.get("/api/v1/events/", params).json()["results"]
    assert sorted(row["message_id"] for row in rows) == sorted(varied_events[name].message_id for name in expected)


def test_events_list_filters_by_source(alice_api, varied_events):
    rows = alice_api.get("/api/v1/events/", {"source": varied_events["backend"].pk}).json()["results"]
    assert [row["message_id"] for row in rows] == ["m-other"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"source": "website"}, "source"),
        ({"type": "purchase"}, "type"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-45"}, "until"),
        ({"cursor": "garbage"}, "cursor"),
    ],
)
def test_events_list_bad_filter_is_400_naming_it(alice_api, source, params, field):
    body = assert_error(alice_api.get("/api/v1/events/", params), 400, "invalid")
    assert field in body["fields"]
    assert body["message"].startswith(f"{field}:")


def test_events_list_pages_with_a_cursor_through_every_event_once(alice_api, source):
    made = make_events(source, 12)
    seen, url, pages = [], "/api/v1/events/?page_size=5", 0
    while url:
        page = alice_api.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url, pages = page["next"], pages + 1
    assert pages == 3
    assert seen == sorted((event.pk for event in made), reverse=True)


def test_events_list_cursor_is_stable_while_events_arrive(alice_api, source):
    make_events(source, 6)
    first = alice_api.get("/api/v1/events/", {"page_size": 3}).json()
    make_events(source, 4)  # newer than everything on the first page
    second = alice_api.get(first["next"]).json()
    first_ids = [row["id"] for row in first["results"]]
    second_ids = [row["id"] for row in second["results"]]
    assert not set(first_ids) & set(second_ids)
    assert max(second_ids) < min(first_ids)


def test_events_list_queries_do_not_grow_with_rows(alice_api, source, django_assert_max_num_queries):
    make_events(source, 200)
    with django_assert_max_num_queries(6):
        response = alice_api.get("/api/v1/events/", {"page_size": 200})
    assert len(response.json()["results"]) == 200


def test_events_retrieve_shows_the_payload(alice_api, source):
    event = make_event(source, user_id="u-7")
    body = alice_api.get(f"/api/v1/events/{event.pk}/").json()
    assert (body["id"], body["user_id"], body["source"]) == (event.pk, "u-7", source.pk)
    assert body["payload"]["messageId"] == event.message_id


def test_events_retrieve_unknown_id_is_404_json(alice_api, source):
    assert_error(alice_api.get("/api/v1/events/424242/"), 404, "not_found")


def test_events_cannot_be_written(alice_api, source):
    response = alice_api.post("/api/v1/events/", {"type": "track"}, format="json")
    assert_error(response, 405, "method_not_allowed")


# --- Rejected messages -----------------------------------------------------------------------------


def test_rejected_messages_list_shows_reason_newest_first(alice_api, source):
    older = make_rejected(source, reason="first")
    newer = make_rejected(source, code="too_large", reason="Message is over 32 KB")
    rows = alice_api.get("/api/v1/rejected-messages/").json()["results"]
    assert [(row["id"], row["code"]) for row in rows] == [(newer.pk, "too_large"), (older.pk, "invalid_message")]
    assert rows[0]["reason"] == "Message is over 32 KB"


def test_rejected_messages_list_filters_by_source_and_code(alice_api, source):
    backend = Source.objects.create(workspace=source.workspace, name="Backend")
    make_rejected(source, code="too_large")
    wanted = make_rejected(backend, code="too_large")
    make_rejected(backend, code="invalid_message")
    rows = alice_api.get("/api/v1/rejected-messages/", {"source": backend.pk, "code": "too_large"}).json()["results"]
    assert [row["id"] for row in rows] == [wanted.pk]


def test_rejected_messages_retrieve_shows_the_body(alice_api, source):
    rejected = make_rejected(source, body='{"type": "track", "event": 5}')
    body = alice_api.get(f"/api/v1/rejected-messages/{rejected.pk}/").json()
    assert body["body"] == '{"type": "track", "event": 5}'
