"""Isolation between destinations, with real processes: the Tracking API under uvicorn, a Celery
worker (threads pool, queues cdp and delivery) and beat, and scripted endpoints on loopback.

A destination that never answers must not delay another destination's deliveries, and its circuit
breaker must stop the attempts until the cooldown is over."""

from __future__ import annotations

import time

import pytest

from cdp.core.models import Source
from cdp.delivery.models import Delivery, DeliveryAttempt
from tests.conftest import wait_for
from tests.support.delivery import forget_lanes_and_breakers, percentile, post_batch, track, webhook
from tests.support.processes import child_env
from tests.support.sink import HANG, Sink, messages_in

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _fresh_breakers() -> None:
    forget_lanes_and_breakers()


@pytest.fixture
def source(make_workspace, transactional_db) -> Source:
    return Source.objects.create(workspace=make_workspace("acme"), name="Website", kind="website")


def first_arrivals(sink: Sink) -> dict[str, float]:
    arrivals: dict[str, float] = {}
    for request in sink.requests:
        for message in messages_in([request]):
            arrivals.setdefault(message["messageId"], request.at)
    return arrivals


def test_delivery_dead_destination_does_not_delay_healthy_one(cdp_server, celery_worker, source):
    with Sink() as healthy_sink, Sink(default=HANG) as dead_sink:
        healthy = webhook(source.workspace, healthy_sink.url, name="Healthy")
        dead = webhook(source.workspace, dead_sink.url, name="Never answers", timeout_seconds=1.0)
        # No breaker and quick retries: the dead destination keeps a worker thread busy timing out.
        celery_worker(
            beat=True,
            env=child_env(CDP_SWEEP_SECONDS="1", CDP_RETRY_BASE_SECONDS="0.2", CDP_BREAKER_THRESHOLD="100000"),
        )
        warm_up = track()
        assert post_batch(cdp_server.url, source.write_key, [warm_up]) == 200
        healthy_sink.wait_for(lambda received: len(received) >= 1, timeout=60)  # the worker is up
        dead_sink.wait_for_requests(1, timeout=20)  # and the dead one is being attempted

        accepted: dict[str, float] = {}
        stream_started = time.time()
        for _ in range(60):  # 240 events over about 6 s
            messages = [track() for _ in range(4)]
            assert post_batch(cdp_server.url, source.write_key, messages) == 200
            acked_at = time.time()
            accepted.update((m["messageId"], acked_at) for m in messages)
            time.sleep(0.1)
        stream_ended = time.time()

        healthy_sink.wait_for(lambda _: set(accepted) <= set(first_arrivals(healthy_sink)), timeout=30)
        arrivals = first_arrivals(healthy_sink)
        dead_attempts = [r.at for r in dead_sink.requests if stream_started <= r.at <= stream_ended]

    latencies = [arrivals[message_id] - acked_at for message_id, acked_at in accepted.items()]
    assert percentile(latencies, 0.95) < 2.0, f"p95 {percentile(latencies, 0.95):.2f}s, max {max(latencies):.2f}s"
    assert len(dead_attempts) >= 4, "the dead destination was being attempted (and timing out) meanwhile"
    # An answer is recorded just after the sink saw its request.
    wait_for(lambda: Delivery.objects.filter(destination=healthy, status="delivered").count() == len(accepted) + 1)
    timeouts = DeliveryAttempt.objects.filter(delivery__destination=dead, error_class="timeout")
    assert timeouts.exists()
    assert not Delivery.objects.filter(destination=dead, status="delivered").exists()


def test_delivery_breaker_stops_attempts_until_cooldown(cdp_server, celery_worker, source):
    threshold, cooldown = 3, 6.0
    with Sink(default=HANG) as dead_sink:
        dead = webhook(source.workspace, dead_sink.url, name="Never answers", timeout_seconds=0.3, max_in_flight=1)
        celery_worker(
            beat=True,
            env=child_env(
                CDP_SWEEP_SECONDS="1", CDP_RETRY_BASE_SECONDS="0.05", CDP_BREAKER_THRESHOLD=str(threshold),
                CDP_BREAKER_COOLDOWN_SECONDS=str(cooldown),
            ),
        )  # fmt: skip
        assert post_batch(cdp_server.url, source.write_key, [track() for _ in range(20)]) == 200
        dead_sink.wait_for_requests(1, timeout=60)
        # Without a breaker the retries (due 25..75 ms after each failure) would follow one another.
        wait_for(lambda: time.time() - dead_sink.requests[0].at > 2 * cooldown + 4, timeout=60, interval=0.2)
        attempts = [r.at - dead_sink.requests[0].at for r in dead_sink.requests]

    bursts: list[list[float]] = [[attempts[0]]]
    for earlier, later in zip(attempts, attempts[1:], strict=False):
        if later - earlier > cooldown - 1:
            bursts.append([])
        bursts[-1].append(later)
    assert len(bursts) >= 2, f"the attempts never paused for the cooldown: {attempts}"
    assert len(bursts[0]) == threshold, f"the breaker opened after {len(bursts[0])} failures: {attempts}"
    assert all(len(burst) == 1 for burst in bursts[1:]), f"after a cooldown one probe decides: {attempts}"
    pauses = [later[0] - earlier[-1] for earlier, later in zip(bursts, bursts[1:], strict=False)]
    assert all(pause < cooldown + 3 for pause in pauses), f"a probe goes out after the cooldown: {attempts}"
    assert set(Delivery.objects.filter(destination=dead).values_list("status", flat=True)) == {"pending", "retrying"}
