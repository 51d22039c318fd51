"""Draining one destination's due deliveries: hold the destination's drain lease, claim, send, record
every attempt, schedule retries with randomised exponential backoff, dead-letter what runs out of time."""

from __future__ import annotations

import logging
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from typing import Any

import orjson
import psycopg
from django.conf import settings
from django.db import ProgrammingError, close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from cdp.core.models import Destination
from cdp.core.waiting import look_until
from cdp.debugger import stages as debug_taps
from cdp.delivery.lanes import Breaker, Lane
from cdp.delivery.leases import Lease
from cdp.delivery.models import OPEN_STATUSES, Delivery, DeliveryAttempt, DrainLease, ErrorClass, Exchange, Status
from cdp.delivery.senders import Item, Result, Sender
from cdp.delivery.transport import shared_transport
from cdp.destinations import registry

log = logging.getLogger(__name__)


@dataclass
class DrainResult:
    sent: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    dead: int = 0
    busy: bool = False  # another task held the destination's lane
    requeue: bool = False  # work may be left: queue another drain (due rows, or a wake-up during this one)


@lru_cache(maxsize=64)
def sender_for(type_key: str) -> Sender | None:
    dtype = registry.get(type_key)
    if dtype is None or not dtype.sender:
        return None
    return import_string(dtype.sender)()


def due(destination_id: int | None, now: datetime) -> Q:
    """Deliveries that may go now (of one destination, or of all): open, their time come."""
    of = Q(destination_id=destination_id) if destination_id is not None else Q()
    return of & Q(status__in=OPEN_STATUSES, next_attempt_at__lte=now)


def backoff_seconds(attempts: int, retry_after: float | None = None) -> float:
    """Randomised exponential backoff, at most CDP_RETRY_MAX_DELAY_SECONDS (jitter included); a
    destination's Retry-After is a floor, never ignored."""
    base = settings.CDP_RETRY_BASE_SECONDS * (2 ** max(0, attempts - 1))
    delay = min(settings.CDP_RETRY_MAX_DELAY_SECONDS, base * random.uniform(0.5, 1.5))
    return max(delay, retry_after or 0.0)


@dataclass(slots=True)
class Claimed:
    """A claimed delivery: the columns the engine, the senders and the debugger read, without a model
    instance per row (a batching drain claims thousands a second)."""

    pk: int
    destination_id: int
    subscription_id: int | None
    event_id: int
    source_id: int
    message_id: str
    event_name: str
    action: str
    document: str | dict[str, Any]  # the mapped payload: JSON text as claimed on PostgreSQL until first read
    status: str
    attempts: int
    next_attempt_at: datetime
    received_at: datetime
    created_at: datetime
    error_class: str = ""
    last_error: str = ""
    finished_at: datetime | None = None

    @property
    def payload(self) -> dict[str, Any]:
        """Parsed on first read only: a batching drain holds thousands of claimed rows, and thousands of
        parsed documents kept alive at once cost more in garbage collection than the parsing itself."""
        if isinstance(self.document, str):
            self.document = orjson.loads(self.document)
        return self.document


_CLAIMED = (
    "id", "destination_id", "subscription_id", "event_id", "source_id", "message_id", "event_name", "action",
    "payload", "status", "attempts", "next_attempt_at", "received_at", "created_at",
)  # fmt: skip
_TIMES = {"next_attempt_at", "received_at", "created_at"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _returned(column: str) -> str:
    """The payload as text (parsed by orjson when read) and times as microseconds since the epoch: reading thousands
    of rows a second, the driver's own conversion of JSON and timestamps would cost more than the rest."""
    if column == "payload":
        return "d.payload::text"
    if column in _TIMES:
        return f"(EXTRACT(EPOCH FROM d.{column}) * 1000000)::int8"
    return f"d.{column}"


# Only the holder of the destination's drain lease claims (checked in the same statement, so a drain
# whose lease ran out and was taken claims nothing more); rows it is sending already are left out.
_CLAIM_SQL = f"""
SELECT {", ".join(_returned(column) for column in _CLAIMED)} FROM cdp_delivery AS d
WHERE d.destination_id = %s AND d.status IN ('pending', 'retrying') AND d.next_attempt_at <= %s
  AND d.id <> ALL(%s::bigint[])
  AND EXISTS (SELECT 1 FROM cdp_delivery_lease AS l WHERE l.destination_id = %s AND l.holder = %s AND l.until > %s)
ORDER BY d.next_attempt_at, d.id LIMIT %s
"""


def _time(microseconds: int) -> datetime:
    return _EPOCH + timedelta(microseconds=microseconds)


def lease_seconds(destination: Destination, budget: float) -> float:
    """How long a drain's lease (and lane) holds: its time budget, a request's time twice over and some;
    a drain renews it every round, and while a round takes longer than half of it."""
    return budget + destination.timeout_seconds * 2 + 10


def _claim(destination: Destination, limit: int, lease: Lease, sending: list[int] = ()) -> list[Claimed]:
    """Up to `limit` due deliveries, oldest due first, but for those in `sending` (already out); nothing
    once the lease is no longer ours. Claiming writes nothing: the lease keeps other drains away."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM_SQL, [destination.pk, now, list(sending), destination.pk, lease.holder, now, limit])
            fetched = cursor.fetchall()
        return [Claimed(*v[:11], _time(v[11]), _time(v[12]), _time(v[13])) for v in fetched]
    with transaction.atomic():
        if not DrainLease.objects.filter(destination=destination, holder=lease.holder, until__gt=now).exists():
            return []
        values = list(
            Delivery.objects.filter(due(destination.pk, now))
            .exclude(pk__in=sending)
            .order_by("next_attempt_at", "id")
            .values_list(*_CLAIMED)[:limit]
        )
    return [Claimed(*v) for v in values]


def _claimable(
    destination: Destination, takes_batches: bool, limit: int, flush: bool = False, sending: list[int] = ()
) -> int:
    """How many due deliveries may go now (up to `limit`), not counting those in `sending`. A partial
    batch waits up to batch_wait_seconds for more events, counted from its oldest: until then only full
    batches go (unless `flush`: someone asked for a load now)."""
    if flush or not takes_batches or destination.batch_wait_seconds <= 0:
        return limit
    now = timezone.now()
    open_rows = Delivery.objects.filter(due(destination.pk, now))
    if sending:
        open_rows = open_rows.exclude(pk__in=sending)
    oldest = open_rows.order_by("created_at").values_list("created_at", flat=True).first()
    if oldest is not None and oldest <= now - timedelta(seconds=destination.batch_wait_seconds):
        return limit
    count = open_rows[:limit].count()
    return count - count % destination.batch_size


def _items(rows: list[Claimed]) -> list[Item]:
    return [Item(r.pk, r.action, r.document, r.event_id, r.source_id, r.message_id, r.received_at) for r in rows]


def _send_all(
    destination: Destination, sender: Sender, rows: list[Claimed], takes_batches: bool, breaker: Breaker,
    pool: ThreadPoolExecutor, drained: DrainResult, deadline: float, ids: ExchangeIds, lease: Lease,
    claim_next: Callable[[], None] | None = None,
) -> int:  # fmt: skip
    """Send the rows with up to max_in_flight requests on the wire, recording each answer as it comes
    while the destination's other slots are already busy again. So a killed worker leaves at most
    max_in_flight requests (in flight or being recorded) sent but unrecorded: re-sent later, as duplicates.
    Stops sending when the breaker opens, the time budget is spent or the drain lease is lost (renewed
    here while a round takes long); while the breaker is half-open, one request (the probe) is in flight.
    `claim_next` is called once the first requests are out (the caller claims its next round meanwhile).
    Returns how many rows went out; the rest stay due for the next claim."""
    size = destination.batch_size if takes_batches else 1
    pending = deque(rows[i : i + size] for i in range(0, len(rows), size))
    transport = shared_transport()
    most = max(1, destination.max_in_flight)

    def send_group(group: list[Claimed]) -> list[Result]:
        try:
            return sender.send(destination, _items(group), transport)
        except Exception as exc:  # a sender bug must become a recorded, retryable failure
            log.exception("sender for %s failed", destination.type)
            return [Result(r.pk, ok=False, error_class=ErrorClass.NETWORK, error=repr(exc), retryable=True)
                    for r in group]  # fmt: skip

    # Batches are recorded on PostgreSQL by a small pool of threads with connections of their own, so a
    # round's records (each a transaction writing hundreds of rows) overlap each other and the requests
    # still out; a request's slot stays taken until its answer is recorded. Single events are recorded
    # by the drain's own thread (handing a small record to another thread costs more than it saves), as
    # is everything inside a caller's transaction (whose rows other connections cannot see) and on SQLite.
    apart = takes_batches and connection.vendor == "postgresql" and not connection.in_atomic_block
    recorders = _recorders() if apart else None
    sending: dict[Future[list[Result]], list[Claimed]] = {}
    recording: dict[Future[_Recorded], list[Claimed]] = {}
    sent = 0
    stopped = False

    def fill(answered: int = 0) -> None:
        # Requests being recorded keep their slot (`answered`: those the drain's own thread is about to
        # record): at most max_in_flight requests are ever sent but not recorded, which bounds what a
        # killed worker sends twice.
        room = (1 if breaker.probing() else most) - len(recording) - answered
        while pending and not stopped and len(sending) < room:
            group = pending.popleft()
            sending[pool.submit(send_group, group)] = group

    def recorded(rows: list[Claimed], outcome: _Recorded) -> None:
        nonlocal sent, stopped
        outcome.add_to(drained)
        breaker.record(outcome.successes, outcome.failures)
        sent += len(rows)
        if breaker.opened or time.monotonic() > deadline:
            stopped = True

    while sending or recording or (pending and not stopped):
        fill()
        if claim_next is not None and not stopped:
            claim_next()
            claim_next = None
        done, _ = wait([*sending, *recording], return_when=FIRST_COMPLETED)
        answered: list[Claimed] = []
        results: list[Result] = []
        requests = 0
        for future in done:
            if future in sending:
                answered += sending.pop(future)
                results += future.result()
                requests += 1
            else:
                recorded(recording.pop(future), future.result())
        if answered and recorders is not None:
            recording[recorders.submit(_record_apart, destination, answered, results, ids)] = answered
        elif answered:
            if all(result.ok for result in results):  # keep the other slots busy while these are recorded
                fill(requests)
            recorded(answered, _record(destination, answered, results, ids))
        if not lease.keep():  # the lease ran out and another drain took the destination: send no more
            stopped = True
    return sent


_recorder_pool: ThreadPoolExecutor | None = None
_recorder_lock = threading.Lock()


def _recorders() -> ThreadPoolExecutor:
    """The worker process's recording threads (made on first use; each keeps its database connection)."""
    global _recorder_pool
    with _recorder_lock:
        if _recorder_pool is None:
            _recorder_pool = ThreadPoolExecutor(
                max_workers=settings.CDP_DELIVERY_RECORDERS, thread_name_prefix="cdp-delivery-record"
            )
        return _recorder_pool


def close_recorders() -> None:
    """Close the recording threads' database connections (the threads stay; the next record reconnects).
    Every thread runs exactly one closing task: each waits at a barrier until all have taken theirs."""
    with _recorder_lock:
        pool = _recorder_pool
    if pool is None:
        return
    size = settings.CDP_DELIVERY_RECORDERS
    barrier = threading.Barrier(size)

    def close() -> None:
        try:
            barrier.wait(timeout=10)
        finally:
            connection.close()

    for future in [pool.submit(close) for _ in range(size)]:
        future.result()


def _record_apart(destination: Destination, rows: list[Claimed], results: list[Result], ids: ExchangeIds) -> _Recorded:
    """_record in a recording thread: its connection is checked like a request's (too old, or broken by an
    earlier error) and dropped after an error, so the next round reconnects."""
    close_old_connections()
    try:
        return _record(destination, rows, results, ids)
    except Exception:
        connection.close()
        raise


_ATTEMPT_COLUMNS = (
    "delivery_id", "number", "exchange_id", "started_at", "duration_ms", "response_status", "error_class", "error",
    "outcome",
)  # fmt: skip
_EXCHANGE_COLUMNS = (
    "destination_id", "started_at", "duration_ms", "request", "response_status", "response_body", "error_class",
    "error", "events",
)  # fmt: skip


@dataclass(slots=True)
class _Exchange:
    """An exchange on its way to the database (a model instance costs more than the row it makes)."""

    destination_id: int
    started_at: datetime
    duration_ms: float
    request: dict[str, Any]
    response_status: int | None
    response_body: str
    error_class: str
    error: str
    events: int = 0
    pk: int | None = None

    def model(self) -> Exchange:
        return Exchange(**{name: getattr(self, name) for name in (*_EXCHANGE_COLUMNS, "pk")})


@dataclass
class _Recorded:
    """What recording one round of answers did: outcomes per delivery, and for the breaker how many
    requests went through and how many failed in a way worth retrying (a failed batch of 500 is one)."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    dead: int = 0
    successes: int = 0
    failures: int = 0

    def add_to(self, drained: DrainResult) -> None:
        drained.delivered += self.delivered
        drained.retrying += self.retrying
        drained.failed += self.failed
        drained.dead += self.dead


def _record(destination: Destination, rows: list[Claimed], results: list[Result], ids: ExchangeIds) -> _Recorded:
    """Apply results to the deliveries and store the evidence: one exchange per request sent (its
    request and response) and one small attempt row per delivery."""
    recorded = _Recorded()
    by_id = {r.delivery_id: r for r in results}
    now = timezone.now()
    exchanges: dict[int, _Exchange] = {}  # by the identity of the request summary a sender shares in a batch
    delays: dict[tuple[int, int], float] = {}  # one backoff per request and attempt count: a batch retries together
    attempts: list[tuple[Claimed, Result, str, _Exchange]] = []
    succeeded: set[int] = set()
    failed: set[int] = set()
    for row in rows:
        result = by_id.get(row.pk)
        if result is None:
            result = Result(
                row.pk, ok=False, error_class=ErrorClass.NETWORK, error="no result from sender", retryable=True
            )
        row.attempts += 1
        row.error_class = result.error_class
        row.last_error = result.error[:2000]
        if result.ok:
            row.status, row.finished_at = Status.DELIVERED, now
            succeeded.add(id(result.request))
            recorded.delivered += 1
        elif result.retryable:
            failed.add(id(result.request))
            key = (id(result.request), row.attempts)
            delay = delays.get(key)
            if delay is None:
                delay = delays[key] = backoff_seconds(row.attempts, result.retry_after)
            give_up_at = row.created_at + timedelta(hours=destination.retry_hours)
            if now + timedelta(seconds=delay) > give_up_at:
                row.status, row.finished_at = Status.DEAD, now
                recorded.dead += 1
            else:
                row.status, row.next_attempt_at = Status.RETRYING, now + timedelta(seconds=delay)
                recorded.retrying += 1
        else:
            row.status, row.finished_at = Status.FAILED, now
            recorded.failed += 1
        exchange = exchanges.get(id(result.request))
        if exchange is None:
            exchange = exchanges[id(result.request)] = _Exchange(
                destination.pk,
                now - timedelta(milliseconds=result.duration_ms),
                result.duration_ms,
                result.request,
                result.response_status,
                result.response_body[:2000],
                result.error_class,
                result.error[:2000],
            )
        exchange.events += 1
        outcome = {Status.DELIVERED: "delivered", Status.RETRYING: "retry"}.get(row.status, row.status)
        attempts.append((row, result, outcome, exchange))
    # Rows that came back alike (a batch, or single events that all went through) share one UPDATE; only
    # retried rows get a new due time (one per request, see `delays`).
    groups: dict[tuple, list[int]] = {}
    for row in rows:
        due_at = row.next_attempt_at if row.status == Status.RETRYING else None
        values = (row.status, row.attempts, due_at, row.error_class, row.last_error, row.finished_at)
        groups.setdefault(values, []).append(row.pk)
    if connection.vendor == "postgresql":
        _write_pg(groups, list(exchanges.values()), attempts, ids)
    else:
        with transaction.atomic():
            _apply(groups)
            _insert_exchanges(list(exchanges.values()))
            DeliveryAttempt.objects.bulk_create(_attempt_objects(attempts))
    debug_taps.attempts_recorded(rows, partial(_attempt_objects, attempts))
    recorded.successes, recorded.failures = len(succeeded), len(failed - succeeded)
    return recorded


def _apply(groups: dict[tuple, list[int]]) -> None:
    for (status, attempts, due_at, error_class, last_error, finished_at), pks in groups.items():
        changes = {"next_attempt_at": due_at} if due_at is not None else {}
        Delivery.objects.filter(pk__in=pks).update(
            status=status, attempts=attempts, error_class=error_class, last_error=last_error,
            finished_at=finished_at, **changes,
        )  # fmt: skip


def _insert_exchanges(exchanges: list[_Exchange]) -> None:
    models = Exchange.objects.bulk_create([exchange.model() for exchange in exchanges])
    for exchange, model in zip(exchanges, models, strict=True):
        exchange.pk = model.pk


# A round of answers, written by ONE statement with ONE value: a JSON document of the delivery updates
# ("u": rows answered alike share one entry), the exchanges ("x") and the attempts ("a": attempts alike
# but for their delivery share one entry). Quoting a single value costs the client far less than
# quoting dozens, and one statement is one transaction and one round trip. The final SELECT also tells
# PostgreSQL not to wait for the disk when this statement commits.
_RECORD = """
WITH doc AS MATERIALIZED (SELECT $1::jsonb AS j),
groups AS MATERIALIZED (
    SELECT g->>0 AS status, (g->>1)::int AS attempts, (g->>2)::timestamptz AS due_at, g->>3 AS error_class,
           g->>4 AS last_error, (g->>5)::timestamptz AS finished_at, g->6 AS pks
    FROM doc, jsonb_array_elements(doc.j->'u') AS g
),
updated AS (
    UPDATE cdp_delivery AS d
    SET status = u.status, attempts = u.attempts, next_attempt_at = COALESCE(u.due_at, d.next_attempt_at),
        error_class = u.error_class, last_error = u.last_error, finished_at = u.finished_at
    FROM (SELECT groups.*, pk::bigint AS id FROM groups, jsonb_array_elements_text(groups.pks) AS pk) AS u
    WHERE d.id = u.id
    RETURNING 1
),
exchanges AS (
    INSERT INTO cdp_delivery_exchange (id, destination_id, started_at, duration_ms, request, response_status,
                                       response_body, error_class, error, events)
    SELECT (x->>0)::bigint, (x->>1)::bigint, (x->>2)::timestamptz, (x->>3)::float8, x->4, (x->>5)::smallint,
           x->>6, x->>7, x->>8, (x->>9)::int
    FROM doc, jsonb_array_elements(doc.j->'x') AS x
    RETURNING 1
),
alike AS MATERIALIZED (
    SELECT (a->>0)::bigint AS exchange_id, (a->>1)::timestamptz AS started_at, (a->>2)::float8 AS duration_ms,
           (a->>3)::smallint AS response_status, a->>4 AS error_class, a->>5 AS error, a->>6 AS outcome,
           a->7 AS pks, a->8 AS numbers
    FROM doc, jsonb_array_elements(doc.j->'a') AS a
),
attempts AS (
    INSERT INTO cdp_delivery_attempt (exchange_id, started_at, duration_ms, response_status, error_class, error,
                                      outcome, delivery_id, number)
    SELECT alike.exchange_id, alike.started_at, alike.duration_ms, alike.response_status, alike.error_class,
           alike.error, alike.outcome, e.pk::bigint, n.number::int
    FROM alike, jsonb_array_elements_text(alike.pks) WITH ORDINALITY AS e(pk, k)
         JOIN jsonb_array_elements_text(alike.numbers) WITH ORDINALITY AS n(number, k) USING (k)
    RETURNING 1
)
"""
# Prepared once per connection, so the server plans it once, not for every round of answers.
_PREPARE_RECORD = [
    f"PREPARE cdp_record(jsonb) AS {_RECORD} SELECT set_config('synchronous_commit', 'off', true)",
    f"PREPARE cdp_record_in_transaction(jsonb) AS {_RECORD} SELECT 1",
]
_prepared: weakref.WeakSet = weakref.WeakSet()  # the connections (psycopg's) that have them


def _write_pg(
    groups: dict[tuple, list[int]], exchanges: list[_Exchange], attempts: list[tuple[Claimed, Result, str, _Exchange]],
    ids: ExchangeIds,
) -> None:  # fmt: skip
    """Everything a round of answers changes, as one statement (see _RECORD): the deliveries, their
    exchanges and their attempts are written together or not at all. The exchanges' ids are taken from
    their sequence beforehand, so the attempts can name them.

    Not waiting for the disk (synchronous_commit off for this transaction) is safe: should PostgreSQL
    crash and lose the last moments of these commits, the deliveries (committed durably with their
    events) are simply sent again. Inside a caller's transaction its settings are left alone."""
    for exchange, pk in zip(exchanges, ids.take(len(exchanges)), strict=True):
        exchange.pk = pk
    alike: dict[tuple, tuple[list[int], list[int]]] = {}
    for attempt in attempts:
        delivery_id, number, *shared = _attempt_row(*attempt)
        ids_, numbers = alike.setdefault(tuple(shared), ([], []))
        ids_.append(delivery_id)
        numbers.append(number)
    sent = [
        [e.pk, e.destination_id, e.started_at, e.duration_ms, e.request, e.response_status, e.response_body,
         e.error_class, e.error, e.events]
        for e in exchanges
    ]  # fmt: skip
    document = {
        "u": [[*values, pks] for values, pks in groups.items()],
        "x": sent,
        "a": [[*shared, delivery_ids, numbers] for shared, (delivery_ids, numbers) in alike.items()],
    }
    text = orjson.dumps(document).decode()
    if "\\u0000" in text:  # jsonb cannot hold NUL characters (a destination may answer with some)
        text = orjson.dumps(_without_nul(document)).decode()
    name = "cdp_record_in_transaction" if connection.in_atomic_block else "cdp_record"
    with connection.cursor() as cursor:
        if cursor.connection not in _prepared:
            _prepare(cursor)
        try:
            cursor.execute(f"EXECUTE {name}(%s)", [text])
        except ProgrammingError as exc:
            # The session lost its prepared statements (a pooler that resets sessions between clients):
            # prepare them again and retry, unless a caller's transaction is now aborted.
            if not isinstance(exc.__cause__, psycopg.errors.InvalidSqlStatementName) or connection.in_atomic_block:
                raise
            _prepare(cursor)
            cursor.execute(f"EXECUTE {name}(%s)", [text])


def _prepare(cursor: Any) -> None:
    cursor.execute("SELECT name FROM pg_prepared_statements WHERE name IN ('cdp_record', 'cdp_record_in_transaction')")
    for (name,) in cursor.fetchall():  # the other one of the pair may still be there
        cursor.execute(f"DEALLOCATE {name}")
    for statement in _PREPARE_RECORD:
        cursor.execute(statement)
    _prepared.add(cursor.connection)


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    return value


_EXCHANGE_IDS = "SELECT nextval(pg_get_serial_sequence('cdp_delivery_exchange', 'id')) FROM generate_series(1, %s)"


class ExchangeIds:
    """Ids for a drain's new exchanges, taken from the table's sequence a few dozen at a time (the
    sequence never hands a number out twice; what a drain leaves unused is only a gap)."""

    def __init__(self) -> None:
        self._ids: deque[int] = deque()
        self._lock = threading.Lock()  # recording threads share a drain's ids

    def take(self, count: int) -> list[int]:
        with self._lock:
            if len(self._ids) < count:
                with connection.cursor() as cursor:
                    cursor.execute(_EXCHANGE_IDS, [max(64, count - len(self._ids))])
                    self._ids.extend(pk for (pk,) in cursor.fetchall())
            return [self._ids.popleft() for _ in range(count)]


def _attempt_row(row: Claimed, result: Result, outcome: str, exchange: _Exchange) -> tuple:
    return (
        row.pk, row.attempts, exchange.pk, exchange.started_at, result.duration_ms, result.response_status,
        result.error_class, result.error[:2000], outcome,
    )  # fmt: skip


def _attempt_objects(attempts: list[tuple[Claimed, Result, str, _Exchange]]) -> list[DeliveryAttempt]:
    objects = []
    models: dict[int, Exchange] = {}
    for row, result, outcome, exchange in attempts:
        values = dict(zip(_ATTEMPT_COLUMNS, _attempt_row(row, result, outcome, exchange), strict=True))
        del values["exchange_id"]
        model = models.get(id(exchange))
        if model is None:
            model = models[id(exchange)] = exchange.model()
        objects.append(DeliveryAttempt(exchange=model, **values))
    return objects


def drain(
    destination_id: int, time_budget: float | None = None, flush: bool = False, linger: float = 0.0
) -> DrainResult:
    """Send what is due for one destination until nothing is due or the time budget is spent; `flush`
    sends partial batches at once instead of letting them wait for more events. With `linger`, a drain
    of single events that runs out of work keeps looking for new deliveries that long (the delivery
    tasks do): under a steady stream the next events are picked up at once, instead of after a wake-up
    and a new task."""
    drained = DrainResult()
    destination = Destination.objects.filter(pk=destination_id).first()
    if destination is None or not destination.enabled:
        return drained
    sender = sender_for(destination.type)
    if sender is None:
        log.error("destination type %r has no sender", destination.type)
        return drained
    budget = time_budget or settings.CDP_DELIVERY_TIME_BUDGET_SECONDS
    lane = Lane(destination_id)
    lease = Lease(destination_id, lease_seconds(destination, budget))
    if not lane.acquire(lease.seconds):
        lane.mark_again()
        if not lane.acquire(lease.seconds):
            drained.busy = True
            return drained  # another task is draining this destination; it will see the mark
    if not lease.take():
        # Redis lost track (flushed, down, or the lane ran out): a drain still holds the destination.
        lane.mark_again()
        lane.release()
        drained.busy = True
        return drained
    breaker = Breaker(destination_id)  # read after the lane is ours: only the lane holder changes it
    deadline = time.monotonic() + budget
    takes_batches = sender.takes_batches(destination)
    # A round claims enough to keep max_in_flight requests busy for a while.
    per_round = destination.max_in_flight * (destination.batch_size * 2 if takes_batches else 25)
    ids = ExchangeIds()

    def next_round(sending: list[int] = ()) -> list[Claimed]:
        limit = 0 if breaker.is_open() else _claimable(destination, takes_batches, per_round, flush, sending)
        return _claim(destination, limit, lease, sending) if limit else []

    # While a full round's requests are out, the next round is claimed beside them (on PostgreSQL,
    # in a thread with its own connection): a claim of thousands of rows takes the database a while, and
    # the destination need not wait for it; it leaves out the rows being sent. Not inside a caller's
    # transaction: another connection would not see its rows.
    ahead = connection.vendor == "postgresql" and not connection.in_atomic_block
    claimer = ThreadPoolExecutor(max_workers=1) if ahead else None
    claimed_ahead: Future[list[Claimed]] | None = None

    def claim_ahead(sending: list[int]) -> None:
        nonlocal claimed_ahead
        claimed_ahead = claimer.submit(next_round, sending)

    try:
        with ThreadPoolExecutor(max_workers=max(1, destination.max_in_flight)) as pool:
            lingered = False
            # The lease is renewed before every round: a drain that lost it (stuck past its end while another
            # took over) sends no round more, not even one it claimed ahead.
            while time.monotonic() < deadline and lease.renew():
                if claimed_ahead is not None:
                    rows, claimed_ahead = claimed_ahead.result(), None
                    if breaker.is_open():
                        break
                else:
                    rows = next_round()
                if not rows:
                    # Look for more only once per empty round: rows seen due but not claimable (the
                    # lease was lost, or a partial batch waits) end the drain instead of keeping it looking.
                    lingering = linger and not lingered and not takes_batches and not breaker.is_open()
                    until = min(deadline, time.monotonic() + linger)
                    more = partial(_has_due, destination_id)
                    if lingering and look_until(until, settings.CDP_DELIVERY_POLL_SECONDS, more):
                        lingered = True
                        continue
                    break
                lingered = False
                started = time.monotonic()
                full = claimer is not None and len(rows) >= per_round  # more may be waiting
                claim_next = partial(claim_ahead, [row.pk for row in rows]) if full else None
                sent = _send_all(
                    destination, sender, rows, takes_batches, breaker, pool, drained, deadline, ids, lease,
                    claim_next=claim_next,
                )  # fmt: skip
                drained.sent += sent
                requests = sent if not takes_batches else -(-sent // destination.batch_size)
                _respect_rate_limit(destination, requests, started)
                lane.extend(lease.seconds)
    finally:
        if claimer is not None:
            if claimed_ahead is not None:  # claimed for a round that will not come (time, breaker, error)
                wait([claimed_ahead])
            claimer.submit(_close_connection).result()  # the claimer thread's own connection
            claimer.shutdown()
        lease.give_back()
        lane.release()
    # Go again after a wake-up that came meanwhile, or while sending still leaves due rows behind.
    drained.requeue = lane.take_again() or (drained.sent > 0 and _has_due(destination_id))
    return drained


def _has_due(destination_id: int) -> bool:
    return Delivery.objects.filter(due(destination_id, timezone.now())).exists()


def _close_connection() -> None:
    connection.close()  # looked up in the calling thread: that thread's own connection


def _respect_rate_limit(destination: Destination, requests: int, started: float) -> None:
    if not destination.rate_limit:
        return
    minimum = requests / destination.rate_limit
    elapsed = time.monotonic() - started
    if elapsed < minimum:
        time.sleep(minimum - elapsed)
