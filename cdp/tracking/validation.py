"""What makes a Segment message acceptable. Used by the web fast path (to answer) and by the
processor (to decide what is stored), so both always agree."""

from __future__ import annotations

from typing import Any, NamedTuple

SINGLE_ENDPOINTS = {
    "identify": "identify", "track": "track", "page": "page", "screen": "screen", "group": "group", "alias": "alias",
    "i": "identify", "t": "track", "p": "page", "s": "screen", "g": "group", "a": "alias",
}  # fmt: skip
BATCH_ENDPOINTS = frozenset({"batch", "import", "b"})
EVENT_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
MAX_ID_LENGTH = 255
MAX_EVENT_NAME_LENGTH = 200
_OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
_PLAIN_TYPES = frozenset({"identify", "page", "screen"})  # no field of their own is required


class Rejection(NamedTuple):
    code: str
    message: str
    status: int = 400

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def identifier(value: Any) -> str | None:
    """The string form of a userId/anonymousId/messageId, '' when absent, None when unusable."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    return None


def _plainly_valid(message: dict[str, Any]) -> bool:
    """The common case, decided in a few dictionary lookups: string ids, a known type with what it
    needs, object fields that are objects or absent. Accepts only what the full rules accept; anything
    else (numbers as ids, blanks, long values, odd types) goes through them for the precise reason."""
    kind = message.get("type")
    user_id = message.get("userId")
    anonymous_id = message.get("anonymousId")
    message_id = message.get("messageId")
    if not (
        (type(user_id) is str and 0 < len(user_id) <= MAX_ID_LENGTH and not user_id.isspace())
        or (type(anonymous_id) is str and 0 < len(anonymous_id) <= MAX_ID_LENGTH and not anonymous_id.isspace())
    ):
        return False
    if (user_id is not None and type(user_id) is not str) or (
        anonymous_id is not None and type(anonymous_id) is not str
    ):
        return False
    if len(user_id or "") > MAX_ID_LENGTH or len(anonymous_id or "") > MAX_ID_LENGTH:
        return False
    if message_id is not None and (type(message_id) is not str or len(message_id) > MAX_ID_LENGTH):
        return False
    if kind == "track":
        name = message.get("event")
        if type(name) is not str or not 0 < len(name) <= MAX_EVENT_NAME_LENGTH or name.isspace():
            return False
    elif kind not in _PLAIN_TYPES:
        return False
    for field in _OBJECT_FIELDS:
        value = message.get(field)
        if value is not None and type(value) is not dict:
            return False
    return True


def check_message(message: Any) -> Rejection | None:
    """None when the message can be stored, otherwise why not."""
    if type(message) is dict and _plainly_valid(message):
        return None
    if not isinstance(message, dict):
        return Rejection("invalid_message", "a message must be a JSON object")
    kind = message.get("type")
    if kind not in EVENT_TYPES:
        return Rejection("invalid_type", f"type must be one of {', '.join(sorted(EVENT_TYPES))}, got {kind!r}")
    user_id = identifier(message.get("userId"))
    anonymous_id = identifier(message.get("anonymousId"))
    if user_id is None:
        return Rejection("invalid_user_id", "userId must be a string or a number")
    if anonymous_id is None:
        return Rejection("invalid_anonymous_id", "anonymousId must be a string or a number")
    if not user_id and not anonymous_id:
        return Rejection("missing_identity", "a message needs a userId or an anonymousId")
    if len(user_id) > MAX_ID_LENGTH or len(anonymous_id) > MAX_ID_LENGTH:
        return Rejection("identifier_too_long", f"userId and anonymousId may have at most {MAX_ID_LENGTH} characters")
    message_id = identifier(message.get("messageId"))
    if message_id is None or len(message_id) > MAX_ID_LENGTH:
        return Rejection("invalid_message_id", f"messageId must be a string of at most {MAX_ID_LENGTH} characters")
    if kind == "track":
        name = message.get("event")
        if not isinstance(name, str) or not name.strip():
            return Rejection("missing_event", "a track call needs an event name")
        if len(name) > MAX_EVENT_NAME_LENGTH:
            return Rejection("event_name_too_long", f"event names may have at most {MAX_EVENT_NAME_LENGTH} characters")
    elif kind == "alias" and not identifier(message.get("previousId")):
        return Rejection("missing_previous_id", "an alias call needs a previousId")
    elif kind == "group" and not identifier(message.get("groupId")):
        return Rejection("missing_group_id", "a group call needs a groupId")
    for field in _OBJECT_FIELDS:
        value = message.get(field)
        if value is not None and not isinstance(value, dict):
            return Rejection("invalid_field", f"{field} must be a JSON object")
    return None


def too_large(limit: int) -> Rejection:
    return Rejection("message_too_large", f"a message may be at most {limit} bytes", 413)
