"""An event as warehouse rows: the row of its type's table, the row of its track event's table, and
the user's traits, every nested value flattened into a column with an inferred type."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from cdp.destinations.types.warehouse import naming
from cdp.destinations.types.warehouse.dialect import BIGINT, BOOLEAN, DOUBLE, TEXT, TIMESTAMP

# Columns every event table starts with; loaded_at is set by the loader.
COMMON_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", TEXT), ("user_id", TEXT), ("anonymous_id", TEXT), ("received_at", TIMESTAMP), ("sent_at", TIMESTAMP),
    ("original_timestamp", TIMESTAMP), ("timestamp", TIMESTAMP), ("loaded_at", TIMESTAMP),
)  # fmt: skip
TRACK_COLUMNS = (("event", TEXT), ("event_text", TEXT))
TYPE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "tracks": TRACK_COLUMNS, "pages": (("name", TEXT),), "screens": (("name", TEXT),),
    "groups": (("group_id", TEXT),), "aliases": (("previous_id", TEXT),), "identifies": (),
}  # fmt: skip
USER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", TEXT), ("anonymous_id", TEXT), ("received_at", TIMESTAMP), ("timestamp", TIMESTAMP),
    ("loaded_at", TIMESTAMP),
)  # fmt: skip
CONFLICT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("message_id", TEXT), ("table_name", TEXT), ("column_name", TEXT), ("value", TEXT), ("value_type", TEXT),
    ("expected_type", TEXT), ("received_at", TIMESTAMP), ("loaded_at", TIMESTAMP),
)  # fmt: skip
CONFLICT_KEY = ("message_id", "table_name", "column_name")
# Objects nested deeper than this are kept whole, as JSON text.
MAX_DEPTH = 6
_BIGINT_RANGE = range(-(2**63), 2**63)
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?$")


class EventError(ValueError):
    """The event cannot be stored at all (it is not a Segment event, or holds a NUL character)."""


@dataclass(frozen=True)
class Value:
    """A JSON value with its inferred column type; `data` is what a column of that type stores."""

    type: str
    data: Any
    raw: Any

    @property
    def text(self) -> str:
        return self.raw if isinstance(self.raw, str) else orjson.dumps(self.raw).decode()


@dataclass
class Row:
    table: str
    values: dict[str, Value]


@dataclass
class EventRows:
    message_id: str
    received_at: datetime | None
    rows: list[Row]
    user: Row | None = None  # the users row an identify with a userId brings
    timestamp: datetime | None = None


def infer(raw: Any) -> Value:
    """The column type a JSON scalar or array asks for: bigint, double precision, boolean,
    timestamp (ISO 8601 date and time strings) or text (other strings, and arrays as JSON)."""
    if isinstance(raw, bool):
        return Value(BOOLEAN, raw, raw)
    if isinstance(raw, int):
        if raw in _BIGINT_RANGE:
            return Value(BIGINT, raw, raw)
        try:
            return Value(DOUBLE, float(raw), raw)
        except OverflowError:
            return Value(TEXT, str(raw), raw)
    if isinstance(raw, float):
        return Value(DOUBLE, raw, raw) if math.isfinite(raw) else Value(TEXT, str(raw), str(raw))
    if isinstance(raw, str):
        moment = _timestamp(raw)
        return Value(TIMESTAMP, moment, raw) if moment is not None else Value(TEXT, raw, raw)
    return Value(TEXT, orjson.dumps(raw).decode(), raw)


def _timestamp(text: str) -> datetime | None:
    if not _TIMESTAMP.match(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def flatten(data: dict[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Value]:
    """Nested objects become parent_child columns; nulls and empty objects make no column."""
    columns: dict[str, Value] = {}
    for key, raw in data.items():
        name = naming.identifier(str(key))
        column = naming.joined(prefix, name) if prefix else name
        if isinstance(raw, dict) and depth < MAX_DEPTH:
            columns.update(flatten(raw, column, depth + 1))
        elif raw is not None:
            columns[column] = infer(raw)
    return columns


def _contained(values: dict[str, Value], container: str, reserved: set[str]) -> dict[str, Value]:
    """Properties or traits as columns; one whose name a standard column has takes the container's
    name as a prefix (a property `id` becomes `properties_id`)."""
    out: dict[str, Value] = {}
    for name, value in values.items():
        if name in reserved or name.startswith("context_"):
            name = naming.joined(container, name)
        out[name] = value
    return out


def _check_text(data: Any, path: str = "$") -> None:
    """PostgreSQL text cannot hold NUL, not even in the conflicts table."""
    if isinstance(data, str):
        if "\x00" in data:
            raise EventError(f"{path} holds a NUL character, which the warehouse cannot store")
    elif isinstance(data, dict):
        for key, value in data.items():
            _check_text(str(key), f"{path} key")
            _check_text(value, f"{path}.{key}")
    elif isinstance(data, list):
        for index, value in enumerate(data):
            _check_text(value, f"{path}[{index}]")


def _object(event: dict[str, Any], key: str) -> dict[str, Any]:
    value = event.get(key)
    return value if isinstance(value, dict) else {}


def event_rows(event: Any) -> EventRows:
    """The rows of one mapped event; EventError if it cannot be loaded."""
    if not isinstance(event, dict):
        raise EventError("the mapped event is not a JSON object")
    message_id, kind = event.get("messageId"), event.get("type")
    if not isinstance(message_id, str) or not message_id:
        raise EventError("the event has no messageId")
    table = naming.EVENT_TABLES.get(kind) if isinstance(kind, str) else None
    if table is None:
        raise EventError(f"the event's type {kind!r} is not one of {', '.join(naming.EVENT_TABLES)}")
    _check_text(event)
    context = {k: v for k, v in _object(event, "context").items() if k != "traits"}
    common = {
        "id": message_id, "user_id": event.get("userId"), "anonymous_id": event.get("anonymousId"),
        "received_at": event.get("receivedAt"), "sent_at": event.get("sentAt"),
        "original_timestamp": event.get("originalTimestamp"), "timestamp": event.get("timestamp"),
    }  # fmt: skip
    values = {name: infer(raw) for name, raw in common.items() if raw is not None}
    values.update(flatten(context, "context"))
    standard = {name for name, _ in COMMON_COLUMNS + TYPE_COLUMNS[table]}
    received_at = values["received_at"].data if _is(values.get("received_at"), TIMESTAMP) else None
    timestamp = values["timestamp"].data if _is(values.get("timestamp"), TIMESTAMP) else None
    result = EventRows(message_id, received_at, [], timestamp=timestamp)
    if table == "tracks":
        name = event.get("event")
        if not isinstance(name, str) or not name.strip():
            raise EventError("the track event has no event name")
        values.update(event=infer(naming.event_table(name)), event_text=infer(name))
        result.rows.append(Row(table, values))
        properties = _contained(flatten(_object(event, "properties")), "properties", standard)
        result.rows.append(Row(naming.event_table(name), {**values, **properties}))
        return result
    if table in ("pages", "screens"):
        specific = {"name": event.get("name")}
        extra = _contained(flatten(_object(event, "properties")), "properties", standard)
    elif table in ("identifies", "groups"):
        specific = {"group_id": event.get("groupId")} if table == "groups" else {}
        extra = _contained(flatten(_object(event, "traits")), "traits", standard)
    else:
        specific, extra = {"previous_id": event.get("previousId")}, {}
    values.update({name: infer(raw) for name, raw in specific.items() if raw is not None})
    result.rows.append(Row(table, {**values, **extra}))
    if table == "identifies" and event.get("userId") not in (None, ""):
        result.user = _user_row(values, _object(event, "traits"))
    return result


def _user_row(values: dict[str, Value], traits: dict[str, Any]) -> Row:
    own = {name: values[name] for name, _ in USER_COLUMNS if name != "id" and name in values}
    reserved = {name for name, _ in USER_COLUMNS}
    return Row(naming.USERS, {"id": values["user_id"], **own, **_contained(flatten(traits), "traits", reserved)})


def _is(value: Value | None, logical: str) -> bool:
    return value is not None and value.type == logical
