"""The routing configuration's version: one number that changes with every committed change of the
tables routing reads (sources, destinations, the sources feeding each destination, subscriptions),
however it was made (a model's save(), QuerySet.update(), a bulk delete, raw SQL, TRUNCATE).

Database triggers write it, so nothing that changes the configuration can forget to: on PostgreSQL one
statement-level trigger per table sets it from a sequence, on SQLite row-level triggers set it to a
random 64-bit number. Either way a value is never reused, not even after a rolled-back transaction had
taken it, so a process may keep the configuration it loaded and trust it as long as it reads the same
version; see `cdp.delivery.routing`.

The table and triggers are installed after every `migrate` (post_migrate), so that a migration which
rebuilds one of those tables (SQLite rebuilds tables for many schema changes, dropping their triggers)
gets them back. `current()` also checks that every trigger is in place and answers None when one is
missing: then callers load the configuration afresh for every batch.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import connections

log = logging.getLogger(__name__)

TABLE = "cdp_routing_version"
WATCHED = ("core_source", "core_destination", "core_destination_sources", "destinations_subscription")
_PG_SEQUENCE = "cdp_routing_version_seq"
_PG_FUNCTION = "cdp_routing_changed"
_PG_TRIGGER = "cdp_routing_changed"  # the same name on every watched table
_SQLITE_PREFIX = "cdp_routing_changed_"
_SQLITE_EVENTS = ("insert", "update", "delete")
_RECHECK_SECONDS = 30.0  # how often a process that found no version table looks again

_table_seen_at: dict[str, float] = {}  # database alias → when the version table was last looked for
_table_present: dict[str, bool] = {}
_warned: set[str] = set()


def install(using: str = "default") -> None:
    """Create the version table and the triggers that are missing (idempotent; locks no table that
    already has its triggers)."""
    connection = connections[using]
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
        watched = [table for table in WATCHED if table in tables]
        if connection.vendor == "postgresql":
            _install_postgresql(cursor, watched)
        elif connection.vendor == "sqlite":
            _install_sqlite(cursor, watched)
        else:
            return
    _table_present.pop(using, None)
    _table_seen_at.pop(using, None)
    _warned.discard(using)


def _install_postgresql(cursor: Any, watched: list[str]) -> None:
    cursor.execute(f"CREATE SEQUENCE IF NOT EXISTS {_PG_SEQUENCE}")
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id smallint PRIMARY KEY, version bigint NOT NULL)")
    cursor.execute(f"INSERT INTO {TABLE} VALUES (1, nextval('{_PG_SEQUENCE}')) ON CONFLICT (id) DO NOTHING")
    cursor.execute(
        f"CREATE OR REPLACE FUNCTION {_PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"UPDATE {TABLE} SET version = nextval('{_PG_SEQUENCE}') WHERE id = 1; RETURN NULL; END $$"
    )
    cursor.execute(
        "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE t.tgname = %s AND c.relname = ANY(%s) AND pg_table_is_visible(c.oid)",
        [_PG_TRIGGER, watched],
    )
    present = {row[0] for row in cursor.fetchall()}
    for table in watched:
        if table not in present:
            cursor.execute(
                f"CREATE TRIGGER {_PG_TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {_PG_FUNCTION}()"
            )


def _install_sqlite(cursor: Any, watched: list[str]) -> None:
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id integer PRIMARY KEY, version integer NOT NULL)")
    cursor.execute(f"INSERT OR IGNORE INTO {TABLE} (id, version) VALUES (1, random())")
    for table in watched:
        for event in _SQLITE_EVENTS:
            cursor.execute(
                f"CREATE TRIGGER IF NOT EXISTS {_SQLITE_PREFIX}{table}_{event} AFTER {event.upper()} ON {table} "
                f"BEGIN UPDATE {TABLE} SET version = random() WHERE id = 1; END"
            )


def _version_sql(vendor: str) -> str | None:
    """The version, and how many of the triggers are in place, in one statement."""
    if vendor == "postgresql":
        relations = ", ".join(f"to_regclass('{table}')" for table in WATCHED)
        return (
            f"SELECT version, (SELECT count(*) FROM pg_trigger WHERE tgname = '{_PG_TRIGGER}' "
            f"AND tgrelid IN ({relations})) FROM {TABLE} WHERE id = 1"
        )
    if vendor == "sqlite":
        return (
            f"SELECT version, (SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
            f"AND name LIKE '{_SQLITE_PREFIX}%') FROM {TABLE} WHERE id = 1"
        )
    return None


_EXPECTED = {"postgresql": len(WATCHED), "sqlite": len(WATCHED) * len(_SQLITE_EVENTS)}


def current(using: str = "default") -> int | None:
    """The configuration's version as this connection sees it now; None when it cannot be trusted
    (no version table yet, a trigger missing, another database engine)."""
    connection = connections[using]
    statement = _version_sql(connection.vendor)
    if statement is None or not _has_table(using):
        return None
    with connection.cursor() as cursor:
        cursor.execute(statement)
        row = cursor.fetchone()
    if row is None or row[1] != _EXPECTED[connection.vendor]:
        if using not in _warned:
            _warned.add(using)
            log.warning("the routing configuration's version is not kept up: run `manage.py migrate`")
        return None
    return int(row[0])


def _has_table(using: str) -> bool:
    """Whether the version table exists, asked once (and again every _RECHECK_SECONDS while it does not):
    reading a table that is not there would break the caller's transaction on PostgreSQL."""
    if _table_present.get(using):
        return True
    now = time.monotonic()
    if now - _table_seen_at.get(using, -_RECHECK_SECONDS) < _RECHECK_SECONDS:
        return False
    _table_seen_at[using] = now
    connection = connections[using]
    with connection.cursor() as cursor:
        present = TABLE in connection.introspection.table_names(cursor)
    _table_present[using] = present
    return present
