"""Draining one destination's due deliveries: claim with a lease, send, record every attempt,
schedule retries with randomised exponential backoff, dead-letter what runs out of time."""

from __future__ import annotations

import logging
import random
import time
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
    """Randomised exponential backoff; a destination's Retry-After is a floor, never ignored."""
    base = settings.CDP_RETRY_BASE_SECONDS * (2 ** max(0, attempts - 1))
    delay = min(settings.CDP_RETRY_MAX_DELAY_SECONDS, base) * random.uniform(0.5, 1.5)
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


def _batch_is_ready(destination: Destination, takes_batches: bool) -> bool:
    """A partial batch waits up to batch_wait_seconds for more events, counted from its oldest."""
    if not takes_batches or destination.batch_wait_seconds <= 0:
        return True
    now = timezone.now()
    open_rows = Delivery.objects.filter(due(destination.pk, now))
    if open_rows[: destination.batch_size].count() >= destination.batch_size:
        return True
    oldest = open_rows.order_by("created_at").values_list("created_at", flat=True).first()
    return oldest is not None and oldest <= now - timedelta(seconds=destination.batch_wait_seconds)


def _items(rows: list[Delivery]) -> list[Item]:
    return [Item(r.pk, r.action, r.payload, r.event_id, r.source_id, r.message_id, r.received_at) for r in rows]


def _send(destination: Destination, sender: Sender, rows: list[Delivery], takes_batches: bool) -> list[Result]:
    items = _items(rows)
    groups = (
        [items[i : i + destination.batch_size] for i in range(0, len(items), destination.batch_size)]
        if takes_batches
        else [[item] for item in items]
    )
    transport = shared_transport()

    def send_group(group: list[Item]) -> list[Result]:
        try:
            return sender.send(destination, group, transport)
        except Exception as exc:  # a sender bug must become a recorded, retryable failure
            log.exception("sender for %s failed", destination.type)
            return [Result(i.delivery_id, ok=False, error_class=ErrorClass.NETWORK, error=repr(exc), retryable=True)
                    for i in group]  # fmt: skip

    workers = max(1, min(destination.max_in_flight, len(groups)))
    if workers == 1:
        return [result for group in groups for result in send_group(group)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [result for results in pool.map(send_group, groups) for result in results]


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
    with transaction.atomic():
        Delivery.objects.bulk_update(
            rows, ["status", "attempts", "next_attempt_at", "claimed_until", "error_class", "last_error", "finished_at"]
        )
        DeliveryAttempt.objects.bulk_create(attempts)
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
            if breaker.is_open() or not _batch_is_ready(destination, takes_batches):
                break
            rows = _claim(destination, per_round)
            if not rows:
                break
            for row in rows:
                row.destination = destination
            started = time.monotonic()
            results = _send(destination, sender, rows, takes_batches)
            successes, failures = _record(rows, results, drained)
            breaker.record(successes, failures)
            drained.sent += len(rows)
            _respect_rate_limit(
                destination, len(rows) if not takes_batches else -(-len(rows) // destination.batch_size), started
            )
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
