"""The observed schema: which events a source sends and which properties and traits they carry, with
their JSON types. Recorded while processing (see observe.py) and capped, so that a client sending
random event names or property keys cannot make it grow without end:

- properties are followed at most MAX_DEPTH levels deep (`properties.a.b.c`); deeper objects are
  recorded as `object` without their contents, arrays as `array` without their items;
- a source keeps at most MAX_EVENTS event names (with their types), an event at most MAX_FIELDS
  (path, type) pairs; beyond that, new ones are not recorded (existing ones keep being counted);
- names longer than MAX_NAME and paths longer than MAX_PATH characters are cut or skipped.

Other engineers' code reads it through `field_paths` (for choosing fields in a mapping editor) and
`events_of` (for the schema page).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction

from cdp.insights import sql
from cdp.insights.models import ObservedEvent, ObservedField

MAX_DEPTH = 3
MAX_EVENTS = 1000
MAX_FIELDS = 200
MAX_NAME = 200
MAX_PATH = 255

# Which part of each call holds its properties or traits.
ROOTS = {"track": "properties", "page": "properties", "screen": "properties", "identify": "traits", "group": "traits"}
# Named calls first on the schema page: they are the ones people look for.
TYPE_ORDER = {"track": 0, "page": 1, "screen": 2, "identify": 3, "group": 4, "alias": 5}
_PLAIN_KEY = re.compile(r"[^.\[\]\"'\s]+")


def event_name(payload: dict[str, Any]) -> str:
    """The name an event is known by: a track's event, a page's or screen's name, else nothing."""
    kind = payload["type"]
    if kind == "track":
        name = payload.get("event")
    elif kind in ("page", "screen"):
        name = payload.get("name")
    else:
        return ""
    return name if isinstance(name, str) else ""


_JSON_TYPES = {str: "string", bool: "boolean", int: "number", float: "number", dict: "object", list: "array"}


def json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "null")


def fields_of(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, JSON type) of every property or trait of the event, as the mapping language spells paths."""
    root = ROOTS.get(payload["type"])
    values = payload.get(root) if root else None
    found: list[tuple[str, str]] = []
    if isinstance(values, dict) and values:
        _walk(values, root, 1, found)
    return found


# The path segment of each key seen lately: the same few keys come in every event, and this runs on
# the processing path for every property of every event.
_segments: dict[str, str] = {}


def _segment(key: str) -> str:
    segment = _segments.get(key)
    if segment is None:
        if _PLAIN_KEY.fullmatch(key):
            segment = f".{key}"
        else:
            escaped = key.replace("\\", "\\\\").replace('"', '\\"')
            segment = f'["{escaped}"]'
        if len(_segments) > 50_000:
            _segments.clear()
        _segments[key] = segment
    return segment


# The (path, JSON type) pairs seen lately, by (parent path, key, type): the same string and tuple
# objects come back for every event, so hashing them again later (to count them) is free.
_fields: dict[tuple[str, str, type], tuple[str, str]] = {}


def _walk(values: dict[str, Any], prefix: str, depth: int, found: list[tuple[str, str]]) -> None:
    for key, value in values.items():
        kind = type(value)
        field = _fields.get((prefix, key, kind))
        if field is None:
            path = prefix + _segment(key)
            if len(path) > MAX_PATH:
                continue
            field = (path, _JSON_TYPES.get(kind, "null"))
            if len(_fields) > 50_000:
                _fields.clear()
            _fields[(prefix, key, kind)] = field
        found.append(field)
        if kind is dict and depth < MAX_DEPTH and value:
            _walk(value, field[0], depth + 1, found)


# Event keys recorded lately, (source id, type, name): a source whose keys of a batch are all in here
# needs no count of its names. Like _known_fields, it only ever errs towards "new".
_known_events: set[tuple[int, str, str]] = set()


def unsure_sources(seen: Collection[tuple[int, str, str]]) -> set[int]:
    """The sources with event keys in the batch not recorded lately: only theirs need counting."""
    return {key[0] for key in seen if key not in _known_events}


def limit_events(seen: Collection[tuple[int, str, str]], counts: dict[int, int]) -> list[tuple[int, str, str]]:
    """The event keys of a batch that may be recorded: all known ones, and new ones while the source
    has fewer than MAX_EVENTS (in name order, so the choice does not depend on arrival order).
    `counts`: the number of event names each source of unsure_sources() holds."""
    by_source: dict[int, list[tuple[int, str, str]]] = {}
    for key in seen:
        by_source.setdefault(key[0], []).append(key)
    if not counts:
        return list(seen)
    full = [source_id for source_id in counts if counts[source_id] + len(by_source.get(source_id, ())) > MAX_EVENTS]
    known = sql.event_keys(full) if full else set()
    allowed: list[tuple[int, str, str]] = []
    for source_id, keys in by_source.items():
        if source_id not in full:
            allowed += keys
            continue
        room = MAX_EVENTS - counts.get(source_id, 0)
        for key in sorted(keys):
            if key in known:
                allowed.append(key)
            elif room > 0:
                allowed.append(key)
                room -= 1
    transaction.on_commit(lambda: _learn_events(allowed))
    return allowed


def _learn_events(recorded: list[tuple[int, str, str]]) -> None:
    if len(_known_events) > 100_000:
        _known_events.clear()
    _known_events.update(recorded)


# Fields recorded lately, by (observed event id, path, type). When every field of a batch is in here,
# none is new and the cap needs no look at the database. It only ever errs towards "new" (after a
# restart or a clear), which costs one query, never a wrong count.
_known_fields: set[tuple[int, str, str]] = set()


def forget() -> None:
    """Drop what this process remembers of recorded events and fields (after the tables were emptied)."""
    _known_events.clear()
    _known_fields.clear()


def limit_fields(per_event: dict[int, dict[tuple[str, str], Any]]) -> list[tuple[int, str, str]]:
    """(observed event id, path, type) that may be recorded, under MAX_FIELDS per event, like limit_events."""
    wanted = [(event_id, path, kind) for event_id, fields in per_event.items() for path, kind in fields]
    unknown = {key[0] for key in wanted if key not in _known_fields}
    if not unknown:
        return wanted
    counts = sql.count_fields(sorted(unknown))
    full = [event_id for event_id in unknown if counts.get(event_id, 0) + len(per_event[event_id]) > MAX_FIELDS]
    known = sql.field_keys(full) if full else set()
    allowed: list[tuple[int, str, str]] = []
    for event_id, fields in per_event.items():
        if event_id not in full:
            allowed += [(event_id, path, kind) for path, kind in fields]
            continue
        room = MAX_FIELDS - counts.get(event_id, 0)
        for path, kind in sorted(fields):
            if (event_id, path, kind) in known:
                allowed.append((event_id, path, kind))
            elif room > 0:
                allowed.append((event_id, path, kind))
                room -= 1
    transaction.on_commit(lambda: _learn_fields(allowed))
    return allowed


def _learn_fields(recorded: list[tuple[int, str, str]]) -> None:
    if len(_known_fields) > 200_000:
        _known_fields.clear()
    _known_fields.update(recorded)


# --- Reading --------------------------------------------------------------------------------------


def field_paths(
    source_ids: Collection[int], event_type: str | None = None, event_name: str | None = None
) -> list[tuple[str, str]]:
    """(path, JSON type) of the properties and traits observed on these sources' events, optionally only
    of one event type and name, most frequent first. For the mapping editor's field choices; paths are
    spelled as the mapping language reads them (`properties.total`, `traits.address.city`)."""
    fields = ObservedField.objects.filter(observed_event__source_id__in=list(source_ids))
    if event_type is not None:
        fields = fields.filter(observed_event__event_type=event_type)
    if event_name is not None:
        fields = fields.filter(observed_event__event_name=event_name)
    totals: dict[tuple[str, str], int] = {}
    for path, kind, count in fields.values_list("path", "json_type", "count"):
        totals[(path, kind)] = totals.get((path, kind), 0) + count
    return sorted(totals, key=lambda pair: (-totals[pair], pair))


@dataclass
class SchemaField:
    path: str
    types: list[str]
    count: int
    first_seen: datetime
    last_seen: datetime
    depth: int


@dataclass
class SchemaEvent:
    id: int
    event_type: str
    event_name: str
    count: int
    first_seen: datetime
    last_seen: datetime
    fields: list[SchemaField] = field(default_factory=list)
    capped: bool = False


def events_of(source_id: int) -> list[SchemaEvent]:
    """The source's observed events with their fields, in two queries whatever their number."""
    events = {
        row.id: SchemaEvent(row.id, row.event_type, row.event_name, row.count, row.first_seen, row.last_seen)
        for row in ObservedEvent.objects.filter(source_id=source_id)
    }
    per_path: dict[tuple[int, str], SchemaField] = {}
    rows = ObservedField.objects.filter(observed_event__source_id=source_id).order_by("observed_event_id", "path")
    counted: dict[int, int] = {}
    for row in rows.values_list("observed_event_id", "path", "json_type", "count", "first_seen", "last_seen"):
        event_id, path, kind, count, first, last = row
        counted[event_id] = counted.get(event_id, 0) + 1
        known = per_path.get((event_id, path))
        if known is None:
            known = SchemaField(path, [], 0, first, last, path.count(".") + path.count("["))
            per_path[(event_id, path)] = known
            events[event_id].fields.append(known)
        known.types.append(kind)
        known.count += count
        known.first_seen = min(known.first_seen, first)
        known.last_seen = max(known.last_seen, last)
    for event_id, number in counted.items():
        events[event_id].capped = number >= MAX_FIELDS
    return sorted(events.values(), key=lambda e: (TYPE_ORDER.get(e.event_type, 9), e.event_name.casefold()))


def matches(event: SchemaEvent, query: str) -> bool:
    """The schema page's search: the event's type or name, or one of its field paths, contains the text."""
    needle = query.casefold()
    if needle in event.event_name.casefold() or needle in event.event_type:
        return True
    return any(needle in f.path.casefold() for f in event.fields)
