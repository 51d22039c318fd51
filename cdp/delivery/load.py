"""Load now: send a batching destination's waiting events at once (a warehouse load between its scheduled
loads, say), as a job whose progress is the share of those events that got an answer."""

from __future__ import annotations

from time import sleep

from django.db.models import QuerySet

from cdp.core.models import Destination
from cdp.delivery.engine import drain
from cdp.delivery.models import Delivery, Job, Status


class LoadImpossible(Exception):
    """The job cannot go on (its destination was deleted or disabled)."""


def waiting(destination: Destination) -> QuerySet[Delivery]:
    """What a load sends: the destination's deliveries waiting for their first try."""
    return Delivery.objects.filter(destination=destination, status=Status.PENDING)


def load_chunk(job: Job, limit: int) -> tuple[bool, set[int]]:
    """Drain the destination with partial batches flushed for a few seconds. Progress counts the selected
    deliveries that got their first answer; the result counts what the load's requests did (events that
    came in meanwhile go along)."""
    destination = Destination.objects.filter(pk=job.destination_id).first()
    if destination is None or not destination.enabled:
        raise LoadImpossible("The destination was deleted or disabled.")
    result = drain(destination.pk, time_budget=5.0, flush=True)
    if result.busy:
        sleep(0.2)  # the destination's regular drain holds its lane; the next chunk tries again
    for key in ("delivered", "retrying", "failed", "dead"):
        if count := getattr(result, key):
            job.result[key] = job.result.get(key, 0) + count
    left = waiting(destination).filter(pk__lte=job.up_to_id, attempts=0).count()
    job.done = max(job.done, job.total - left)
    job.cursor = job.up_to_id if not left else job.cursor
    stuck = not result.busy and result.sent == 0 and left > 0
    if stuck:
        job.result["not_sent"] = left  # the breaker is open, or the rows are held by another worker
    return left == 0 or stuck, set()
