"""PostgreSQL warehouse delivery: each batch is loaded in one transaction, a schema per source.

When the warehouse refuses a batch because of some event's data (a value a column a human narrowed
cannot take, say), the batch's events are loaded again one transaction each, so only the events at
fault fail. Events that are not Segment events at all fail before anything is sent."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg

from cdp.core.models import Destination
from cdp.delivery.models import ErrorClass
from cdp.delivery.senders import Item, Result
from cdp.delivery.transport import Transport
from cdp.destinations.types.warehouse import connection
from cdp.destinations.types.warehouse.dialect import POSTGRES, PostgresDialect
from cdp.destinations.types.warehouse.errors import Failure, classify, configuration
from cdp.destinations.types.warehouse.loader import Outcome, load_schema
from cdp.destinations.types.warehouse.naming import schema_name
from cdp.destinations.types.warehouse.rows import EventError, EventRows, event_rows

DEFAULT_SCHEMA_PREFIX = "cdp"
_EXCERPT = 2000
Prepared = tuple[Item, str, EventRows]  # an item, its schema, its rows


class WarehouseSender:
    dialect: PostgresDialect = POSTGRES

    def takes_batches(self, destination: Destination) -> bool:
        return True

    def send(self, destination: Destination, items: list[Item], transport: Transport) -> list[Result]:
        started = time.perf_counter()
        settings = destination.settings
        target = connection.describe(settings)
        prefix = str(settings.get("schema_prefix") or DEFAULT_SCHEMA_PREFIX)
        results: list[Result] = []
        prepared: list[Prepared] = []
        first: dict[tuple[str, str], int] = {}  # (schema, message id) → delivery id loading it
        repeats: list[tuple[Item, int]] = []
        for item in items:
            schema = schema_name(prefix, item.source_id)
            try:
                rows = event_rows(item.fields.get("event"))
            except EventError as exc:
                failure = Failure(ErrorClass.PAYLOAD, f"cannot load this event: {exc}", retryable=False)
                results.append(_failed(item, failure, _request(item, target, schema, len(items)), started))
                continue
            if (schema, rows.message_id) in first:
                repeats.append((item, first[(schema, rows.message_id)]))
            else:
                first[(schema, rows.message_id)] = item.delivery_id
                prepared.append((item, schema, rows))
        if prepared:
            loaded = self._connect_and_load(destination, prepared, target, len(items), started)
            results += loaded + _repeated(repeats, loaded)
        return results

    def _connect_and_load(
        self, destination: Destination, prepared: list[Prepared], target: str, batch: int, started: float
    ) -> list[Result]:
        try:
            conn = connection.connect(destination.settings, destination.timeout_seconds)
        except connection.SettingsError as exc:
            return self._all_failed(prepared, configuration(str(exc)), target, batch, started)
        except psycopg.Error as exc:
            return self._all_failed(prepared, classify(exc, destination.timeout_seconds), target, batch, started)
        with conn:
            return self._load(conn, destination, prepared, target, batch, started)

    def _load(
        self, conn: psycopg.Connection, destination: Destination, prepared: list[Prepared], target: str,
        batch: int, started: float,
    ) -> list[Result]:  # fmt: skip
        try:
            outcomes = self._transaction(conn, destination, prepared)
        except psycopg.Error as exc:
            failure = classify(exc, destination.timeout_seconds)
            if failure.per_event and len(prepared) == 1:
                return self._all_failed(prepared, _event_fault(failure), target, batch, started)
            if not failure.per_event or conn.closed:
                return self._all_failed(prepared, failure, target, batch, started)
            return self._one_by_one(conn, destination, prepared, target, batch, started)
        return [_loaded(item, outcomes[(schema, rows.message_id)], schema, target, batch, started)
                for item, schema, rows in prepared]  # fmt: skip

    def _transaction(
        self, conn: psycopg.Connection, destination: Destination, prepared: list[Prepared]
    ) -> dict[tuple[str, str], Outcome]:
        """Load everything in one transaction; outcomes by (schema, message id)."""
        loaded_at = datetime.now(UTC)
        by_schema: dict[str, list[EventRows]] = defaultdict(list)
        for _, schema, rows in prepared:
            by_schema[schema].append(rows)
        outcomes: dict[tuple[str, str], Outcome] = {}
        with conn.transaction(), conn.cursor() as cursor:
            for statement in self.dialect.session_setup(int(destination.timeout_seconds * 1000)):
                cursor.execute(statement)
            for schema, events in by_schema.items():
                for message_id, outcome in load_schema(cursor, self.dialect, schema, events, loaded_at).items():
                    outcomes[(schema, message_id)] = outcome
        return outcomes

    def _one_by_one(
        self, conn: psycopg.Connection, destination: Destination, prepared: list[Prepared], target: str,
        batch: int, started: float,
    ) -> list[Result]:  # fmt: skip
        results: list[Result] = []
        for index, (item, schema, rows) in enumerate(prepared):
            try:
                outcome = self._transaction(conn, destination, [(item, schema, rows)])[(schema, rows.message_id)]
            except psycopg.Error as exc:
                failure = classify(exc, destination.timeout_seconds)
                if not failure.per_event:  # the warehouse itself failed: the rest wait for the retry
                    return results + self._all_failed(prepared[index:], failure, target, batch, started)
                results.append(_failed(item, _event_fault(failure), _request(item, target, schema, batch), started))
                continue
            results.append(_loaded(item, outcome, schema, target, batch, started))
        return results

    def _all_failed(
        self, prepared: list[Prepared], failure: Failure, target: str, batch: int, started: float
    ) -> list[Result]:
        return [_failed(item, failure, _request(item, target, schema, batch), started) for item, schema, _ in prepared]


def _event_fault(failure: Failure) -> Failure:
    return Failure(failure.error_class, f"cannot load this event: {failure.error}", retryable=False)


def _repeated(repeats: list[tuple[Item, int]], loaded: list[Result]) -> list[Result]:
    """A message id repeated within a batch shares the outcome of its first delivery: stored once."""
    by_id = {result.delivery_id: result for result in loaded}
    out = []
    for item, first_id in repeats:
        result = replace(by_id[first_id], delivery_id=item.delivery_id)
        if result.ok:
            result.response_body = f"the same event is earlier in this batch: stored once ({result.response_body})"
        out.append(result)
    return out


def _request(item: Item, target: str, schema: str, batch: int) -> dict[str, Any]:
    """Evidence for one delivery: where it was loaded and its own event (never the password)."""
    body = orjson.dumps(item.fields.get("event"))
    return {
        "method": "LOAD", "url": f"{target} schema {schema}", "body": body[:_EXCERPT].decode(errors="replace"),
        "body_bytes": len(body), "events": batch,
    }  # fmt: skip


def _loaded(item: Item, outcome: Outcome, schema: str, target: str, batch: int, started: float) -> Result:
    return Result(
        item.delivery_id, ok=True, duration_ms=_ms(started), request=_request(item, target, schema, batch),
        response_body=outcome.describe(schema),
    )  # fmt: skip


def _failed(item: Item, failure: Failure, request: dict[str, Any], started: float) -> Result:
    return Result(
        item.delivery_id, ok=False, duration_ms=_ms(started), request=request, error_class=failure.error_class,
        error=failure.error, retryable=failure.retryable,
    )  # fmt: skip


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
