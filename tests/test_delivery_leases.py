"""Drain leases: a destination's deliveries go out through one drain at a time even when Redis cannot tell
(flushed, down, a lane that ran out), and a lease whose holder is gone does not hold up the work."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from cdp.core.models import Source
from cdp.delivery.engine import drain
from cdp.delivery.lanes import Lane
from cdp.delivery.leases import Lease
from cdp.delivery.models import Delivery, DeliveryAttempt, DrainLease, Status
from tests.support.delivery import ingest, track, webhook
from tests.support.sink import Reply, messages_in

pytestmark = [pytest.mark.usefixtures("fresh_lanes")]


@pytest.fixture
def source(make_workspace) -> Source:
    return Source.objects.create(workspace=make_workspace("acme"), name="Website", kind="website")


def delivered_ids(sink) -> Counter[str]:
    return Counter(message["messageId"] for message in messages_in(sink.requests))


def gone_backend() -> int:
    """The server process id of a connection that has been closed (and whose process has exited)."""
    with psycopg.connect(**connection.get_connection_params()) as other:
        pid = other.execute("SELECT pg_backend_pid()").fetchone()[0]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
            if cursor.fetchone()[0] == 0:
                return pid
        time.sleep(0.05)
    raise AssertionError("the closed connection's server process did not exit")


@pytest.mark.django_db
def test_drain_sends_nothing_while_another_drain_holds_the_lease_with_the_lane_free(source, sink):
    hook = webhook(source.workspace, sink.url)
    ingest(source, track(), track())
    other = Lease(hook.pk, 60)
    assert other.take()  # a drain whose Redis lane is gone (flushed) still holds the destination

    blocked = drain(hook.pk)

    assert blocked.busy and blocked.sent == 0
    assert sink.requests == []
    assert not Lane(hook.pk).held(), "the lane is not kept by a drain that cannot run"
    assert Lane(hook.pk).take_again(), "the holder is told to look again when it ends"
    other.give_back()
    assert drain(hook.pk).sent == 2
    assert set(Delivery.objects.filter(destination=hook).values_list("status", flat=True)) == {Status.DELIVERED}
    assert not DrainLease.objects.filter(destination=hook).exists(), "a drain gives its lease back"


@pytest.mark.django_db
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="server processes are PostgreSQL's")
def test_lease_whose_connection_is_gone_is_taken_at_once(source, sink):
    hook = webhook(source.workspace, sink.url)
    ingest(source, track(), track(), track())
    # A worker killed mid-drain: its lease would last another hour, but its connection died with it.
    DrainLease.objects.create(
        destination=hook, holder="killed-worker", backend=gone_backend(), until=timezone.now() + timedelta(hours=1)
    )

    assert drain(hook.pk).sent == 3
    assert len(delivered_ids(sink)) == 3


@pytest.mark.django_db
def test_lease_of_a_live_connection_holds_until_its_time_is_up(source, sink):
    hook = webhook(source.workspace, sink.url)
    ingest(source, track())
    alive = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            alive = cursor.fetchone()[0]
    lease = DrainLease.objects.create(
        destination=hook, holder="slow-worker", backend=alive, until=timezone.now() + timedelta(minutes=5)
    )
    assert drain(hook.pk).busy
    assert sink.requests == []

    DrainLease.objects.filter(pk=lease.pk).update(until=timezone.now() - timedelta(seconds=1))  # it ran out
    assert drain(hook.pk).sent == 1
    assert len(delivered_ids(sink)) == 1


@pytest.mark.django_db(transaction=True)
def test_drain_that_lost_its_lease_claims_no_more(source, sink):
    # One request at a time, 25 events a round; the first answer comes late, and meanwhile another
    # drain takes the destination over (as after the lease ran out while this one was stuck).
    hook = webhook(source.workspace, sink.url, max_in_flight=1)
    ingest(source, *[track() for _ in range(60)])
    sink.script(Reply(delay=1.0))

    def take_over() -> None:
        try:
            sink.wait_for_requests(1, timeout=20)
            DrainLease.objects.filter(destination=hook).update(holder="another-drain")
        finally:
            connection.close()

    thief = threading.Thread(target=take_over)
    thief.start()
    result = drain(hook.pk)
    thief.join(timeout=30)

    assert result.sent == 25, "the round under way is finished, no new round is claimed"
    assert len(delivered_ids(sink)) == 25
    assert Delivery.objects.filter(destination=hook, status=Status.PENDING).count() == 35
    # The other drain's lease is left alone.
    assert DrainLease.objects.get(destination=hook).holder == "another-drain"


@pytest.mark.django_db(transaction=True)
def test_next_round_claimed_while_sending_leaves_out_what_is_being_sent(source, sink):
    # Batches of 2, one request at a time: rounds of 4 deliveries, each next round claimed while the
    # current one is on the wire, slowly.
    hook = webhook(
        source.workspace, sink.url, settings={"batch": True}, batch_size=2, batch_wait_seconds=0, max_in_flight=1
    )
    ingest(source, *[track() for _ in range(11)])
    sink.script(*[Reply(delay=0.1) for _ in range(6)])

    result = drain(hook.pk)

    received = delivered_ids(sink)
    assert result.sent == 11
    assert len(received) == 11 and set(received.values()) == {1}, "every event once"
    attempts = Counter(DeliveryAttempt.objects.filter(delivery__destination=hook).values_list("delivery_id", flat=True))
    assert set(attempts.values()) == {1}
