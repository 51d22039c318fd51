"""What makes a Segment message acceptable: the rules the web fast path and the processor share."""

from __future__ import annotations

from typing import Any

import pytest

from cdp.tracking.validation import MAX_EVENT_NAME_LENGTH, MAX_ID_LENGTH, check_message, identifier, too_large


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("", ""),
        ("  user-1 ", "user-1"),
        (42, "42"),
        (4.5, "4.5"),
        (True, None),
        ({"id": 1}, None),
        ([1], None),
    ],
)
def test_identifier_is_a_string_empty_when_absent_none_when_unusable(value, expected):
    assert identifier(value) == expected


VALID = {
    "identify": {"type": "identify", "userId": "u1", "traits": {"email": "ada@example.com"}},
    "track": {"type": "track", "anonymousId": "a1", "event": "Order Completed"},
    "page": {"type": "page", "userId": "u1"},
    "screen": {"type": "screen", "userId": "u1"},
    "group": {"type": "group", "userId": "u1", "groupId": 7},
    "alias": {"type": "alias", "userId": "u2", "previousId": "u1"},
    "numeric-user-id": {"type": "track", "userId": 123, "event": "E"},
    "explicit-nulls": {
        "type": "track", "userId": "u1", "anonymousId": None, "messageId": None, "event": "E",
        "properties": None, "context": None, "traits": None, "integrations": None,
    },
    "longest-ids": {"type": "track", "userId": "u" * MAX_ID_LENGTH, "messageId": "m" * MAX_ID_LENGTH, "event": "E"},
    "longest-event": {"type": "track", "userId": "u1", "event": "e" * MAX_EVENT_NAME_LENGTH},
    "ajs-message-id": {"type": "track", "userId": "u1", "event": "E", "messageId": "ajs-next-1714557600000-0f"},
}  # fmt: skip


@pytest.mark.parametrize("name", VALID)
def test_check_message_accepts_what_segment_clients_send(name):
    assert check_message(VALID[name]) is None


def track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u1", "event": "E", **fields}


INVALID = {
    "not-an-object": (["track"], "invalid_message"),
    "no-type": ({"userId": "u1", "event": "E"}, "invalid_type"),
    "unknown-type": (track(type="Track"), "invalid_type"),
    "boolean-user-id": (track(userId=True), "invalid_user_id"),
    "object-anonymous-id": (track(anonymousId={"id": "a"}), "invalid_anonymous_id"),
    "no-identity": ({"type": "page", "userId": None, "anonymousId": ""}, "missing_identity"),
    "blank-identity": ({"type": "page", "userId": "   "}, "missing_identity"),
    "user-id-too-long": (track(userId="u" * (MAX_ID_LENGTH + 1)), "identifier_too_long"),
    "anonymous-id-too-long": (track(anonymousId="a" * (MAX_ID_LENGTH + 1)), "identifier_too_long"),
    "list-message-id": (track(messageId=["m"]), "invalid_message_id"),
    "message-id-too-long": (track(messageId="m" * (MAX_ID_LENGTH + 1)), "invalid_message_id"),
    "track-without-event": ({"type": "track", "userId": "u1"}, "missing_event"),
    "track-blank-event": (track(event="  "), "missing_event"),
    "track-numeric-event": (track(event=5), "missing_event"),
    "event-name-too-long": (track(event="e" * (MAX_EVENT_NAME_LENGTH + 1)), "event_name_too_long"),
    "alias-without-previous-id": ({"type": "alias", "userId": "u2"}, "missing_previous_id"),
    "group-without-group-id": ({"type": "group", "userId": "u1", "groupId": ""}, "missing_group_id"),
    "list-properties": (track(properties=[1, 2]), "invalid_field"),
    "string-context": (track(context="web"), "invalid_field"),
    "list-traits": ({"type": "identify", "userId": "u1", "traits": ["vip"]}, "invalid_field"),
}


@pytest.mark.parametrize("name", INVALID)
def test_check_message_rejects_with_a_reason_code(name):
    message, code = INVALID[name]
    problem = check_message(message)
    assert problem is not None
    assert (problem.status, problem.code) == (400, code)
    assert problem.as_dict() == {"code": code, "message": problem.message}


def test_too_large_is_a_413_naming_the_limit():
    problem = too_large(32768)
    assert (problem.status, problem.code) == (413, "message_too_large")
    assert "32768" in problem.message
