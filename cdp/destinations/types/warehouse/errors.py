"""What a failed load means for a retry, from the psycopg exception and its SQLSTATE.

An unreachable or busy warehouse is retried; settings that can never work (an unknown database, a
user without rights, a read-only server) fail permanently with a message saying what to fix; an error
caused by the data of some event (SQLSTATE classes 22, 23 and 54) makes the sender load the batch's
events one by one, so that only the events at fault fail."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import errors

from cdp.delivery.models import ErrorClass
from cdp.destinations.types.warehouse.connection import connect_seconds


@dataclass(frozen=True)
class Failure:
    error_class: str
    error: str
    retryable: bool
    per_event: bool = False  # some event's data is at fault, not the warehouse


def configuration(message: str) -> Failure:
    return Failure(ErrorClass.CONFIGURATION, message, retryable=False)


# Words of libpq's connection failures (they carry no SQLSTATE) that no retry can fix.
_BAD_SETTINGS = (
    "does not exist", "password authentication failed", "no password supplied", "no pg_hba.conf entry",
    "not permitted to log in", "does not support ssl", "ssl is not enabled", "sslmode", "certificate",
    "invalid port", "invalid integer",
)  # fmt: skip
_BUSY = ("too many clients", "too many connections", "starting up", "shutting down", "in recovery")
# SQLSTATEs of one load racing another (two destinations feeding one schema): the retry sees the result.
_RACES = {"23505", "42P06", "42P07", "42701", "42P01", "42703", "40001", "40P01", "55P03"}
_PRIVILEGES_HINT = (
    "the user needs CREATE on the database (to create the source's schema) and, on existing schemas, "
    "USAGE and CREATE, with SELECT, INSERT and UPDATE on their tables"
)


def classify(exc: Exception, timeout: float) -> Failure:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, errors.ConnectionTimeout):
        waited = connect_seconds(timeout)
        return Failure(ErrorClass.TIMEOUT, f"could not connect within {waited}s: {detail}", retryable=True)
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if not sqlstate:
        return _without_sqlstate(exc, detail)
    if sqlstate == "57014":
        return Failure(ErrorClass.TIMEOUT, f"a statement ran longer than {timeout:g}s: {detail}", retryable=True)
    if sqlstate == "42501":
        return configuration(f"permission denied ({detail}): {_PRIVILEGES_HINT}")
    if sqlstate.startswith("28") or sqlstate == "3D000":
        return configuration(f"the warehouse refused the login: {detail}")
    if sqlstate == "25006":
        return configuration(f"the warehouse is read-only (a standby?): connect to the primary. {detail}")
    if sqlstate in _RACES or sqlstate.startswith(("08", "53", "57", "58", "XX")):
        return Failure(ErrorClass.SERVER, f"{detail} (SQLSTATE {sqlstate})", retryable=True)
    if sqlstate.startswith(("22", "23", "54")):
        return Failure(ErrorClass.PAYLOAD, f"{detail} (SQLSTATE {sqlstate})", retryable=False, per_event=True)
    if sqlstate.startswith("42"):
        return configuration(f"the warehouse refused the SQL: {detail} (SQLSTATE {sqlstate})")
    return Failure(ErrorClass.SERVER, f"{detail} (SQLSTATE {sqlstate})", retryable=True)


def _without_sqlstate(exc: Exception, detail: str) -> Failure:
    if isinstance(exc, psycopg.DataError):  # refused before it was sent, e.g. a NUL in a string
        return Failure(ErrorClass.PAYLOAD, detail, retryable=False, per_event=True)
    if isinstance(exc, psycopg.ProgrammingError):
        return configuration(f"the connection settings are not valid: {detail}")
    lowered = detail.lower()
    if isinstance(exc, psycopg.OperationalError) and any(words in lowered for words in _BAD_SETTINGS):
        return configuration(f"cannot connect with these settings: {detail}")
    if any(words in lowered for words in _BUSY):
        return Failure(ErrorClass.SERVER, f"the warehouse is busy: {detail}", retryable=True)
    return Failure(ErrorClass.NETWORK, detail, retryable=True)
