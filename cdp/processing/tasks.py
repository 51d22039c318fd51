import time
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from cdp.processing.processor import process_pending, purge_processed


@shared_task
def process_intake(time_budget: float = 10.0) -> int:
    """Drain the intake log for up to `time_budget` seconds; returns the requests processed."""
    deadline = time.monotonic() + time_budget
    total = 0
    while time.monotonic() < deadline:
        result = process_pending()
        total += result.requests
        if result.requests == 0:
            break
    return total


@shared_task
def purge_intake() -> int:
    return purge_processed(timezone.now() - timedelta(days=settings.CDP_INTAKE_RETENTION_DAYS))
