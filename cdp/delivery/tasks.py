from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from cdp.delivery.engine import drain, due
from cdp.delivery.lanes import Lane
from cdp.delivery.models import Delivery

log = logging.getLogger(__name__)


@shared_task
def deliver_destination(destination_id: int) -> int:
    """Drain one destination; if work is left when the time budget ends, queue the next round."""
    result = drain(destination_id, linger=settings.CDP_DELIVERY_LINGER_SECONDS)
    if result.requeue:
        deliver_destination.apply_async(args=[destination_id])
    return result.sent


def poke(destination_ids: set[int]) -> None:
    """Wake the destinations. One whose lane is held gets the mark its draining task takes when it ends
    (two Redis calls) instead of a task that would only find the lane busy; should the lane be let go
    meanwhile, a task is queued after all (the same order of looks as in `drain`, so no wake-up is lost).
    One whose circuit breaker is open gets nothing: a task could send nothing before the cooldown ends,
    and its deliveries stay due, so the next event or the sweeper wakes it after that."""
    for destination_id in destination_ids:
        lane = Lane(destination_id)
        held, resting = lane.look()
        if resting:
            continue
        if held:
            lane.mark_again()
            if lane.held():
                continue
        try:
            deliver_destination.apply_async(args=[destination_id], retry=False)
        except Exception:
            log.warning("could not queue delivery for destination %s; the sweeper will", destination_id, exc_info=True)


@shared_task
def sweep_deliveries() -> int:
    """Queue a drain for every destination with deliveries due: retries whose time came, and work a
    lost message or a killed worker left behind (its drain lease ends with its connection, or in time)."""
    destination_ids = set(
        Delivery.objects.filter(due(None, timezone.now())).values_list("destination_id", flat=True).distinct()
    )
    poke(destination_ids)
    return len(destination_ids)
