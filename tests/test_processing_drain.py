"""How processing runs: one drain at a time per process, which goes round again for a wake-up that
came meanwhile and keeps watching for new requests a moment after the last batch; deliveries are
woken from a thread of their own, once per destination for whatever committed before."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import orjson
import pytest
from django.utils import timezone

from cdp.core.models import Source
from cdp.insights import observe
from cdp.processing import tasks, waker
from cdp.processing.processor import ProcessResult, has_pending, process_pending
from cdp.processing.tasks import process_intake
from cdp.tracking.models import IntakeRequest

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    """Nothing a committed batch taught this process leaks to later tests (ids repeat on SQLite)."""
    yield
    observe.forget()


@pytest.fixture
def source(make_workspace) -> Source:
    return Source.objects.create(workspace=make_workspace("acme"), name="Website", kind="website")


def accept(source: Source, message_id: str) -> IntakeRequest:
    body = orjson.dumps({"type": "track", "event": "Order Completed", "userId": "u1", "messageId": message_id})
    return IntakeRequest.objects.create(source=source, received_at=timezone.now(), endpoint="track", body=body)


def test_has_pending_skips_requests_held_back_or_out_of_attempts(source, settings):
    held = accept(source, "held")
    spent = accept(source, "spent")
    IntakeRequest.objects.filter(pk=held.pk).update(retry_at=timezone.now() + timedelta(minutes=1))
    IntakeRequest.objects.filter(pk=spent.pk).update(attempts=settings.CDP_INTAKE_MAX_ATTEMPTS)
    assert not has_pending()

    accept(source, "new")
    assert has_pending()
    process_pending()
    assert not has_pending()


def test_a_wake_up_while_a_drain_runs_leaves_a_mark_and_the_drain_goes_round_again(source, monkeypatch, settings):
    settings.CDP_PROCESS_LINGER_SECONDS = 0.0  # no watching: only the mark brings the drain round again
    calls: list[int] = []

    def pending_with_a_wake_up_meanwhile() -> ProcessResult:
        result = process_pending()
        calls.append(result.requests)
        if len(calls) == 1:
            accept(source, "meanwhile")
            assert process_intake() == 0  # another task: the drain is running, it leaves a mark and goes
        return result

    monkeypatch.setattr(tasks, "process_pending", pending_with_a_wake_up_meanwhile)

    assert process_intake() == 1
    assert calls[:2] == [0, 1]
    assert not IntakeRequest.objects.filter(processed_at__isnull=True).exists()


def test_a_drain_picks_up_requests_arriving_while_it_lingers(source, monkeypatch, settings):
    settings.CDP_PROCESS_LINGER_SECONDS = 0.5
    settings.CDP_PROCESS_POLL_SECONDS = 0.01
    looks: list[float] = []
    real_has_pending = tasks.has_pending

    def has_pending_after_a_while() -> bool:
        looks.append(time.monotonic())
        if len(looks) == 3:
            accept(source, "late")  # a request committed while the drain watches
        return real_has_pending()

    monkeypatch.setattr(tasks, "has_pending", has_pending_after_a_while)
    started = time.monotonic()

    assert process_intake() == 1
    assert len(looks) >= 3
    assert time.monotonic() - started < 3.0  # and stopped watching half a second after that batch


def test_a_drain_stops_watching_after_the_linger_time(source, settings):
    settings.CDP_PROCESS_LINGER_SECONDS = 0.05
    started = time.monotonic()

    assert process_intake() == 0
    assert 0.05 <= time.monotonic() - started < 1.0


def test_delivery_waker_queues_each_destination_after_the_commits_that_noted_it(monkeypatch):
    poked: list[set[int]] = []
    sending = threading.Event()
    release = threading.Event()

    def poke(destination_ids: set[int]) -> None:
        poked.append(set(destination_ids))
        sending.set()
        release.wait(5)

    monkeypatch.setattr("cdp.delivery.tasks.poke", poke)
    delivery_waker = waker.DeliveryWaker()
    delivery_waker.wake({1})
    assert sending.wait(5)
    # While the first wake-up is being sent, later ones wait and are sent together, each destination once.
    delivery_waker.wake({1, 2})
    delivery_waker.wake({2, 3})
    release.set()
    deadline = time.monotonic() + 5
    while len(poked) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)

    assert poked == [{1}, {1, 2, 3}]


def test_processed_batch_wakes_the_destinations_it_gave_work(source, monkeypatch, django_capture_on_commit_callbacks):
    from tests.support.delivery import webhook

    hook = webhook(source.workspace, "http://127.0.0.1:9/hook")
    woken: list[Any] = []
    monkeypatch.setattr(waker.waker, "wake", woken.append)
    accept(source, "one")

    with django_capture_on_commit_callbacks(execute=True):
        process_pending()

    assert woken == [{hook.pk}]
