"""Replay: stored events of one source over a time range, routed again to one destination only (a tool
added after the events came in, or one that needs them again). Routing is idempotent, so events that
already have their delivery to a subscription get no second one, and a replay can be run twice."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime

from cdp.core.models import Destination
from cdp.delivery.models import Job
from cdp.delivery.routing import RoutableEvent, route_to_destination
from cdp.processing.models import Event

CREATED = "deliveries_created"
EXISTING = "deliveries_existing"


class ReplayImpossible(Exception):
    """The job cannot go on (its destination was deleted)."""


def replay_events(source_id: int, since: datetime, until: datetime) -> QuerySet[Event]:
    """The events a replay sends: those that happened (`timestamp`) in [since, until), as the events API
    filters them, so `GET /api/v1/events/?source=&since=&until=` lists the same events."""
    return Event.objects.filter(source_id=source_id, timestamp__gte=since, timestamp__lt=until)


def replay_chunk(job: Job, limit: int) -> tuple[bool, set[int]]:
    """Route the next `limit` events of the job's selection to its destination; returns whether the
    selection is worked through, and the destinations that got work."""
    destination = Destination.objects.filter(pk=job.destination_id).prefetch_related("subscriptions").first()
    if destination is None:
        raise ReplayImpossible("The destination was deleted.")
    parameters = job.parameters
    events = replay_events(
        parameters["source"], parse_datetime(parameters["since"]), parse_datetime(parameters["until"])
    )
    rows = list(
        events.filter(pk__gt=job.cursor, pk__lte=job.up_to_id)
        .order_by("pk")
        .values_list("pk", "source_id", "message_id", "payload", "received_at")[:limit]
    )
    routed = route_to_destination([RoutableEvent(*row) for row in rows], destination)
    for key, count in ((CREATED, routed.created), (EXISTING, routed.existing), *routed.filtered.items()):
        job.result[key] = job.result.get(key, 0) + count
    job.done += len(rows)
    if rows:
        job.cursor = rows[-1][0]
    return len(rows) < limit or job.cursor >= job.up_to_id, {destination.pk} if routed.created else set()
