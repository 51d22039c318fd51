"""One drain per destination at a time, without losing a wake-up; what one request's evidence looks like."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from cdp.core.models import Source
from cdp.delivery.engine import drain
from cdp.delivery.lanes import Breaker, Lane, client
from cdp.delivery.models import Delivery, DeliveryAttempt, Exchange, Status
from cdp.delivery.tasks import poke
from tests.support.delivery import ingest, make_due, track, webhook
from tests.support.sink import Reply, messages_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_lanes")]


@pytest.fixture
def source(make_workspace) -> Source:
    return Source.objects.create(workspace=make_workspace("acme"), name="Website", kind="website")


def test_wakeup_while_another_drain_holds_the_lane_makes_the_holder_drain_again(source, sink):
    hook = webhook(source.workspace, sink.url)
    ingest(source, track())
    holder = Lane(hook.pk)
    assert holder.acquire(30)
    woken = drain(hook.pk)  # the poke for the new event finds the lane taken
    assert (woken.sent, woken.requeue) == (0, False)
    assert sink.requests == []
    holder.release()
    assert holder.take_again(), "the holder learns that a wake-up came while it drained"
    assert not holder.take_again()


def test_drain_that_saw_a_wakeup_asks_to_be_queued_again_even_with_nothing_sent(source, sink):
    hook = webhook(source.workspace, sink.url)
    Lane(hook.pk).mark_again()
    result = drain(hook.pk)
    assert (result.sent, result.requeue) == (0, True)
    assert drain(hook.pk).requeue is False


def test_wakeup_when_the_lane_is_free_drains_at_once(source, sink):
    hook = webhook(source.workspace, sink.url)
    ingest(source, track(), track())
    result = drain(hook.pk)
    assert (result.sent, result.delivered, result.requeue) == (2, 2, False)
    assert len(list(messages_in(sink.requests))) == 2


def test_batch_is_one_exchange_shared_by_the_attempts_of_its_events(source, sink):
    hook = webhook(source.workspace, sink.url, settings={"batch": True}, batch_size=50)
    ingest(source, *[track() for _ in range(120)])
    assert drain(hook.pk).delivered == 120
    exchanges = list(Exchange.objects.filter(destination=hook))
    assert sorted(e.events for e in exchanges) == [20, 50, 50]  # requests in flight together, recorded as answered
    assert len(sink.requests) == 3
    attempts = DeliveryAttempt.objects.select_related("exchange").filter(delivery__destination=hook)
    assert attempts.count() == 120
    by_exchange = {}
    for attempt in attempts:
        by_exchange.setdefault(attempt.exchange_id, []).append(attempt)
        assert attempt.request["url"] == sink.url
        assert attempt.response_status == 200 and attempt.outcome == "delivered"
    assert sorted(len(group) for group in by_exchange.values()) == [20, 50, 50]


def test_failed_batch_retries_its_events_together(source, sink):
    sink.script(Reply(503), Reply(503))
    hook = webhook(source.workspace, sink.url, settings={"batch": True}, batch_size=10)
    ingest(source, *[track() for _ in range(10)])
    drain(hook.pk)
    rows = list(Delivery.objects.filter(destination=hook))
    assert {row.status for row in rows} == {Status.RETRYING}
    assert len({row.next_attempt_at for row in rows}) == 1, "one backoff for the request, not one per event"
    [exchange] = Exchange.objects.filter(destination=hook)
    assert (exchange.response_status, exchange.events, exchange.error_class) == (503, 10, "server_error")
    make_due(hook)
    second = drain(hook.pk)
    assert (second.retrying, second.delivered) == (10, 0)
    make_due(hook)
    assert drain(hook.pk).delivered == 10
    assert sorted(a.number for a in DeliveryAttempt.objects.filter(delivery=rows[0])) == [1, 2, 3]


def _ingest_later(source: Source, delay: float) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        try:
            ingest(source, track())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_lingering_drain_sends_an_event_that_arrives_after_it_ran_out_of_work(source, sink):
    hook = webhook(source.workspace, sink.url)
    ingest(source, track())
    late = _ingest_later(source, 0.3)
    result = drain(hook.pk, linger=3.0)
    late.join()
    assert (result.sent, result.delivered) == (2, 2), "the late event went out in the same drain"
    assert len(list(messages_in(sink.requests))) == 2
    assert not Delivery.objects.filter(destination=hook).exclude(status=Status.DELIVERED).exists()


@pytest.mark.django_db(transaction=True)
def test_drain_without_linger_leaves_a_later_event_to_the_next_wakeup(source, sink):
    hook = webhook(source.workspace, sink.url)
    ingest(source, track())
    late = _ingest_later(source, 0.3)
    result = drain(hook.pk)
    late.join()
    assert result.sent == 1
    assert Delivery.objects.filter(destination=hook, status=Status.PENDING).count() == 1


@pytest.mark.django_db(transaction=True)
def test_batching_drain_does_not_linger(source, sink):
    hook = webhook(source.workspace, sink.url, settings={"batch": True}, batch_size=2, batch_wait_seconds=0)
    ingest(source, track(), track())
    started = time.monotonic()
    assert drain(hook.pk, linger=5.0).sent == 2
    assert time.monotonic() - started < 4.0, "a batching destination waits for batches, not for single events"


def _queued_drains() -> int:
    return client().llen("delivery")  # the delivery queue on the Redis broker


def test_poke_marks_a_held_lane_instead_of_queuing_a_task_that_would_find_it_busy(source, sink):
    hook = webhook(source.workspace, sink.url)
    client().delete("delivery")
    holder = Lane(hook.pk)
    assert holder.acquire(30)
    poke({hook.pk})
    assert _queued_drains() == 0
    holder.release()
    assert holder.take_again(), "the holder goes round again for the event that woke it"
    poke({hook.pk})
    assert _queued_drains() == 1, "a free lane gets a task"
    client().delete("delivery")


def test_poke_queues_nothing_for_a_destination_whose_breaker_is_open(source, sink, settings):
    hook = webhook(source.workspace, sink.url)
    client().delete("delivery")
    breaker = Breaker(hook.pk)
    breaker.record(0, settings.CDP_BREAKER_THRESHOLD)
    assert breaker.is_open()
    poke({hook.pk})
    assert _queued_drains() == 0, "a task could send nothing before the cooldown ends"
    assert not Lane(hook.pk).take_again()
    client().delete(breaker.open_key)  # the cooldown is over
    poke({hook.pk})
    assert _queued_drains() == 1, "the next wake-up after the cooldown queues the probe"
    client().delete("delivery")


@pytest.mark.django_db(transaction=True)
def test_answers_are_recorded_after_the_session_lost_its_prepared_statements(source, sink):
    hook = webhook(source.workspace, sink.url)
    ingest(source, track())
    assert drain(hook.pk).delivered == 1
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # as a pooler resetting the session between clients does
    ingest(source, track())
    assert drain(hook.pk).delivered == 1
    assert Delivery.objects.filter(destination=hook, status=Status.DELIVERED).count() == 2
    assert DeliveryAttempt.objects.filter(delivery__destination=hook).count() == 2
