"""Draining one destination's due deliveries: claim with a lease, send, record every attempt,
schedule retries with randomised exponential backoff, dead-letter what runs out of time."""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache, partial
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string
from psycopg.types.json import Jsonb

from cdp.core.models import Destination
from cdp.debugger import stages as debug_taps
from cdp.delivery.lanes import Breaker, Lane
from cdp.delivery.models import OPEN_STATUSES, Delivery, DeliveryAttempt, ErrorClass, Exchange, Status
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


def due(destination_id: int, now: datetime) -> Q:
    return Q(destination_id=destination_id, status__in=OPEN_STATUSES, next_attempt_at__lte=now) & (
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )


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
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    received_at: datetime
    created_at: datetime
    error_class: str = ""
    last_error: str = ""
    finished_at: datetime | None = None


_CLAIMED = (
    "id", "destination_id", "subscription_id", "event_id", "source_id", "message_id", "event_name", "action",
    "payload", "status", "attempts", "next_attempt_at", "received_at", "created_at",
)  # fmt: skip
_CLAIM_SQL = f"""
WITH picked AS (
    SELECT id FROM cdp_delivery
    WHERE destination_id = %s AND status IN ('pending', 'retrying') AND next_attempt_at <= %s
      AND (claimed_until IS NULL OR claimed_until < %s)
    ORDER BY next_attempt_at, id LIMIT %s
    FOR UPDATE SKIP LOCKED
)
UPDATE cdp_delivery AS d SET claimed_until = %s FROM picked WHERE d.id = picked.id
RETURNING {", ".join(f"d.{column}" for column in _CLAIMED).replace("d.payload", "d.payload::text")}
"""


def lease_seconds(destination: Destination) -> float:
    """How long a claim holds: a request's time twice over and some; a round that takes longer renews it."""
    return destination.timeout_seconds * 2 + 30


def _claim(destination: Destination, limit: int) -> list[Claimed]:
    """Lease up to `limit` due deliveries, oldest due first; rows another worker holds are skipped."""
    now = timezone.now()
    lease = now + timedelta(seconds=lease_seconds(destination))
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_CLAIM_SQL, [destination.pk, now, now, limit, lease])
            fetched = cursor.fetchall()
        rows = [Claimed(*values[:8], orjson.loads(values[8]), *values[9:]) for values in fetched]
        rows.sort(key=lambda row: (row.next_attempt_at, row.pk))
        return rows
    with transaction.atomic():
        values = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(due(destination.pk, now))
            .order_by("next_attempt_at", "id")
            .values_list(*_CLAIMED)[:limit]
        )
        if values:
            Delivery.objects.filter(pk__in=[v[0] for v in values]).update(claimed_until=lease)
    return [Claimed(*v) for v in values]


def _claimable(destination: Destination, takes_batches: bool, limit: int, flush: bool = False) -> int:
    """How many due deliveries may go now (up to `limit`). A partial batch waits up to
    batch_wait_seconds for more events, counted from its oldest: until then only full batches go
    (unless `flush`: someone asked for a load now)."""
    if flush or not takes_batches or destination.batch_wait_seconds <= 0:
        return limit
    now = timezone.now()
    open_rows = Delivery.objects.filter(due(destination.pk, now))
    oldest = open_rows.order_by("created_at").values_list("created_at", flat=True).first()
    if oldest is not None and oldest <= now - timedelta(seconds=destination.batch_wait_seconds):
        return limit
    count = open_rows[:limit].count()
    return count - count % destination.batch_size


def _items(rows: list[Claimed]) -> list[Item]:
    return [Item(r.pk, r.action, r.payload, r.event_id, r.source_id, r.message_id, r.received_at) for r in rows]


def _send_all(
    destination: Destination, sender: Sender, rows: list[Claimed], takes_batches: bool, breaker: Breaker,
    pool: ThreadPoolExecutor, drained: DrainResult, deadline: float,
) -> int:  # fmt: skip
    """Send the rows with up to max_in_flight requests on the wire, recording each answer as it comes
    while the destination's other slots are already busy again. So a killed worker leaves at most
    max_in_flight requests (in flight or being recorded) sent but unrecorded: re-sent later, as duplicates.
    Stops sending when the breaker opens or the time budget is spent; while the breaker is half-open,
    one request (the probe) is in flight. Returns how many rows went out; the caller releases the rest."""
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

    in_flight: dict[Future[list[Result]], list[Claimed]] = {}
    sent = 0
    stopped = False
    renew_every = lease_seconds(destination) / 2
    renew_at = time.monotonic() + renew_every

    def fill(recording: int = 0) -> None:
        # Requests being recorded keep their slot: at most max_in_flight requests are ever sent but not
        # recorded, which bounds what a killed worker sends twice.
        room = (1 if breaker.probing() else most) - recording
        while pending and not stopped and len(in_flight) < room:
            group = pending.popleft()
            in_flight[pool.submit(send_group, group)] = group

    while in_flight or (pending and not stopped):
        fill()
        done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        answered: list[Claimed] = []
        results: list[Result] = []
        for future in done:
            answered += in_flight.pop(future)
            results += future.result()
        if all(result.ok for result in results):
            fill(len(done))  # the destination answers well: keep its other slots busy while these are recorded
        successes, failures = _record(destination, answered, results, drained)
        breaker.record(successes, failures)
        sent += len(answered)
        if breaker.opened or time.monotonic() > deadline:
            stopped = True
        if time.monotonic() > renew_at:  # a slow destination: keep the rows of this round ours
            held = [row.pk for group in (*pending, *in_flight.values()) for row in group]
            until = timezone.now() + timedelta(seconds=lease_seconds(destination))
            Delivery.objects.filter(pk__in=held).update(claimed_until=until)
            renew_at = time.monotonic() + renew_every
    return sent


def _release(rows: list[Claimed]) -> None:
    """Hand claimed rows back untried: no attempt is counted."""
    if rows:
        Delivery.objects.filter(pk__in=[row.pk for row in rows]).update(claimed_until=None)


_ATTEMPT_COLUMNS = (
    "delivery_id", "number", "exchange_id", "started_at", "duration_ms", "response_status", "error_class", "error",
    "outcome",
)  # fmt: skip
_COPY_ATTEMPTS = f"COPY cdp_delivery_attempt ({', '.join(_ATTEMPT_COLUMNS)}) FROM STDIN"
_EXCHANGE_COLUMNS = (
    "destination_id", "started_at", "duration_ms", "request", "response_status", "response_body", "error_class",
    "error", "events",
)  # fmt: skip
_UPDATE_SQL = (
    "UPDATE cdp_delivery SET status = %s, attempts = %s, next_attempt_at = COALESCE(%s, next_attempt_at), "
    "claimed_until = NULL, error_class = %s, last_error = %s, finished_at = %s WHERE id = ANY(%s)"
)


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


def _record(
    destination: Destination, rows: list[Claimed], results: list[Result], drained: DrainResult
) -> tuple[int, int]:
    """Apply results to the deliveries and store the evidence: one exchange per request sent (its
    request and response) and one small attempt row per delivery. Returns how many requests went through
    and how many failed in a way worth retrying: the breaker counts requests, so one failed batch of 500
    is one failure, not 500."""
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
            drained.delivered += 1
        elif result.retryable:
            failed.add(id(result.request))
            key = (id(result.request), row.attempts)
            delay = delays.get(key)
            if delay is None:
                delay = delays[key] = backoff_seconds(row.attempts, result.retry_after)
            give_up_at = row.created_at + timedelta(hours=destination.retry_hours)
            if now + timedelta(seconds=delay) > give_up_at:
                row.status, row.finished_at = Status.DEAD, now
                drained.dead += 1
            else:
                row.status, row.next_attempt_at = Status.RETRYING, now + timedelta(seconds=delay)
                drained.retrying += 1
        else:
            row.status, row.finished_at = Status.FAILED, now
            drained.failed += 1
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
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Not waiting for the disk here is safe: should PostgreSQL crash and lose the last moments of
            # these commits, the deliveries (committed durably with their events) are simply sent again.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        _apply(groups)
        _insert_exchanges(list(exchanges.values()))
        _insert_attempts(attempts)
    debug_taps.attempts_recorded(rows, partial(_attempt_objects, attempts))
    return len(succeeded), len(failed - succeeded)


def _apply(groups: dict[tuple, list[int]]) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for values, pks in groups.items():
                cursor.execute(_UPDATE_SQL, [*values, pks])
        return
    for (status, attempts, due_at, error_class, last_error, finished_at), pks in groups.items():
        changes = {"next_attempt_at": due_at} if due_at is not None else {}
        Delivery.objects.filter(pk__in=pks).update(
            status=status, attempts=attempts, claimed_until=None, error_class=error_class, last_error=last_error,
            finished_at=finished_at, **changes,
        )  # fmt: skip


def _insert_exchanges(exchanges: list[_Exchange]) -> None:
    """A plain multi-row INSERT ... RETURNING id on PostgreSQL (bulk_create's array form quotes every
    character of a large JSON request through a regular expression)."""
    if connection.vendor != "postgresql":
        models = Exchange.objects.bulk_create([exchange.model() for exchange in exchanges])
        for exchange, model in zip(exchanges, models, strict=True):
            exchange.pk = model.pk
        return
    row = f"({', '.join(['%s'] * len(_EXCHANGE_COLUMNS))})"
    sql = (
        f"INSERT INTO cdp_delivery_exchange ({', '.join(_EXCHANGE_COLUMNS)}) "
        f"VALUES {', '.join([row] * len(exchanges))} RETURNING id"
    )
    params = []
    for e in exchanges:
        params += [
            e.destination_id, e.started_at, e.duration_ms, Jsonb(e.request, dumps=_dumps), e.response_status,
            e.response_body, e.error_class, e.error, e.events,
        ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for exchange, (pk,) in zip(exchanges, cursor.fetchall(), strict=True):
            exchange.pk = pk


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _attempt_row(row: Claimed, result: Result, outcome: str, exchange: _Exchange) -> tuple:
    return (
        row.pk, row.attempts, exchange.pk, exchange.started_at, result.duration_ms, result.response_status,
        result.error_class, result.error[:2000], outcome,
    )  # fmt: skip


def _insert_attempts(attempts: list[tuple[Claimed, Result, str, _Exchange]]) -> None:
    """COPY on PostgreSQL: a batch's hundreds of attempt rows are one stream, not one parameter each."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor, cursor.cursor.copy(_COPY_ATTEMPTS) as copy:
            for attempt in attempts:
                copy.write_row(_attempt_row(*attempt))
    else:
        DeliveryAttempt.objects.bulk_create(_attempt_objects(attempts))


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


def drain(destination_id: int, time_budget: float | None = None, flush: bool = False) -> DrainResult:
    """Send what is due for one destination until nothing is due or the time budget is spent; `flush`
    sends partial batches at once instead of letting them wait for more events."""
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
    lease = budget + destination.timeout_seconds * 2 + 10
    if not lane.acquire(lease):
        lane.mark_again()
        if not lane.acquire(lease):
            drained.busy = True
            return drained  # another task is draining this destination; it will see the mark
    breaker = Breaker(destination_id)  # read after the lane is ours: only the lane holder changes it
    deadline = time.monotonic() + budget
    takes_batches = sender.takes_batches(destination)
    # A round claims enough to keep max_in_flight requests busy for a while; its leases outlast the
    # time budget, so rows are never claimed twice while this drain still holds them.
    per_round = destination.max_in_flight * (destination.batch_size * 2 if takes_batches else 25)
    try:
        with ThreadPoolExecutor(max_workers=max(1, destination.max_in_flight)) as pool:
            while time.monotonic() < deadline:
                limit = 0 if breaker.is_open() else _claimable(destination, takes_batches, per_round, flush)
                if not limit:
                    break
                rows = _claim(destination, limit)
                if not rows:
                    break
                started = time.monotonic()
                sent = _send_all(destination, sender, rows, takes_batches, breaker, pool, drained, deadline)
                _release(rows[sent:])
                drained.sent += sent
                requests = sent if not takes_batches else -(-sent // destination.batch_size)
                _respect_rate_limit(destination, requests, started)
                lane.extend(lease)
    finally:
        lane.release()
    # Go again after a wake-up that came meanwhile, or while sending still leaves due rows behind.
    drained.requeue = lane.take_again() or (
        drained.sent > 0 and Delivery.objects.filter(due(destination_id, timezone.now())).exists()
    )
    return drained


def _respect_rate_limit(destination: Destination, requests: int, started: float) -> None:
    if not destination.rate_limit:
        return
    minimum = requests / destination.rate_limit
    elapsed = time.monotonic() - started
    if elapsed < minimum:
        time.sleep(minimum - elapsed)
