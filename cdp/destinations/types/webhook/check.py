"""Webhook connection test: one test event POSTed exactly as a delivery would be (headers, signature,
batch envelope), its answer judged by the delivery transport's rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from cdp.core.models import Destination
from cdp.delivery.models import ErrorClass
from cdp.delivery.senders import Item
from cdp.delivery.transport import shared_transport
from cdp.destinations.framework import ConnectionCheck
from cdp.destinations.samples import sample_event
from cdp.destinations.types.webhook.sender import WebhookSender

TEST_EVENT_NAME = "CDP Connection Test"
_EXCERPT = 200


def connection_test_event() -> dict:
    """A track call receivers can recognise and drop: its name and `properties.cdp_connection_test`."""
    message_id = f"connection-test-{uuid.uuid4()}"
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    event = sample_event("track")
    event.update(
        event=TEST_EVENT_NAME, messageId=message_id, properties={"cdp_connection_test": True},
        timestamp=now, receivedAt=now, sentAt=now, originalTimestamp=now,
    )  # fmt: skip
    return event


def check(destination: Destination) -> ConnectionCheck:
    url = destination.settings.get("url")
    if not url:
        return ConnectionCheck(False, "set the URL first")
    event = connection_test_event()
    item = Item(0, "send", {"payload": event}, 0, 0, event["messageId"], datetime.now(UTC))
    [result] = WebhookSender().send(destination, [item], shared_transport())
    duration = round(result.duration_ms, 1)
    if result.ok:
        return ConnectionCheck(True, f"{url} answered HTTP {result.response_status}.", duration)
    return ConnectionCheck(False, _failure(result.error_class, result.error, result.response_body), duration)


def _failure(error_class: str, error: str, body: str) -> str:
    reason = ErrorClass(error_class).label if error_class in ErrorClass.values else "Failed"
    excerpt = " ".join(body.split())[:_EXCERPT]
    said = f" — it said: {excerpt}" if excerpt else ""
    if error_class in (ErrorClass.NETWORK, ErrorClass.TIMEOUT):
        return f"{reason}: {error}. Check the URL and that the endpoint is reachable from the CDP's workers."
    if error_class == ErrorClass.CLIENT:
        return f"{reason}: {error}{said}. Deliveries would fail without retries: check the URL and headers."
    return f"{reason}: {error}{said}. Deliveries would be retried until it recovers."
