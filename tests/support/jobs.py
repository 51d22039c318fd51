"""Helpers for re-drive and replay job tests: a fake clock for the rate cap, running a job as a worker
would, and dead letters made directly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from cdp.core.models import Destination
from cdp.delivery import jobs
from cdp.delivery.models import Delivery, Job, Status


class FakeClock:
    """Stands in for the job runner's monotonic() and sleep(): sleeping moves the clock, and `at_sleep`
    records what the test wants to know each time the runner waits for the rate cap."""

    def __init__(self, at_sleep: Callable[[], Any] | None = None) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.seen: list[Any] = []
        self._at_sleep = at_sleep

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self._at_sleep is not None:
            self.seen.append(self._at_sleep())
        self.now += seconds

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
        monkeypatch.setattr(jobs, "monotonic", self.monotonic)
        monkeypatch.setattr(jobs, "sleep", self.sleep)
        return self


def run(job_id: int, **kwargs: Any) -> Job:
    """Work the job as a Celery worker would (the task's body, called directly); returns it reloaded."""
    jobs.run_job.run(job_id, **kwargs)
    return Job.objects.get(pk=job_id)


def make_dead_letter(destination: Destination, **fields: Any) -> Delivery:
    """A dead-lettered delivery of `destination`, made directly (for API tests that only list it)."""
    now = timezone.now()
    values = {
        "event_id": 0, "source_id": 0, "message_id": "msg-dead", "event_name": "Order Completed",
        "action": "send", "payload": {}, "status": Status.DEAD, "attempts": 1, "error_class": "server_error",
        "last_error": "503", "received_at": now, "finished_at": now, **fields,
    }  # fmt: skip
    return Delivery.objects.create(destination=destination, **values)
