"""Helpers for delivery tests: webhook destinations, events routed through the real processor,
and the clock moved by editing retry state in the database instead of sleeping."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import orjson
import redis
import requests
from django.conf import settings
from django.utils import timezone

from cdp.core.models import Destination, Source, Workspace
from cdp.delivery.models import Delivery
from cdp.destinations.services import create_destination
from cdp.processing.processor import process_pending
from cdp.tracking.models import IntakeRequest

_ids = itertools.count(1)


def forget_lanes_and_breakers() -> None:
    """Lanes and breakers live in Redis keyed by destination id; ids can repeat between tests on
    SQLite (rolled-back rows give their ids back), so no test may inherit another's breaker."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(match="cdp:*", count=500):
        client.delete(key)


def webhook(
    workspace: Workspace,
    url: str,
    *,
    name: str = "Hook",
    sources: list[Source] | None = None,
    enabled: bool = True,
    settings: dict[str, Any] | None = None,
    **options: Any,
) -> Destination:
    """A webhook destination made as the API makes it (with its preset subscription); `options` are
    delivery fields of the destination (timeout_seconds, batch_size, retry_hours, ...)."""
    destination = create_destination(
        workspace, name=name, type_key="webhook", settings={"url": url, **(settings or {})}, enabled=enabled
    )
    if options:
        Destination.objects.filter(pk=destination.pk).update(**options)
        destination.refresh_from_db()
    if sources:
        destination.sources.set(sources)
    return destination


def track(**fields: Any) -> dict[str, Any]:
    """A valid track message with a unique messageId; `fields` override or add to it."""
    number = next(_ids)
    message = {
        "type": "track", "event": "Order Completed", "userId": f"user-{number}", "messageId": f"msg-{number}",
        "properties": {"total": 42.5, "order_id": f"order-{number}"},
    }  # fmt: skip
    return {**message, **fields}


def ingest(source: Source, *messages: dict[str, Any], at: datetime | None = None) -> list[int]:
    """Accept the messages as the Tracking API would (received `at`, default now) and run the processor
    (which routes them); returns the ids of the events stored."""
    IntakeRequest.objects.create(
        source=source, received_at=at or timezone.now(), endpoint="batch", body=orjson.dumps({"batch": list(messages)})
    )
    stored: list[int] = []
    for _ in range(100):
        result = process_pending()
        stored += result.stored_event_ids
        if not result.requests:
            return stored
    raise AssertionError("the processor kept finding work")


def make_due(destination: Destination) -> int:
    """Jump to the next attempt time of every open delivery of the destination."""
    return Delivery.objects.filter(destination=destination, status__in=["pending", "retrying"]).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def age(destination: Destination, seconds: float) -> None:
    """Make the destination's deliveries older, as if created `seconds` earlier."""
    for delivery in Delivery.objects.filter(destination=destination):
        Delivery.objects.filter(pk=delivery.pk).update(created_at=delivery.created_at - timedelta(seconds=seconds))


def post_batch(base_url: str, write_key: str, messages: list[dict[str, Any]], timeout: float = 10) -> int:
    """Send messages through the Tracking API; returns the HTTP status (0: no answer)."""
    try:
        response = requests.post(
            f"{base_url}/v1/batch", auth=(write_key, ""), data=orjson.dumps({"batch": messages}),
            headers={"Content-Type": "application/json"}, timeout=timeout,
        )  # fmt: skip
    except requests.RequestException:
        return 0
    return response.status_code


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
