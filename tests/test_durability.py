"""The "acked means safe" guarantee: a 200 from the Tracking API survives kill -9 of any process and a
Redis flush.

Real processes throughout: uvicorn serving the product's ASGI app and Celery workers, on the test
database and the test Redis database.
"""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis
import requests
from django.conf import settings
from django.db import connection

from cdp.core.models import Source
from cdp.processing.models import Event, RejectedMessage
from cdp.processing.tasks import process_intake
from cdp.tracking.models import IntakeRequest
from tests.conftest import wait_for
from tests.support.processes import child_env

pytestmark = pytest.mark.slow

BACKLOG_REQUESTS = 200
MESSAGES_PER_REQUEST = 50


@pytest.fixture
def source(make_workspace) -> Source:
    return Source.objects.create(workspace=make_workspace("acme"), name="Website", kind="website")


def _message(message_id: str) -> dict[str, Any]:
    return {
        "type": "track", "event": "Item Purchased", "userId": f"user-{message_id}", "messageId": message_id,
        "properties": {"sku": "SKU-1", "price": 9.99}, "timestamp": datetime.now(UTC).isoformat(),
    }  # fmt: skip


def _send_batch(url: str, write_key: str, message_ids: list[str]) -> None:
    body = {"batch": [_message(m) for m in message_ids], "sentAt": datetime.now(UTC).isoformat()}
    response = requests.post(f"{url}/v1/batch", auth=(write_key, ""), json=body, timeout=30)
    assert response.status_code == 200, response.text


def _pending() -> int:
    return IntakeRequest.objects.filter(processed_at__isnull=True).count()


def _processed_and_stored() -> tuple[int, int]:
    """Processed requests and stored events, read in one statement so that both see the same commits."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT COUNT(*) FROM cdp_intake WHERE processed_at IS NOT NULL), (SELECT COUNT(*) FROM cdp_event)"
        )
        processed, stored = cursor.fetchone()
    return processed, stored


def _stored_message_ids(source: Source) -> list[str]:
    return sorted(Event.objects.filter(source=source).values_list("message_id", flat=True))


def test_processor_sigkill_and_redis_flush_lose_no_acked_message(cdp_server, celery_worker, source):
    # 1. Build a backlog while no worker runs: every request is acked, none is processed.
    batches = [[f"r{r:03d}-m{m:02d}" for m in range(MESSAGES_PER_REQUEST)] for r in range(BACKLOG_REQUESTS)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda ids: _send_batch(cdp_server.url, source.write_key, ids), batches))
    acked = sorted(m for ids in batches for m in ids)
    assert _pending() == BACKLOG_REQUESTS
    assert not Event.objects.exists()

    # 2. A worker that takes one request per transaction works through the backlog; kill -9 it
    # as soon as it has made progress, so the kill lands in the middle of the backlog.
    doomed = celery_worker(env=child_env(CDP_PROCESS_BATCH_ROWS="1"))
    process_intake.apply_async()  # the server's own wake-ups are queued too; this one is certain
    wait_for(lambda: _pending() < BACKLOG_REQUESTS, timeout=30, interval=0.005)
    doomed.kill()
    processed, stored = _processed_and_stored()
    assert 0 < processed < BACKLOG_REQUESTS, "the kill should land while the backlog is being worked"
    assert stored == processed * MESSAGES_PER_REQUEST  # a request and its events commit together

    # 3. Redis forgets everything: queued wake-ups and the killed worker's unacknowledged task.
    redis.Redis.from_url(settings.REDIS_URL).flushdb()

    # 4. A fresh worker with beat: only the sweeper can find the remaining requests.
    celery_worker(beat=True, env=child_env(CDP_SWEEP_SECONDS="1"))
    wait_for(lambda: _pending() == 0, timeout=40, interval=0.2)

    assert _stored_message_ids(source) == acked  # every acked message, each exactly once
    assert not RejectedMessage.objects.exists()
    assert set(IntakeRequest.objects.values_list("attempts", flat=True)) == {0}


def test_tracking_api_sigkill_after_200_loses_no_acked_request(cdp_server, source):
    acked: list[str] = []
    refused: list[int] = []
    lock = threading.Lock()
    killed = threading.Event()

    def client(number: int) -> None:
        session = requests.Session()
        for sequence in range(10_000):
            message_ids = [f"c{number}-{sequence}-{m}" for m in range(10)]
            body = {"batch": [_message(m) for m in message_ids], "sentAt": datetime.now(UTC).isoformat()}
            try:
                response = session.post(
                    f"{cdp_server.url}/v1/batch", auth=(source.write_key, ""), json=body, timeout=10
                )
            except requests.RequestException:
                return  # the server is gone; this request was never acked
            if response.status_code != 200:
                refused.append(response.status_code)
                return
            with lock:
                acked.extend(message_ids)
                if len(acked) >= 3000 and not killed.is_set():
                    # kill -9 the moment this 200 arrives, while the other clients' requests are in flight
                    os.killpg(cdp_server.popen.pid, signal.SIGKILL)
                    killed.set()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(16)]
    for thread in threads:
        thread.start()
    assert killed.wait(timeout=40), f"the server should ack 300 requests within 40 s (refused: {refused})"
    for thread in threads:
        thread.join(timeout=15)
    assert not any(thread.is_alive() for thread in threads)
    assert refused == []
    cdp_server.kill()  # reaps it
    assert cdp_server.popen.returncode == -signal.SIGKILL

    logged = set()
    for body in IntakeRequest.objects.values_list("body", flat=True):
        logged.update(message["messageId"] for message in orjson.loads(bytes(body))["batch"])
    assert set(acked) <= logged, f"{len(set(acked) - logged)} acked message(s) missing from the intake log"

    while process_intake():
        pass
    stored = set(Event.objects.filter(source=source).values_list("message_id", flat=True))
    assert set(acked) <= stored
    assert stored == logged  # whatever reached the log is stored, acked or not
