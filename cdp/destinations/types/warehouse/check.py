"""Warehouse connection test: connect as loads do, then ask PostgreSQL whether this user may create the
sources' schemas (or at least use the existing ones), so a missing grant shows before the first load."""

from __future__ import annotations

import time

import psycopg

from cdp.core.models import Destination
from cdp.destinations.framework import ConnectionCheck
from cdp.destinations.types.warehouse import connection
from cdp.destinations.types.warehouse.errors import classify
from cdp.destinations.types.warehouse.naming import schema_name
from cdp.destinations.types.warehouse.sender import DEFAULT_SCHEMA_PREFIX

_ABOUT = """
    SELECT current_user, current_database(), current_setting('server_version'), pg_is_in_recovery(),
           has_database_privilege(current_database(), 'CREATE')
"""
# Schemas named like this destination's (<prefix>_<source id>) that the user can load into already.
_USABLE_SCHEMAS = """
    SELECT nspname FROM pg_namespace
    WHERE nspname ~ %s AND has_schema_privilege(nspname, 'USAGE') AND has_schema_privilege(nspname, 'CREATE')
    ORDER BY nspname
"""


def check(destination: Destination) -> ConnectionCheck:
    started = time.perf_counter()
    settings = destination.settings
    where = connection.describe(settings)
    try:
        conn = connection.connect(settings, destination.timeout_seconds)
    except connection.SettingsError as exc:
        return ConnectionCheck(False, str(exc), _ms(started))
    except psycopg.Error as exc:
        return ConnectionCheck(False, classify(exc, destination.timeout_seconds).error, _ms(started))
    with conn:
        user, database, version, standby, can_create = conn.execute(_ABOUT).fetchone()
        if standby:
            message = f"{where} is a read-only standby: connect to the primary."
            return ConnectionCheck(False, message, _ms(started))
        connected = f"Connected to {where} as {user} (PostgreSQL {version})"
        if can_create:
            return ConnectionCheck(True, f"{connected}; it can create the sources' schemas.", _ms(started))
        pattern = "^" + schema_name(str(settings.get("schema_prefix") or DEFAULT_SCHEMA_PREFIX), 0)[:-1] + "[0-9]+$"
        usable = [row[0] for row in conn.execute(_USABLE_SCHEMAS, [pattern]).fetchall()]
    if usable:
        message = (
            f"{connected}; it can load into {', '.join(usable)} but cannot create schemas for other sources: "
            f"grant CREATE on database {database} to {user} for those."
        )
        return ConnectionCheck(True, message, _ms(started))
    message = (
        f"{connected}, but {user} cannot create schemas: grant CREATE on database {database} to {user} "
        "(or create the sources' schemas and grant USAGE and CREATE on them)."
    )
    return ConnectionCheck(False, message, _ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
