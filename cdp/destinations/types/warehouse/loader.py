"""Loading one source's events into its schema, inside the caller's transaction.

Order of work: find events already loaded (they are skipped whole, so a retried batch adds nothing),
evolve the tables the rest need, insert the event rows, merge the users' traits, then keep every value
that did not fit in the conflicts table."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cdp.destinations.types.warehouse import naming
from cdp.destinations.types.warehouse.dialect import PostgresDialect, qualified, quote
from cdp.destinations.types.warehouse.rows import (
    COMMON_COLUMNS,
    CONFLICT_COLUMNS,
    CONFLICT_KEY,
    TRACK_COLUMNS,
    TYPE_COLUMNS,
    USER_COLUMNS,
    EventRows,
)
from cdp.destinations.types.warehouse.schema import Catalog, Conflict, TablePlan, fit_row, plan_table, read_catalog

_IN_CHUNK = 500
_OLDEST = datetime.min.replace(tzinfo=UTC)


@dataclass
class Outcome:
    """What happened to one event."""

    tables: list[str] = field(default_factory=list)
    conflicts: int = 0
    duplicate: bool = False

    def describe(self, schema: str) -> str:
        if self.duplicate:
            return f"already loaded into {schema}: stored once"
        note = f", {self.conflicts} value(s) kept in {schema}.conflicts" if self.conflicts else ""
        return f"loaded into {', '.join(f'{schema}.{t}' for t in self.tables)}{note}"


def _standard(table: str) -> tuple[tuple[str, str], ...]:
    return COMMON_COLUMNS + TYPE_COLUMNS.get(table, TRACK_COLUMNS)


def _chunks(values: list[str]) -> list[list[str]]:
    return [values[i : i + _IN_CHUNK] for i in range(0, len(values), _IN_CHUNK)]


def _select_in(cursor: Any, schema: str, table: str, columns: str, ids: list[str]) -> list[tuple]:
    found: list[tuple] = []
    for chunk in _chunks(ids):
        marks = ", ".join(["%s"] * len(chunk))
        cursor.execute(f"SELECT {columns} FROM {qualified(schema, table)} WHERE {quote('id')} IN ({marks})", chunk)
        found += cursor.fetchall()
    return found


def _new_events(
    cursor: Any, schema: str, catalog: Catalog, events: list[EventRows], outcomes: dict[str, Outcome]
) -> list[EventRows]:
    """The events whose row is not stored yet (message ids are unique within `events`)."""
    by_table: dict[str, list[str]] = defaultdict(list)
    for event in events:
        by_table[event.rows[0].table].append(event.message_id)
    stored: set[str] = set()
    for table, ids in by_table.items():
        if table in catalog:
            stored |= {row[0] for row in _select_in(cursor, schema, table, quote("id"), ids)}
    for message_id in stored:
        outcomes[message_id].duplicate = True
    return [event for event in events if event.message_id not in stored]


def load_schema(
    cursor: Any, dialect: PostgresDialect, schema: str, events: list[EventRows], loaded_at: datetime
) -> dict[str, Outcome]:
    """Load the events (all of one source, each message id once) into `schema`; returns each message
    id's outcome."""
    outcomes = {event.message_id: Outcome() for event in events}
    catalog = read_catalog(cursor, schema)
    if catalog is None:
        cursor.execute(dialect.create_schema(schema))
        catalog = {}
    fresh = _new_events(cursor, schema, catalog, events, outcomes)
    by_table: dict[str, list[tuple[EventRows, Any]]] = defaultdict(list)
    for event in fresh:
        for row in event.rows:
            by_table[row.table].append((event, row))
    users = [(event, event.user) for event in fresh if event.user is not None]
    plans = {table: plan_table(dialect, catalog, table, _standard(table), ("id",), [r for _, r in pairs])
             for table, pairs in by_table.items()}  # fmt: skip
    if users:
        plans[naming.USERS] = plan_table(
            dialect, catalog, naming.USERS, USER_COLUMNS, ("id",), [row for _, row in users]
        )  # fmt: skip
    for plan in plans.values():
        for statement in plan.statements(dialect, schema):
            cursor.execute(statement)
    conflicts: list[Conflict] = []
    received = {event.message_id: event.received_at for event in fresh}
    for table, pairs in by_table.items():
        rows = [fit_row(dialect, plans[table], event.message_id, row, conflicts) for event, row in pairs]
        _insert(cursor, dialect, schema, table, ("id",), rows, loaded_at)
        for event, _ in pairs:
            outcomes[event.message_id].tables.append(table)
    if users:
        fitted = [(event, fit_row(dialect, plans[naming.USERS], event.message_id, row, conflicts))
                  for event, row in users]  # fmt: skip
        _merge_users(cursor, dialect, schema, naming.USERS in catalog, fitted, loaded_at)
        for event, _ in users:
            outcomes[event.message_id].tables.append(naming.USERS)
    if conflicts:
        _keep_conflicts(cursor, dialect, schema, catalog, conflicts, received, loaded_at)
        for conflict in conflicts:
            outcomes[conflict.message_id].conflicts += 1
    return outcomes


def _insert(
    cursor: Any, dialect: PostgresDialect, schema: str, table: str, key: tuple[str, ...],
    rows: list[dict[str, Any]], loaded_at: datetime,
) -> None:  # fmt: skip
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    columns.pop("loaded_at", None)
    names = list(columns)
    params = [[row.get(name) for name in names] + [loaded_at] for row in rows]
    cursor.executemany(dialect.insert_new(schema, table, [*names, "loaded_at"], key), params)


def _fold(rows: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for row in rows:
        merged.update(row)
    return merged


def _moment(event: EventRows) -> datetime:
    return event.timestamp or event.received_at or _OLDEST


def _merge_users(
    cursor: Any, dialect: PostgresDialect, schema: str, table_existed: bool,
    fitted: list[tuple[EventRows, dict[str, Any]]], loaded_at: datetime,
) -> None:  # fmt: skip
    """The latest traits per user: a newer identify overwrites the traits it carries, an older one
    only fills traits the user does not have yet; traits an identify leaves out are kept."""
    per_user: dict[str, list[tuple[EventRows, dict[str, Any]]]] = defaultdict(list)
    for event, data in fitted:
        if data.get("id"):
            per_user[data["id"]].append((event, data))
    ids = list(per_user)
    known = dict(_select_in(cursor, schema, naming.USERS, f"{quote('id')}, {quote('timestamp')}", ids)
                 if table_existed else [])  # fmt: skip
    inserts = []
    for user_id, entries in per_user.items():
        entries.sort(key=lambda entry: _moment(entry[0]))
        if user_id not in known:
            inserts.append(_fold([data for _, data in entries]))
            continue
        current = known[user_id] if isinstance(known[user_id], datetime) else None
        newer = [data for event, data in entries if current is None or _moment(event) >= current]
        older = [data for event, data in entries if current is not None and _moment(event) < current]
        overwrite = {**_fold(newer), "loaded_at": loaded_at}
        fill = {k: v for k, v in _fold(older).items() if k not in overwrite}
        overwrite.pop("id", None)
        fill.pop("id", None)
        assignments = [f"{quote(c)} = %s" for c in overwrite] + [f"{quote(c)} = COALESCE({quote(c)}, %s)" for c in fill]
        cursor.execute(
            f"UPDATE {qualified(schema, naming.USERS)} SET {', '.join(assignments)} WHERE {quote('id')} = %s",
            [*overwrite.values(), *fill.values(), user_id],
        )
    if inserts:
        _insert(cursor, dialect, schema, naming.USERS, ("id",), inserts, loaded_at)


def _keep_conflicts(
    cursor: Any, dialect: PostgresDialect, schema: str, catalog: Catalog, conflicts: list[Conflict],
    received: dict[str, datetime | None], loaded_at: datetime,
) -> None:  # fmt: skip
    if naming.CONFLICTS not in catalog:
        plan = TablePlan(naming.CONFLICTS, CONFLICT_KEY, {}, create=CONFLICT_COLUMNS)
        for statement in plan.statements(dialect, schema):
            cursor.execute(statement)
    rows = [
        {"message_id": c.message_id, "table_name": c.table, "column_name": c.column, "value": c.value,
         "value_type": c.value_type, "expected_type": c.expected_type, "received_at": received.get(c.message_id)}
        for c in conflicts
    ]  # fmt: skip
    _insert(cursor, dialect, schema, naming.CONFLICTS, CONFLICT_KEY, rows, loaded_at)
