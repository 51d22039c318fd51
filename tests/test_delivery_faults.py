"""The delivery guarantee under faults: kill -9 of the worker and a Redis flush in the middle of a
stream of events lose no accepted event and duplicate (almost) none.

Real processes: the Tracking API under uvicorn, Celery workers (threads pool, queues cdp and
delivery), beat for the sweepers, and a webhook endpoint on loopback."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import redis
from django.conf import settings

from cdp.core.models import Destination, Source
from cdp.delivery.models import Delivery
from tests.conftest import wait_for
from tests.support.delivery import forget_lanes_and_breakers, post_batch, track, webhook
from tests.support.processes import child_env
from tests.support.sink import Sink, messages_in

pytestmark = pytest.mark.slow

MIN_REQUESTS = 400  # 6000 events at least
MAX_REQUESTS = 1000
PER_REQUEST = 15


@pytest.fixture(autouse=True)
def _fresh_breakers() -> None:
    forget_lanes_and_breakers()


@pytest.fixture
def source(make_workspace, transactional_db) -> Source:
    return Source.objects.create(workspace=make_workspace("acme"), name="Website", kind="website")


class Stream(threading.Thread):
    """A client sending batches through the Tracking API at a steady pace until told it has sent
    enough (and at least MIN_REQUESTS), never more than MAX_REQUESTS."""

    def __init__(self, url: str, write_key: str) -> None:
        super().__init__(daemon=True)
        self.url, self.write_key = url, write_key
        self.accepted: list[str] = []
        self.refused: Counter[int] = Counter()
        self.enough = threading.Event()

    def run(self) -> None:
        for number in range(MAX_REQUESTS):
            if number >= MIN_REQUESTS and self.enough.is_set():
                return
            messages = [track() for _ in range(PER_REQUEST)]
            status = post_batch(self.url, self.write_key, messages)
            if status == 200:
                self.accepted += [m["messageId"] for m in messages]
            else:
                self.refused[status] += 1
            time.sleep(0.02)


def delivered_ids(sink: Sink) -> Counter[str]:
    return Counter(message["messageId"] for message in messages_in(sink.requests))


def open_deliveries(destination: Destination) -> int:
    return Delivery.objects.filter(destination=destination, status__in=["pending", "retrying"]).count()


def test_delivery_survives_worker_sigkill_and_redis_flush(cdp_server, celery_worker, source):
    with Sink() as sink:
        hook = webhook(source.workspace, sink.url, timeout_seconds=1.0)
        doomed = celery_worker()
        warm_up = track()
        assert post_batch(cdp_server.url, source.write_key, [warm_up]) == 200
        sink.wait_for_requests(1, timeout=60)  # the worker is up and delivering
        stream = Stream(cdp_server.url, source.write_key)
        stream.start()

        # kill -9 while events are flowing in and out, then Redis forgets every queued task.
        sink.wait_for_requests(300, timeout=60)
        assert stream.is_alive(), "the kill lands mid-stream"
        doomed.kill()
        accepted_at_kill = len(stream.accepted)
        redis.Redis.from_url(settings.REDIS_URL).flushdb()

        # A new worker with beat: the sweepers find what the lost tasks and the dead worker left.
        celery_worker(beat=True, env=child_env(CDP_SWEEP_SECONDS="1"))
        stream.enough.set()
        stream.join(timeout=60)
        assert not stream.is_alive()
        assert stream.refused == {}
        accepted = {warm_up["messageId"], *stream.accepted}
        # Done when every accepted event arrived and no delivery is left open (a request the killed
        # worker sent but never recorded goes again once its lease runs out: a duplicate).
        wait_for(lambda: accepted <= set(delivered_ids(sink)) and not open_deliveries(hook), timeout=70, interval=0.5)
        received = delivered_ids(sink)

    assert accepted_at_kill < len(stream.accepted), "events kept coming after the kill"
    assert len(accepted) >= MIN_REQUESTS * PER_REQUEST
    assert set(received) == accepted  # every accepted event, nothing else
    duplicates = sum(received.values()) - len(received)
    assert duplicates <= len(accepted) * 0.001, f"{duplicates} duplicates of {len(accepted)} events"
    assert set(Delivery.objects.filter(destination=hook).values_list("status", flat=True)) == {"delivered"}
