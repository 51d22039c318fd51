"""Routing: each stored event, each destination it may reach, each subscription whose trigger
matches becomes a delivery with the mapped payload. Whatever does not go is counted with its reason."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import F
from django.utils import timezone

from cdp.core.models import Destination, Source
from cdp.delivery.models import Delivery, ErrorClass, FilteredCount, Status
from cdp.destinations import engine, registry
from cdp.processing.models import Event


@dataclass(frozen=True)
class RoutableEvent:
    id: int
    source_id: int
    message_id: str
    payload: dict[str, Any]
    received_at: datetime


DISABLED = "destination_disabled"
INTEGRATIONS = "integrations_off"
NO_MATCH = "no_trigger_matched"


def integrations_allow(integrations: Any, destination: Destination) -> bool:
    """Segment's `integrations` object: a destination's own entry (by its name, its type's name or
    key) wins over "All"; false means do not send."""
    if not isinstance(integrations, dict) or not integrations:
        return True
    dtype = registry.get(destination.type)
    for key in (destination.name, dtype.name if dtype else None, destination.type):
        if key is not None and key in integrations:
            return integrations[key] is not False
    return integrations.get("All", True) is not False


def _destinations_by_workspace(workspace_ids: set[int]) -> dict[int, list[Destination]]:
    """Workspace → its destinations, with sources and subscriptions loaded (a destination without
    sources takes every source of its workspace)."""
    destinations = Destination.objects.filter(workspace_id__in=workspace_ids).prefetch_related(
        "sources", "subscriptions"
    )
    by_workspace: dict[int, list[Destination]] = defaultdict(list)
    for destination in destinations:
        destination.source_ids = {s.pk for s in destination.sources.all()}
        by_workspace[destination.workspace_id].append(destination)
    return by_workspace


def route_stored(event_ids: list[int]) -> set[int]:
    """Route events already in the store (replays, re-routing)."""
    rows = Event.objects.filter(pk__in=event_ids).values_list("pk", "source_id", "message_id", "payload", "received_at")
    return route_events([RoutableEvent(*row) for row in rows])


def route_events(events: list[RoutableEvent]) -> set[int]:
    """Create the deliveries of these events; returns the destinations that got new work.

    Idempotent: routing the same event twice creates nothing new (unique subscription+event)."""
    if not events:
        return set()
    workspace_of = dict(Source.objects.filter(pk__in={e.source_id for e in events}).values_list("pk", "workspace_id"))
    by_workspace = _destinations_by_workspace(set(workspace_of.values()))
    if not by_workspace:
        return set()
    deliveries: list[Delivery] = []
    filtered: Counter[tuple[int, str]] = Counter()
    for event in events:
        for destination in by_workspace.get(workspace_of[event.source_id], []):
            if destination.source_ids and event.source_id not in destination.source_ids:
                continue  # not connected to this source: not a filter, just not its event
            reason = _route_one(event, destination, deliveries)
            if reason:
                filtered[(destination.pk, reason)] += 1
    Delivery.objects.bulk_create(deliveries, ignore_conflicts=True, batch_size=500)
    _count_filtered(filtered, timezone.now())
    return {d.destination_id for d in deliveries if d.status == Status.PENDING}


@dataclass
class DestinationRouting:
    created: int = 0
    existing: int = 0
    filtered: Counter[str] = field(default_factory=Counter)


def route_to_destination(events: list[RoutableEvent], destination: Destination) -> DestinationRouting:
    """Route events to this one destination only (replays), whether or not it was connected when they
    arrived. Idempotent: an event that already has its delivery for a subscription gets no second one.
    Filtered events are reported, not added to the hourly filtered counts: routing counted them when
    they first arrived."""
    routed = DestinationRouting()
    deliveries: list[Delivery] = []
    for event in events:
        reason = _route_one(event, destination, deliveries)
        if reason:
            routed.filtered[reason] += 1
    existing = set(
        Delivery.objects.filter(destination=destination, event_id__in={d.event_id for d in deliveries}).values_list(
            "subscription_id", "event_id"
        )
    )
    new = [d for d in deliveries if (d.subscription_id, d.event_id) not in existing]
    Delivery.objects.bulk_create(new, ignore_conflicts=True, batch_size=500)
    routed.created, routed.existing = len(new), len(deliveries) - len(new)
    return routed


def _route_one(event: RoutableEvent, destination: Destination, out: list[Delivery]) -> str:
    if not destination.enabled:
        return DISABLED
    payload = event.payload
    if not integrations_allow(payload.get("integrations"), destination):
        return INTEGRATIONS
    matched = False
    for subscription in destination.subscriptions.all():
        if not subscription.enabled:
            continue
        outcome = engine.run(subscription.trigger, subscription.mapping, payload)
        if not outcome.matched:
            continue
        matched = True
        name = payload.get("event") if payload.get("type") == "track" else payload.get("name")
        delivery = Delivery(
            destination=destination, subscription=subscription, event_id=event.id, source_id=event.source_id,
            message_id=event.message_id, event_name=str(name or "")[:200], action=subscription.action,
            payload=outcome.payload if outcome.payload is not None else {}, received_at=event.received_at,
        )  # fmt: skip
        if outcome.errors:
            # The mapping cannot make a valid payload of this event: a permanent failure, visible.
            delivery.status, delivery.error_class = Status.FAILED, ErrorClass.PAYLOAD
            delivery.last_error = "; ".join(outcome.errors)[:2000]
            delivery.finished_at = timezone.now()
        out.append(delivery)
    return "" if matched else NO_MATCH


def _count_filtered(filtered: Counter[tuple[int, str]], now: datetime) -> None:
    hour = now.replace(minute=0, second=0, microsecond=0)
    for (destination_id, reason), count in filtered.items():
        updated = FilteredCount.objects.filter(destination_id=destination_id, hour=hour, reason=reason).update(
            count=F("count") + count
        )
        if not updated:
            _, created = FilteredCount.objects.get_or_create(
                destination_id=destination_id, hour=hour, reason=reason, defaults={"count": count}
            )
            if not created:
                FilteredCount.objects.filter(destination_id=destination_id, hour=hour, reason=reason).update(
                    count=F("count") + count
                )
