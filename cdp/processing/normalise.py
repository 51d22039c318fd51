"""Turn an accepted Segment message into the stored, spec-normal form."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cdp.tracking.validation import identifier


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # e.g. 0001-01-01T00:00:00+01:00 is before datetime.min in UTC
        return None


def without_nul(value: Any) -> Any:
    """`value` with every NUL character in its strings and keys replaced by U+FFFD.

    JSON may carry "\\u0000" but PostgreSQL text and jsonb cannot hold it."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def normalise(
    message: dict[str, Any],
    *,
    envelope_sent_at: Any,
    received_at: datetime,
    intake_id: int,
    index: int,
    ip: str,
) -> dict[str, Any]:
    """Return a new dict: ids as strings, traits where the spec puts them, and the four times.

    `timestamp` is corrected for the client's clock skew: receivedAt − (sentAt − originalTimestamp).
    A message without messageId gets one derived from its place in the request, so processing the
    same request twice yields the same id and the duplicate is dropped.
    """
    out = dict(message)
    out.pop("writeKey", None)
    out["userId"] = identifier(out.get("userId")) or None
    out["anonymousId"] = identifier(out.get("anonymousId")) or None
    out["messageId"] = identifier(out.get("messageId")) or f"cdp-{intake_id}-{index}"

    context = dict(out.get("context") or {})
    if ip and "ip" not in context:
        context["ip"] = ip
    out["context"] = context
    kind = out["type"]
    if kind == "group":
        out["groupId"] = identifier(out["groupId"])
    elif kind == "alias":
        out["previousId"] = identifier(out["previousId"])
    if kind == "identify" and not out.get("traits") and isinstance(context.get("traits"), dict):
        # Identify traits may arrive only in context.traits (some mobile and server libraries).
        out["traits"] = dict(context["traits"])
    if kind in ("identify", "group"):
        out.setdefault("traits", {})
        if out["traits"] is None:
            out["traits"] = {}
    if kind in ("track", "page", "screen") and out.get("properties") is None:
        out["properties"] = {}
    if kind == "track":
        out["event"] = out["event"].strip()

    original = parse_time(out.get("originalTimestamp")) or parse_time(out.get("timestamp"))
    sent_at = parse_time(out.get("sentAt")) or parse_time(envelope_sent_at)
    timestamp = original or received_at
    if original is not None and sent_at is not None:
        try:
            timestamp = received_at - (sent_at - original)
        except OverflowError:  # a clock off by millennia: there is no skew to correct sensibly
            pass
    out["originalTimestamp"] = format_time(original) if original else None
    out["sentAt"] = format_time(sent_at) if sent_at else None
    out["receivedAt"] = format_time(received_at)
    out["timestamp"] = format_time(timestamp)
    return out
