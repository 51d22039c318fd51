"""The items the debugger shows, one shape for live items and for the backlog sent on connect.

Source items: `kind` is accepted, rejected, refused (the whole request), stored or duplicate; each
names the message (type, event, messageId, userId, anonymousId) and carries it as JSON when small
enough. Destination items: `kind` is delivery (one per delivery, its latest state) or attempt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

Item = dict[str, Any]
# A message bigger than this is not sent to the browser (the X-ray shows it in full).
MAX_MESSAGE_BYTES = 16 * 1024


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def label(message: dict[str, Any]) -> str:
    """The one word a list shows: event name, page or screen name, group id, alias target."""
    kind = message.get("type")
    if kind == "track":
        return _text(message.get("event"))
    if kind in ("page", "screen"):
        return _text(message.get("name") or (message.get("properties") or {}).get("name"))
    if kind == "group":
        return _text(message.get("groupId"))
    if kind == "alias":
        return _text(message.get("previousId"))
    return ""


def bounded(value: Any) -> tuple[Any, int]:
    """The value if its JSON is small enough, else None; and the JSON size."""
    size = len(orjson.dumps(value, default=str))
    return (value if size <= MAX_MESSAGE_BYTES else None), size


def message_item(kind: str, message: Any, at: datetime | str | None, **extra: Any) -> Item:
    if not isinstance(message, dict):
        message = {"body": message}
    body, size = bounded(message)
    return {
        "kind": kind,
        "at": at if isinstance(at, str) or at is None else at.isoformat(),
        "type": _text(message.get("type")),
        "event": label(message),
        "messageId": _text(message.get("messageId")),
        "userId": _text(message.get("userId")),
        "anonymousId": _text(message.get("anonymousId")),
        "message": body,
        "size": size,
        **extra,
    }


def parsed(body: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body


def delivery_item(delivery: Any, attempt: Any | None, kind: str = "delivery") -> Item:
    """A delivery (a model instance, its destination loaded or not) and its latest attempt."""
    payload, size = bounded(delivery.payload)
    item: Item = {
        "kind": kind,
        "at": iso(attempt.started_at if attempt is not None else delivery.created_at),
        "deliveryId": delivery.pk,
        "eventId": delivery.event_id,
        "sourceId": delivery.source_id,
        "messageId": delivery.message_id,
        "event": delivery.event_name,
        "action": delivery.action,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "retryAt": iso(delivery.next_attempt_at) if delivery.status == "retrying" else None,
        "deadLettered": delivery.status == "dead",
        "finishedAt": iso(delivery.finished_at),
        "payload": payload,
        "size": size,
        "error": delivery.last_error,
        "errorClass": delivery.error_class,
    }
    if attempt is not None:
        request, _ = bounded(attempt.request)
        item.update(
            attempt=attempt.number, outcome=attempt.outcome, responseStatus=attempt.response_status,
            responseBody=attempt.response_body[:2000], durationMs=round(attempt.duration_ms, 1), request=request,
            error=attempt.error or delivery.last_error, errorClass=attempt.error_class or delivery.error_class,
        )  # fmt: skip
    return item
