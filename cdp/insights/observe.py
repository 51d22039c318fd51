"""Keeping the aggregates up to date: the processor calls `observe` with the events it has just stored,
inside its transaction, so an aggregate never counts an event that was rolled back nor misses one that
was committed.

Everything is first added up in memory; then each table gets one multi-row upsert for the whole batch
(`INSERT … ON CONFLICT DO UPDATE`, on PostgreSQL and SQLite alike), with rows in key order so that
concurrent workers take row locks in the same order. Field rows of the observed schema are the one
exception to exactness: see FIELD_WRITE_SECONDS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from operator import attrgetter
from typing import Any, NamedTuple

from django.db import InterfaceError, OperationalError, transaction

from cdp.delivery.routing import RoutableEvent
from cdp.insights import people, schema, sql
from cdp.insights.people import count_people
from cdp.insights.schema import MAX_NAME, event_name, fields_of, limit_events, limit_fields, unsure_sources

log = logging.getLogger(__name__)

EventKey = tuple[int, str, str]  # source id, event type, event name
FieldKey = tuple[int, str, str]  # observed event id, path, JSON type
Seen = list[Any]  # [count, first seen, last seen]

# A field row is rewritten at most once a minute per process. Every batch carries the same few hundred
# (event, path, type) rows, and upserting them was most of the cost of this hook; the event rows stay
# exact. Sightings of a field whose row this process wrote less than FIELD_WRITE_SECONDS ago are held
# here once their batch has committed, and added to the row with the next write (or by the sweep when
# the field is not seen again, with the next batch). So a field's count and last seen lag by about a
# minute, and the sightings a process still holds when it stops (or that a batch failing after this hook
# took out) are not counted; `manage.py rebuild_insights` recounts them exactly.
FIELD_WRITE_SECONDS = 60.0
_fields_lock = threading.Lock()
_written: dict[FieldKey, float] = {}  # when this process last committed a write of the row (monotonic)
_held: dict[FieldKey, Seen] = {}  # committed sightings not yet in the row
_next_sweep = 0.0
_WRITTEN_MAX = 200_000


def observe(events: Sequence[RoutableEvent], workspaces: Mapping[int, tuple[int, datetime]] | None = None) -> None:
    """Add the stored events to the aggregates. A failure here must not cost the events themselves:
    it is logged and the batch goes on without its statistics, except when the database itself is
    unwell, which the processor handles by retrying the whole batch. `workspaces`: source → (its
    workspace's id, creation time), as far as the caller knows them (saves a query)."""
    if not events:
        return
    try:
        with transaction.atomic():
            record(events, workspaces=workspaces)
    except (OperationalError, InterfaceError):
        raise
    except Exception:
        log.exception("insights could not be updated for a batch of %d event(s)", len(events))


_received = attrgetter("received_at")


def month_of(moment: datetime) -> date:
    return date(moment.year, moment.month, 1)


def record(
    events: Sequence[RoutableEvent],
    hold_fields: bool = True,
    workspaces: Mapping[int, tuple[int, datetime]] | None = None,
) -> None:
    """Add the events to every aggregate; errors propagate (observe() is the forgiving caller).
    `hold_fields=False` writes every field row now (rebuild_insights: a one-off run must leave exact
    counts behind, with nothing held in a process about to exit). `workspaces`: as for observe()."""
    tally = tally_of(events)
    sql.add_hours(sorted(tally.hours.items()))
    sql.add_minutes(_latest_per_slot(tally.minutes))
    unsure = unsure_sources(tally.events)
    known = workspaces or {}
    if unsure or any(pk not in known for pk in tally.sightings):
        sources = sql.sources_state(sorted(tally.sightings), counting=unsure)
        counts = {pk: sources[pk].observed_names for pk in unsure if pk in sources}
        owners = {pk: (state.workspace_id, state.workspace_created) for pk, state in sources.items()}
    else:  # every source's workspace known and no event name new: nothing to ask the database
        counts, owners = {}, {pk: known[pk] for pk in tally.sightings}
    _write_schema(tally.events, tally.fields, counts, hold_fields)
    count_people(tally.sightings, owners)


class Tally(NamedTuple):
    hours: Counter[tuple[int, datetime]]
    minutes: Counter[tuple[int, datetime]]
    events: dict[EventKey, Seen]
    fields: dict[EventKey, dict[tuple[str, str], Seen]]
    sightings: dict[int, list[tuple[dict[str, Any], date]]]  # per source: (payload, month received)


def tally_of(events: Sequence[RoutableEvent]) -> Tally:
    """The batch added up in memory. This runs for every property of every event, so the per-item work
    is left to Counter and dict updates: counts are Counters of keys; with the events in time order,
    the last update of a key in a dict is its last sighting, and the last update of a backward pass
    its first."""
    ordered = sorted(events, key=_received)
    moments = [event.received_at for event in ordered]
    keys = [(e.source_id, e.payload["type"], event_name(e.payload)[:MAX_NAME]) for e in ordered]
    first_of = dict(zip(reversed(keys), reversed(moments), strict=True))
    last_of = dict(zip(keys, moments, strict=True))
    seen_events = {key: [count, first_of[key], last_of[key]] for key, count in Counter(keys).items()}

    hours: Counter[tuple[int, datetime]] = Counter()
    minutes: Counter[tuple[int, datetime]] = Counter()
    month: dict[datetime, date] = {}
    for (source_id, at), count in Counter((event.source_id, event.received_at) for event in ordered).items():
        minute = at.replace(second=0, microsecond=0)
        hours[(source_id, minute.replace(minute=0))] += count
        minutes[(source_id, minute)] += count
        month[at] = month_of(at)
    sightings: dict[int, list[tuple[dict[str, Any], date]]] = defaultdict(list)
    for event in ordered:
        sightings[event.source_id].append((event.payload, month[event.received_at]))

    # Events of one name mostly carry the same fields: each distinct (event, fields) combination is
    # counted and timed as a whole, then spread over its fields.
    combos = [(key, tuple(fields_of(event.payload))) for key, event in zip(keys, ordered, strict=True)]
    first_combo = dict(zip(reversed(combos), reversed(moments), strict=True))
    last_combo = dict(zip(combos, moments, strict=True))
    seen_fields: dict[EventKey, dict[tuple[str, str], Seen]] = defaultdict(dict)
    for combo, count in Counter(combos).items():
        fields = seen_fields[combo[0]]
        first, last = first_combo[combo], last_combo[combo]
        for field in combo[1]:
            seen = fields.get(field)
            if seen is None:
                fields[field] = [count, first, last]
            else:
                seen[0] += count
                seen[1] = min(seen[1], first)
                seen[2] = max(seen[2], last)
    return Tally(hours, minutes, seen_events, {key: fields for key, fields in seen_fields.items() if fields}, sightings)


def _see(table: dict, key: Any, at: datetime, count: int) -> None:
    seen = table.get(key)
    if seen is None:
        table[key] = [count, at, at]
    else:
        seen[0] += count
        if at < seen[1]:
            seen[1] = at
        if at > seen[2]:
            seen[2] = at


def _latest_per_slot(minutes: Counter[tuple[int, datetime]]) -> list[tuple[int, int, datetime, int]]:
    """(source, slot, minute, count); a batch spanning more than an hour keeps each slot's latest minute."""
    slots: dict[tuple[int, int], tuple[datetime, int]] = {}
    for (source_id, minute), count in minutes.items():
        slot = (source_id, minute.minute)
        if slot not in slots or slots[slot][0] < minute:
            slots[slot] = (minute, count)
    return [(source_id, slot, minute, count) for (source_id, slot), (minute, count) in sorted(slots.items())]


def _write_schema(
    seen_events: dict[EventKey, Seen],
    seen_fields: dict[EventKey, dict[tuple[str, str], Seen]],
    counts: dict[int, int],
    hold_fields: bool = True,
) -> None:
    allowed = limit_events(seen_events, counts)
    ids = sql.upsert_events(sorted((key, *seen_events[key]) for key in allowed))
    per_event = {ids[key]: seen_fields[key] for key in allowed if seen_fields.get(key) and key in ids}
    kept = limit_fields(per_event)
    now = time.monotonic()
    rows: list[tuple] = []
    holding: list[tuple[FieldKey, Seen]] = []
    with _fields_lock:
        for key in kept:
            seen = per_event[key[0]][key[1:]]
            written = _written.get(key)
            if hold_fields and written is not None and now - written < FIELD_WRITE_SECONDS:
                holding.append((key, seen))
                continue
            held = _held.pop(key, None)
            if held is not None:
                seen = [seen[0] + held[0], min(seen[1], held[1]), max(seen[2], held[2])]
            rows.append((*key, *seen))
        stale = _take_stale(now)
    rows.sort()
    sql.upsert_fields(rows)
    sql.add_to_fields(stale)
    wrote = [row[:3] for row in rows] + [row[:3] for row in stale]
    transaction.on_commit(lambda: _committed(now, wrote, holding))


def _take_stale(now: float) -> list[tuple]:
    """Held sightings of fields not written for a minute (not seen since), looked for at most every
    quarter of FIELD_WRITE_SECONDS, with whatever batch comes next."""
    global _next_sweep
    if now < _next_sweep or not _held:
        return []
    _next_sweep = now + FIELD_WRITE_SECONDS / 4
    due = [key for key in _held if key not in _written or now - _written[key] >= FIELD_WRITE_SECONDS]
    return sorted((*key, *_held.pop(key)) for key in due)


def _committed(now: float, wrote: list[FieldKey], holding: list[tuple[FieldKey, Seen]]) -> None:
    with _fields_lock:
        if len(_written) + len(wrote) > _WRITTEN_MAX:
            _written.clear()  # a field not remembered is written at once: precise, only slower
        for key in wrote:
            _written[key] = now
        for key, seen in holding:
            _see(_held, key, seen[1], seen[0])
            _see(_held, key, seen[2], 0)


def forget() -> None:
    """Drop what this process remembers of the aggregates, after they were emptied (rebuild_insights)."""
    schema.forget()
    people.forget()
    global _next_sweep
    with _fields_lock:
        _written.clear()
        _held.clear()
        _next_sweep = 0.0
