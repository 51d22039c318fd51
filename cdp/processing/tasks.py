import threading
import time
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from cdp.core.waiting import look_until
from cdp.processing.processor import has_pending, process_pending, purge_processed

# One drain at a time per process. Concurrent drains would not go faster: their transactions queue on
# the same rows (the hourly counts, the observed schema, the monthly users), each holding its locks while
# it waits for the others, and each pays the fixed cost of a transaction for fewer requests. A wake-up
# that finds a drain running leaves a mark instead, and the running drain goes round once more.
_draining = threading.Lock()
_wanted = threading.Event()


@shared_task
def process_intake(time_budget: float = 10.0) -> int:
    """Drain the intake log for up to `time_budget` seconds; returns the requests processed.

    Having run out of requests, the drain keeps watching for new ones for CDP_PROCESS_LINGER_SECONDS
    (a cheap look every CDP_PROCESS_POLL_SECONDS), so that requests arriving just after a batch do not
    wait for the next wake-up."""
    deadline = time.monotonic() + time_budget
    total = 0
    while True:
        if not _draining.acquire(blocking=False):
            _wanted.set()
            return total
        try:
            processed, more = _drain(deadline)
            total += processed
        finally:
            _draining.release()
        # A wake-up that came between the drain's last look and the release left its mark: go on.
        if not (more or _wanted.is_set()):
            return total
        if time.monotonic() >= deadline:
            process_intake.apply_async(retry=False)  # the next round runs as a new task
            return total


def _drain(deadline: float) -> tuple[int, bool]:
    """Process batches until none is left for the linger time or the deadline comes; returns the
    requests processed and whether the last batch found any (so more may be waiting)."""
    total = 0
    idle_since: float | None = None
    while time.monotonic() < deadline:
        _wanted.clear()
        processed = process_pending().requests
        total += processed
        if processed:
            idle_since = None
            continue
        idle_since = idle_since or time.monotonic()
        if not _more_within(min(deadline, idle_since + settings.CDP_PROCESS_LINGER_SECONDS)):
            return total, False
    return total, idle_since is None


def _more_within(until: float) -> bool:
    """Wait until requests are pending or a wake-up comes (True), or until `until` (False)."""
    return look_until(until, settings.CDP_PROCESS_POLL_SECONDS, has_pending, woken=_wanted)


@shared_task
def purge_intake() -> int:
    return purge_processed(timezone.now() - timedelta(days=settings.CDP_INTAKE_RETENTION_DAYS))
