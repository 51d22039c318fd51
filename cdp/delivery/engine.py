"""Draining one destination's due deliveries: claim with a lease, send, record every attempt,
schedule retries with randomised exponential backoff, dead-letter what runs out of time."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from cdp.core.models import Destination
from cdp.debugger import stages as debug_taps
from cdp.delivery.lanes import Breaker, Lane
from cdp.delivery.models import OPEN_STATUSES, Delivery, DeliveryAttempt, ErrorClass, Status
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
    more_due: bool = False


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


def _claim(destination: Destination, limit: int) -> list[Delivery]:
    now = timezone.now()
    lease = now + timedelta(seconds=destination.timeout_seconds * 2 + 30)
    with transaction.atomic():
        rows = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(due(destination.pk, now))
            .order_by("next_attempt_at", "id")[:limit]
        )
        if rows:
            Delivery.objects.filter(pk__in=[r.pk for r in rows]).update(claimed_until=lease)
    return rows


def _claimable(destination: Destination, takes_batches: bool, limit: int) -> int:
    """How many due deliveries may go now (up to `limit`). A partial batch waits up to
    batch_wait_seconds for more events, counted from its oldest: until then only full batches go."""
    if not takes_batches or destination.batch_wait_seconds <= 0:
        return limit
    now = timezone.now()
    open_rows = Delivery.objects.filter(due(destination.pk, now))
    oldest = open_rows.order_by("created_at").values_list("created_at", flat=True).first()
    if oldest is not None and oldest <= now - timedelta(seconds=destination.batch_wait_seconds):
        return limit
    count = open_rows[:limit].count()
    return count - count % destination.batch_size


def _items(rows: list[Delivery]) -> list[Item]:
    return [Item(r.pk, r.action, r.payload, r.event_id, r.source_id, r.message_id, r.received_at) for r in rows]


def _waves(
    destination: Destination, sender: Sender, rows: list[Delivery], takes_batches: bool, breaker: Breaker
) -> Iterator[tuple[list[Delivery], list[Result]]]:
    """Send the rows in waves of up to max_in_flight requests, yielding each wave's rows and results
    so they are recorded before the next wave goes: a killed worker leaves at most one wave sent but
    unrecorded (re-sent later: duplicates), and the caller can stop between waves. While the
    breaker is half-open, a wave is one request: one probe decides."""
    groups = (
        [rows[i : i + destination.batch_size] for i in range(0, len(rows), destination.batch_size)]
        if takes_batches
        else [[row] for row in rows]
    )
    transport = shared_transport()

    def send_group(group: list[Delivery]) -> list[Result]:
        try:
            return sender.send(destination, _items(group), transport)
        except Exception as exc:  # a sender bug must become a recorded, retryable failure
            log.exception("sender for %s failed", destination.type)
            return [Result(r.pk, ok=False, error_class=ErrorClass.NETWORK, error=repr(exc), retryable=True)
                    for r in group]  # fmt: skip

    workers = max(1, min(destination.max_in_flight, len(groups)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        sent = 0
        while sent < len(groups):
            wave = groups[sent : sent + (1 if breaker.probing() else workers)]
            sent += len(wave)
            results = [result for group_results in pool.map(send_group, wave) for result in group_results]
            yield [row for group in wave for row in group], results


def _release(rows: list[Delivery]) -> None:
    """Hand claimed rows back untried: no attempt is counted."""
    if rows:
        Delivery.objects.filter(pk__in=[row.pk for row in rows]).update(claimed_until=None)


def _record(rows: list[Delivery], results: list[Result], drained: DrainResult) -> tuple[int, int]:
    """Apply results to the deliveries and store one attempt row each; returns (successes, failures)."""
    by_id = {r.delivery_id: r for r in results}
    now = timezone.now()
    attempts = []
    successes = failures = 0
    for row in rows:
        result = by_id.get(row.pk)
        if result is None:
            result = Result(
                row.pk, ok=False, error_class=ErrorClass.NETWORK, error="no result from sender", retryable=True
            )
        row.attempts += 1
        row.claimed_until = None
        row.error_class = result.error_class
        row.last_error = result.error[:2000]
        if result.ok:
            row.status, row.finished_at = Status.DELIVERED, now
            successes += 1
            drained.delivered += 1
        elif result.retryable:
            failures += 1
            delay = backoff_seconds(row.attempts, result.retry_after)
            give_up_at = row.created_at + timedelta(hours=row.destination.retry_hours)
            if now + timedelta(seconds=delay) > give_up_at:
                row.status, row.finished_at = Status.DEAD, now
                drained.dead += 1
            else:
                row.status, row.next_attempt_at = Status.RETRYING, now + timedelta(seconds=delay)
                drained.retrying += 1
        else:
            row.status, row.finished_at = Status.FAILED, now
            drained.failed += 1
        attempts.append(
            DeliveryAttempt(
                delivery_id=row.pk, number=row.attempts, started_at=now - timedelta(milliseconds=result.duration_ms),
                duration_ms=result.duration_ms, request=result.request, response_status=result.response_status,
                response_body=result.response_body[:2000], error_class=result.error_class, error=result.error[:2000],
                outcome={Status.DELIVERED: "delivered", Status.RETRYING: "retry"}.get(row.status, row.status),
            )
        )  # fmt: skip
    # Delivered rows share their new values (bar the attempt count): one plain UPDATE per group is far
    # cheaper than bulk_update's CASE per row and field (bench/delivery); the rest goes through bulk_update.
    delivered: dict[tuple, list[int]] = {}
    others = []
    for row in rows:
        if row.status == Status.DELIVERED:
            delivered.setdefault((row.attempts, row.error_class, row.last_error), []).append(row.pk)
        else:
            others.append(row)
    with transaction.atomic():
        for (count, error_class, last_error), pks in delivered.items():
            Delivery.objects.filter(pk__in=pks).update(
                status=Status.DELIVERED, attempts=count, claimed_until=None, error_class=error_class,
                last_error=last_error, finished_at=now,
            )  # fmt: skip
        if others:
            Delivery.objects.bulk_update(
                others,
                ["status", "attempts", "next_attempt_at", "claimed_until", "error_class", "last_error", "finished_at"],
            )
        DeliveryAttempt.objects.bulk_create(attempts)
    debug_taps.attempts_recorded(rows, attempts)
    return successes, failures


def drain(destination_id: int, time_budget: float | None = None) -> DrainResult:
    """Send what is due for one destination until nothing is due or the time budget is spent."""
    drained = DrainResult()
    destination = Destination.objects.filter(pk=destination_id).first()
    if destination is None or not destination.enabled:
        return drained
    sender = sender_for(destination.type)
    if sender is None:
        log.error("destination type %r has no sender", destination.type)
        return drained
    budget = time_budget or settings.CDP_DELIVERY_TIME_BUDGET_SECONDS
    lane, breaker = Lane(destination_id), Breaker(destination_id)
    lease = budget + destination.timeout_seconds * 2 + 10
    if not lane.acquire(lease):
        return drained  # another task is draining this destination
    deadline = time.monotonic() + budget
    takes_batches = sender.takes_batches(destination)
    per_round = destination.batch_size * destination.max_in_flight if takes_batches else destination.max_in_flight * 8
    try:
        while time.monotonic() < deadline:
            limit = 0 if breaker.is_open() else _claimable(destination, takes_batches, per_round)
            if not limit:
                break
            rows = _claim(destination, limit)
            if not rows:
                break
            for row in rows:
                row.destination = destination
            started = time.monotonic()
            sent = 0
            # A round stops early when the breaker opens or the budget is spent: a destination that
            # stopped answering costs one wave of timeouts, and no round outlives its rows' leases.
            for wave, results in _waves(destination, sender, rows, takes_batches, breaker):
                successes, failures = _record(wave, results, drained)
                breaker.record(successes, failures)
                sent += len(wave)
                if breaker.is_open() or time.monotonic() > deadline:
                    break
            _release(rows[sent:])
            drained.sent += sent
            _respect_rate_limit(destination, sent if not takes_batches else -(-sent // destination.batch_size), started)
            lane.extend(lease)
    finally:
        lane.release()
    drained.more_due = Delivery.objects.filter(due(destination_id, timezone.now())).exists()
    return drained


def _respect_rate_limit(destination: Destination, requests: int, started: float) -> None:
    if not destination.rate_limit:
        return
    minimum = requests / destination.rate_limit
    elapsed = time.monotonic() - started
    if elapsed < minimum:
        time.sleep(minimum - elapsed)
