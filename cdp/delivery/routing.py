"""Routing: each stored event, each destination it may reach, each subscription whose trigger
matches becomes a delivery with the mapped payload. Whatever does not go is counted with its reason."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from cdp.core.models import Destination, Source
from cdp.delivery.models import Delivery, ErrorClass, FilteredCount, Status
from cdp.destinations import engine, registry
from cdp.destinations.models import Subscription
from cdp.processing import config_version
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


@dataclass(frozen=True)
class _Target:
    """A destination as routing needs it: its sources (none: every source of its workspace) and its
    enabled subscriptions, in order."""

    destination: Destination
    source_ids: frozenset[int]
    subscriptions: tuple[Subscription, ...]


class RoutingConfig:
    """What routing reads of the configuration: each source's workspace and each workspace's destinations.

    Loaded as needed and kept per process for as long as the configuration's version stays the same
    (see cdp.processing.config_version): any change to a source, a destination, the sources feeding it
    or a subscription makes the next batch load afresh what it needs. What is loaded is at least as
    recent as the version it is kept under, because the version is read first."""

    def __init__(self, version: int | None) -> None:
        self.version = version
        self.workspaces: dict[int, tuple[int, datetime]] = {}  # source → (workspace id, workspace created)
        self.targets: dict[int, tuple[_Target, ...]] = {}  # workspace → its destinations
        self._lock = threading.Lock()

    def prepare(self, source_ids: set[int]) -> None:
        """Load what routing these sources' events needs and is not here yet (nothing, most of the time).
        Several threads may share this object: whatever one loads was read after the version was."""
        with self._lock:
            missing = [pk for pk in source_ids if pk not in self.workspaces]
        if missing:
            rows = Source.objects.filter(pk__in=missing).values_list("pk", "workspace_id", "workspace__created_at")
            found = {pk: (workspace_id, created) for pk, workspace_id, created in rows}
            with self._lock:
                self.workspaces.update(found)
        with self._lock:
            wanted = {self.workspaces[pk][0] for pk in source_ids if pk in self.workspaces}
            unloaded = wanted - self.targets.keys()
        if unloaded:
            loaded = _load_targets(unloaded)
            with self._lock:
                for workspace_id in unloaded:
                    self.targets.setdefault(workspace_id, loaded.get(workspace_id, ()))


def _load_targets(workspace_ids: set[int]) -> dict[int, tuple[_Target, ...]]:
    """Workspace → its destinations, with sources and subscriptions, in three queries."""
    destinations = Destination.objects.filter(workspace_id__in=workspace_ids).prefetch_related(
        "sources", "subscriptions"
    )
    by_workspace: dict[int, list[_Target]] = defaultdict(list)
    for destination in destinations:
        target = _Target(
            destination,
            frozenset(s.pk for s in destination.sources.all()),
            tuple(s for s in destination.subscriptions.all() if s.enabled),
        )
        by_workspace[destination.workspace_id].append(target)
    return {workspace_id: tuple(targets) for workspace_id, targets in by_workspace.items()}


_config_lock = threading.Lock()
_config: RoutingConfig | None = None


def routing_config(source_ids: Iterable[int], using: str = "default") -> RoutingConfig:
    """The configuration for routing these sources' events now: the one this process keeps when the
    version it reads is the one it was loaded under, else a new one (one query when nothing changed).
    Call it inside the transaction that routes, before routing."""
    global _config
    version = config_version.current(using)
    config = _config
    if version is None or config is None or config.version != version:
        config = RoutingConfig(version)
        if version is not None and settings.CDP_ROUTING_CACHE:
            with _config_lock:
                _config = config
    config.prepare(set(source_ids))
    return config


def forget_config() -> None:
    """Drop the configuration this process keeps (the next batch loads it afresh)."""
    global _config
    with _config_lock:
        _config = None


def route_stored(event_ids: list[int]) -> set[int]:
    """Route events already in the store (replays, re-routing)."""
    rows = Event.objects.filter(pk__in=event_ids).values_list("pk", "source_id", "message_id", "payload", "received_at")
    return route_events([RoutableEvent(*row) for row in rows])


def route_events(events: list[RoutableEvent], config: RoutingConfig | None = None) -> set[int]:
    """Create the deliveries of these events; returns the destinations that got new work.
    `config`: what routing_config() gave in this transaction, if the caller already asked for it.

    Idempotent: routing the same event twice creates nothing new (unique subscription+event)."""
    if not events:
        return set()
    if config is None:
        config = routing_config({e.source_id for e in events})
    deliveries: list[Delivery] = []
    filtered: Counter[tuple[int, str]] = Counter()
    for event in events:
        workspace = config.workspaces.get(event.source_id)
        for target in config.targets.get(workspace[0], ()) if workspace else ():
            if target.source_ids and event.source_id not in target.source_ids:
                continue  # not connected to this source: not a filter, just not its event
            reason = _route_one(event, target.destination, target.subscriptions, deliveries)
            if reason:
                filtered[(target.destination.pk, reason)] += 1
    if deliveries:
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
    subscriptions = tuple(s for s in destination.subscriptions.all() if s.enabled)
    for event in events:
        reason = _route_one(event, destination, subscriptions, deliveries)
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


def _route_one(
    event: RoutableEvent, destination: Destination, subscriptions: Sequence[Subscription], out: list[Delivery]
) -> str:
    """`subscriptions`: the destination's enabled ones."""
    if not destination.enabled:
        return DISABLED
    payload = event.payload
    if not integrations_allow(payload.get("integrations"), destination):
        return INTEGRATIONS
    matched = False
    for subscription in subscriptions:
        outcome = engine.run(subscription.trigger, subscription.mapping, payload)
        if not outcome.matched:
            continue
        matched = True
        name = payload.get("event") if payload.get("type") == "track" else payload.get("name")
        delivery = Delivery(
            destination_id=destination.pk, subscription_id=subscription.pk, event_id=event.id,
            source_id=event.source_id, message_id=event.message_id, event_name=str(name or "")[:200],
            action=subscription.action,
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
    """Add to the hourly counts: one upsert for the whole batch, rows in key order (the lock order)."""
    if not filtered:
        return
    hour = connection.ops.adapt_datetimefield_value(now.replace(minute=0, second=0, microsecond=0))
    rows = sorted(filtered.items())
    table = FilteredCount._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (destination_id, hour, reason, count) "
            f"VALUES {', '.join(['(%s, %s, %s, %s)'] * len(rows))} "
            f"ON CONFLICT (destination_id, hour, reason) DO UPDATE SET count = {table}.count + excluded.count",
            [value for (destination_id, reason), count in rows for value in (destination_id, hour, reason, count)],
        )
