"""Connecting to the warehouse from a destination's settings: a connection URL, or its parts.

A connection lives for one load. Loads come every few minutes, so a pool would mostly hold idle
connections open on the warehouse; connecting costs milliseconds next to a load."""

from __future__ import annotations

import math
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

DEFAULT_PORT = 5432
APPLICATION_NAME = "cdp-warehouse"
_PARTS = {"host": "host", "port": "port", "database": "dbname", "user": "user", "password": "password",
          "sslmode": "sslmode"}  # fmt: skip


class SettingsError(ValueError):
    """The settings say nothing usable about where the warehouse is."""


def conninfo(settings: dict[str, Any]) -> str:
    url = str(settings.get("connection_url") or "").strip()
    if url:
        if not url.startswith(("postgres://", "postgresql://")):
            raise SettingsError("the connection URL must start with postgresql:// (or postgres://)")
        return url
    if not settings.get("host"):
        raise SettingsError("set either the connection URL or the host (with database, user and password)")
    parts = {keyword: settings[key] for key, keyword in _PARTS.items() if settings.get(key) not in (None, "")}
    return make_conninfo(**{keyword: str(value) for keyword, value in parts.items()})


def describe(settings: dict[str, Any]) -> str:
    """Where loads go, for attempt records: postgresql://user@host:port/database, never a password."""
    try:
        parts = conninfo_to_dict(conninfo(settings))
    except (SettingsError, psycopg.ProgrammingError):
        return "(unusable connection settings)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host, port = parts.get("host") or "localhost", parts.get("port") or DEFAULT_PORT
    return f"postgresql://{user}{host}:{port}/{parts.get('dbname') or ''}"


def connect_seconds(timeout: float) -> int:
    """libpq waits whole seconds, and at least two, whatever it is given."""
    return max(2, math.ceil(timeout))


def connect(settings: dict[str, Any], timeout: float) -> psycopg.Connection:
    """An open connection in a transaction (not autocommit). Prepared statements stay off: poolers
    such as PgBouncer in transaction mode, and some PostgreSQL-protocol warehouses, lack them."""
    return psycopg.connect(
        conninfo(settings), connect_timeout=connect_seconds(timeout), application_name=APPLICATION_NAME,
        prepare_threshold=None,
    )  # fmt: skip
