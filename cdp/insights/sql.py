"""The statements behind observe.py: multi-row upserts (PostgreSQL and SQLite share the syntax, bar the
names of the two-argument min and max) and the few reads the schema caps need."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import date, datetime
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Case, Count, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce

from cdp.core.models import Source
from cdp.insights.models import ObservedEvent, ObservedField

_CHUNK = 500
_HOURS = "cdp_insights_source_hour"
_MINUTES = "cdp_insights_source_minute"
_EVENTS = "cdp_insights_observed_event"
_FIELDS = "cdp_insights_observed_field"
_IDENTITIES = "cdp_insights_identity"
_MONTHLY = "cdp_insights_monthly_users"
_SEEN = "count:bigint, first_seen:timestamptz, last_seen:timestamptz"


def _least_greatest() -> tuple[str, str]:
    return ("LEAST", "GREATEST") if connection.vendor == "postgresql" else ("MIN", "MAX")


def _moment(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _day(value: date | None) -> Any:
    return connection.ops.adapt_datefield_value(value)


def _chunks(columns: str, rows: Sequence[Sequence[Any]]) -> Iterator[tuple[str, list[Any]]]:
    """The rows as a relation for INSERT or IN, in as few statements as the database allows.

    `columns` is "name:type, …" (PostgreSQL types). On PostgreSQL the rows go as one array per column
    through unnest(): a short statement text, whatever the number of rows, that the driver does not
    have to scan for thousands of placeholders. SQLite gets multi-row VALUES in chunks that stay
    under its parameter limit."""
    types = [spec.split(":")[1].strip() for spec in columns.split(",")]
    if connection.vendor == "postgresql":
        arrays = [list(values) for values in zip(*rows, strict=True)]
        yield f"SELECT * FROM unnest({', '.join(f'%s::{kind}[]' for kind in types)})", arrays
        return
    placeholders = "(" + ", ".join(["%s"] * len(types)) + ")"
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        yield f"VALUES {', '.join([placeholders] * len(chunk))}", [value for row in chunk for value in row]


def _names(columns: str) -> str:
    return ", ".join(spec.split(":")[0].strip() for spec in columns.split(","))


def _upsert(
    table: str, columns: str, rows: Sequence[Sequence[Any]], conflict: str, action: str, returning: str = ""
) -> list[tuple]:
    """INSERT rows … ON CONFLICT (conflict) action [RETURNING …]. The rows must be unique on the
    conflict key (one statement cannot update a row twice)."""
    if not rows:
        return []
    returned: list[tuple] = []
    with connection.cursor() as cursor:
        for relation, params in _chunks(columns, rows):
            # "WHERE true" keeps SQLite from reading ON CONFLICT as a join clause of the SELECT.
            where = " WHERE true" if relation.startswith("SELECT") else ""
            statement = f"INSERT INTO {table} ({_names(columns)}) {relation}{where} ON CONFLICT ({conflict}) {action}"
            if returning:
                statement += f" RETURNING {returning}"
            cursor.execute(statement, params)
            if returning:
                returned.extend(cursor.fetchall())
    return returned


def add_hours(rows: Sequence[tuple[tuple[int, datetime], int]]) -> None:
    _upsert(
        _HOURS,
        "source_id:bigint, hour:timestamptz, count:bigint",
        [(source_id, _moment(hour), count) for (source_id, hour), count in rows],
        "source_id, hour",
        f"DO UPDATE SET count = {_HOURS}.count + excluded.count",
    )


def add_minutes(rows: Sequence[tuple[int, int, datetime, int]]) -> None:
    """A slot holding an older minute starts over; one holding a newer minute (a late batch) is kept."""
    _, greatest = _least_greatest()
    _upsert(
        _MINUTES,
        "source_id:bigint, slot:smallint, minute:timestamptz, count:bigint",
        [(source_id, slot, _moment(minute), count) for source_id, slot, minute, count in rows],
        "source_id, slot",
        f"DO UPDATE SET count = CASE WHEN {_MINUTES}.minute = excluded.minute THEN {_MINUTES}.count + excluded.count "
        f"WHEN {_MINUTES}.minute < excluded.minute THEN excluded.count ELSE {_MINUTES}.count END, "
        f"minute = {greatest}({_MINUTES}.minute, excluded.minute)",
    )


def _seen_update(table: str) -> str:
    least, greatest = _least_greatest()
    return (
        f"DO UPDATE SET count = {table}.count + excluded.count, "
        f"first_seen = {least}({table}.first_seen, excluded.first_seen), "
        f"last_seen = {greatest}({table}.last_seen, excluded.last_seen)"
    )


def upsert_events(
    rows: Sequence[tuple[tuple[int, str, str], int, datetime, datetime]],
) -> dict[tuple[int, str, str], int]:
    """Count the events; returns the id of each event key."""
    returned = _upsert(
        _EVENTS,
        f"source_id:bigint, event_type:text, event_name:text, {_SEEN}",
        [(*key, count, _moment(first), _moment(last)) for key, count, first, last in rows],
        "source_id, event_type, event_name",
        _seen_update(_EVENTS),
        returning="id, source_id, event_type, event_name",
    )
    return {(source_id, kind, name): pk for pk, source_id, kind, name in returned}


def upsert_fields(rows: Sequence[tuple[int, str, str, int, datetime, datetime]]) -> None:
    _upsert(
        _FIELDS,
        f"observed_event_id:bigint, path:text, json_type:text, {_SEEN}",
        [
            (event_id, path, kind, count, _moment(first), _moment(last))
            for event_id, path, kind, count, first, last in rows
        ],
        "observed_event_id, path, json_type",
        _seen_update(_FIELDS),
    )


def add_to_fields(rows: Sequence[tuple[int, str, str, int, datetime, datetime]]) -> None:
    """Add held sightings to their field rows, as upsert_fields does (same lock order), skipping the
    rows of events no longer there (source deleted, insights rebuilt) instead of failing the batch."""
    if not rows:
        return
    present = set(ObservedEvent.objects.filter(id__in={row[0] for row in rows}).values_list("id", flat=True))
    upsert_fields([row for row in rows if row[0] in present])


def upsert_identities(
    rows: Sequence[tuple[int, str, str, bool, date | None]],
) -> list[tuple[int, str, str, date | None]]:
    """Rows are sightings (tied false, the month seen) or ties (tied true, no month). Returns the rows
    that changed the counts: a sighting returned is new in its month and untied; a tie returned was
    not tied before, with the month it had been counted in (or none)."""
    t = _IDENTITIES
    returned = _upsert(
        t,
        "workspace_id:bigint, kind:text, value:text, tied:boolean, counted_month:date",
        [(ws, kind, value, tied, _day(month)) for ws, kind, value, tied, month in rows],
        "workspace_id, kind, value",
        f"DO UPDATE SET tied = ({t}.tied OR excluded.tied), "
        f"counted_month = CASE WHEN excluded.tied THEN {t}.counted_month ELSE excluded.counted_month END "
        f"WHERE (excluded.tied AND NOT {t}.tied) OR (NOT excluded.tied AND NOT {t}.tied "
        f"AND ({t}.counted_month IS NULL OR {t}.counted_month < excluded.counted_month))",
        returning="workspace_id, kind, value, counted_month",
    )
    return [(ws, kind, value, _as_date(month)) for ws, kind, value, month in returned]


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def add_monthly_users(rows: Sequence[tuple[int, date, int, int]]) -> None:
    _upsert(
        _MONTHLY,
        "workspace_id:bigint, month:date, users:bigint, anonymous:bigint",
        [(ws, _day(month), users, anonymous) for ws, month, users, anonymous in rows],
        "workspace_id, month",
        f"DO UPDATE SET users = {_MONTHLY}.users + excluded.users, "
        f"anonymous = {_MONTHLY}.anonymous + excluded.anonymous",
    )


class SourceState(NamedTuple):
    workspace_id: int
    workspace_created: datetime
    observed_names: int  # only counted for the sources asked for, else 0


def sources_state(source_ids: Sequence[int], counting: Collection[int] = ()) -> dict[int, SourceState]:
    """Per source: its workspace (id and creation time) and, for the sources in `counting`, how many
    event names its schema holds (a subquery per source: left out when no source needs it)."""
    if not source_ids:
        return {}
    rows = Source.objects.filter(id__in=source_ids)
    if counting:
        events = ObservedEvent.objects.filter(source_id=OuterRef("pk")).order_by().values("source_id")
        counted = Subquery(events.annotate(n=Count("id")).values("n"))
        rows = rows.annotate(observed_names=Case(When(id__in=list(counting), then=Coalesce(counted, 0)), default=0))
    else:
        rows = rows.annotate(observed_names=Value(0))
    columns = ("id", "workspace_id", "workspace__created_at", "observed_names")
    return {pk: SourceState(*state) for pk, *state in rows.values_list(*columns)}


def event_keys(source_ids: Sequence[int]) -> set[tuple[int, str, str]]:
    rows = ObservedEvent.objects.filter(source_id__in=source_ids).values_list("source_id", "event_type", "event_name")
    return set(rows)


def count_fields(event_ids: Sequence[int]) -> dict[int, int]:
    if not event_ids:
        return {}
    rows = ObservedField.objects.filter(observed_event_id__in=event_ids).order_by().values("observed_event_id")
    return dict(rows.annotate(n=Count("id")).values_list("observed_event_id", "n"))


def field_keys(event_ids: Sequence[int]) -> set[tuple[int, str, str]]:
    rows = ObservedField.objects.filter(observed_event_id__in=event_ids)
    return set(rows.values_list("observed_event_id", "path", "json_type"))
