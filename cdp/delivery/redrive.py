"""Dead letters: the selection a user filters (destination, when dead-lettered, error class, event name),
and re-driving it through the subscription's current trigger and mapping.

A re-driven delivery starts a new retry cycle: its payload is mapped again from the stored event, it
is pending at once with its attempt count and its retry window (`created_at`) reset, and the attempts
of earlier cycles stay as evidence."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from cdp.delivery.models import Delivery, ErrorClass, Job, Status
from cdp.destinations import engine
from cdp.processing.models import Event

REDRIVEN = "redriven"
MAPPING_FAILED = "mapping_failed"
NO_LONGER_MATCHES = "trigger_no_longer_matches"
SUBSCRIPTION_DELETED = "subscription_deleted"
SUBSCRIPTION_DISABLED = "subscription_disabled"
EVENT_DELETED = "event_deleted"
NO_LONGER_DEAD = "no_longer_dead"


@dataclass(frozen=True)
class Selection:
    """Which dead letters: every field left empty selects them all."""

    destination: int | None = None
    delivery: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    error_class: str = ""
    event: str = ""

    def apply(self, rows: QuerySet[Delivery]) -> QuerySet[Delivery]:
        if self.destination is not None:
            rows = rows.filter(destination_id=self.destination)
        if self.delivery is not None:
            rows = rows.filter(pk=self.delivery)
        if self.since is not None:
            rows = rows.filter(finished_at__gte=self.since)
        if self.until is not None:
            rows = rows.filter(finished_at__lt=self.until)
        if self.error_class:
            rows = rows.filter(error_class=self.error_class)
        if self.event:
            rows = rows.filter(event_name=self.event)
        return rows

    def as_parameters(self) -> dict[str, Any]:
        """The filters given, as JSON (what the job records)."""
        return {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in asdict(self).items()
            if value not in (None, "")
        }

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any]) -> Selection:
        values = {key: parameters.get(key) for key in ("destination", "delivery", "error_class", "event")}
        moments = {key: parse_datetime(parameters[key]) for key in ("since", "until") if parameters.get(key)}
        return cls(**{k: v for k, v in values.items() if v is not None}, **moments)


def dead_letters(workspace_id: int, selection: Selection) -> QuerySet[Delivery]:
    return selection.apply(Delivery.objects.filter(status=Status.DEAD, destination__workspace_id=workspace_id))


def redrive_chunk(job: Job, limit: int) -> tuple[bool, set[int]]:
    """Re-drive the next `limit` dead letters of the job's selection; returns whether the selection is
    worked through, and the destinations that got work."""
    selection = dead_letters(job.workspace_id, Selection.from_parameters(job.parameters))
    rows = list(
        selection.filter(pk__gt=job.cursor, pk__lte=job.up_to_id).select_related("subscription").order_by("pk")[:limit]
    )
    payloads = dict(Event.objects.filter(pk__in={row.event_id for row in rows}).values_list("pk", "payload"))
    now = timezone.now()
    woken: set[int] = set()
    for row in rows:
        outcome = redrive_one(row, payloads.get(row.event_id), now)
        job.result[outcome] = job.result.get(outcome, 0) + 1
        if outcome == REDRIVEN:
            woken.add(row.destination_id)
    job.done += len(rows)
    if rows:
        job.cursor = rows[-1].pk
    return len(rows) < limit or job.cursor >= job.up_to_id, woken


def redrive_one(row: Delivery, payload: dict[str, Any] | None, now: datetime) -> str:
    """Map the stored event again with the subscription as it is now and put the delivery back to work;
    what stops it stays dead-lettered, with the reason returned."""
    subscription = row.subscription
    if subscription is None:
        return SUBSCRIPTION_DELETED
    if not subscription.enabled:
        return SUBSCRIPTION_DISABLED
    if payload is None:
        return EVENT_DELETED
    outcome = engine.run(subscription.trigger, subscription.mapping, payload)
    if not outcome.matched:
        return NO_LONGER_MATCHES
    changes: dict[str, Any] = {
        "action": subscription.action,
        "payload": outcome.payload if outcome.payload is not None else {},
    }
    if outcome.errors:
        changes.update(
            status=Status.FAILED, error_class=ErrorClass.PAYLOAD, last_error="; ".join(outcome.errors)[:2000],
            finished_at=now,
        )  # fmt: skip
        reason = MAPPING_FAILED
    else:
        changes.update(
            status=Status.PENDING, attempts=0, next_attempt_at=now, created_at=now, error_class="", last_error="",
            finished_at=None,
        )  # fmt: skip
        reason = REDRIVEN
    # Guarded on the status: two overlapping re-drives never send the same dead letter twice.
    updated = Delivery.objects.filter(pk=row.pk, status=Status.DEAD).update(**changes)
    return reason if updated else NO_LONGER_DEAD
