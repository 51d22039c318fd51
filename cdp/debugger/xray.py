"""Event X-ray: the whole path of one stored event, from the request that brought it to every
attempt to deliver it, for the API (`/api/v1/events/<id>/xray/`) and the dashboard page.

Duplicate status: duplicates are dropped without a trace, so they are found again in the intake log,
which keeps each request's body (for CDP_INTAKE_RETENTION_DAYS after processing). The search is
bounded to stay cheap: requests of the same source within the dedupe window (24 h either side), the
SCAN_AFTER nearest after the original and SCAN_BEFORE before it, whose body holds the messageId as
a JSON string. `complete` says whether that covered the whole window.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connection
from django.db.models import Prefetch

from cdp.core.models import Destination
from cdp.delivery.models import Delivery, DeliveryAttempt
from cdp.delivery.routing import integrations_allow
from cdp.destinations.preview import preview
from cdp.processing.models import Event
from cdp.tracking.models import IntakeRequest
from cdp.tracking.validation import SINGLE_ENDPOINTS

DEDUPE_WINDOW = timedelta(hours=24)
SCAN_AFTER = 2000
SCAN_BEFORE = 200
MAX_BODY_CHARS = 256 * 1024
OPEN = ("pending", "retrying")


def xray(event: Event) -> dict[str, Any]:
    source = event.source
    return {
        "event": {
            "id": event.pk, "source": {"id": source.pk, "name": source.name}, "messageId": event.message_id,
            "type": event.type, "event": event.event, "userId": event.user_id, "anonymousId": event.anonymous_id,
            "timestamp": event.timestamp, "receivedAt": event.received_at, "intakeId": event.intake_id,
        },
        "request": raw_request(event),
        "normalised": event.payload,
        "duplicates": duplicates(event),
        "destinations": [destination_path(d, event) for d in _destinations(source.workspace_id)],
    }  # fmt: skip


def raw_request(event: Event) -> dict[str, Any] | None:
    """The intake row the event came in, if still retained: endpoint, time, ip, body, and the message."""
    row = (
        IntakeRequest.objects.filter(pk=event.intake_id, source_id=event.source_id)
        .values("id", "endpoint", "received_at", "ip", "body", "processed_at", "attempts", "error")
        .first()
    )
    if row is None:
        return None
    body = bytes(row.pop("body"))
    text = body.decode(errors="replace")
    message, index = _message_in(body, row["endpoint"], event)
    return {
        **row, "bodyBytes": len(body), "body": text[:MAX_BODY_CHARS], "truncated": len(text) > MAX_BODY_CHARS,
        "message": message, "index": index,
    }  # fmt: skip


def _message_in(body: bytes, endpoint: str, event: Event) -> tuple[Any, int | None]:
    """The message as sent, and its position in the request."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if endpoint in SINGLE_ENDPOINTS:
        return payload, 0
    messages = payload.get("batch") if isinstance(payload, dict) else None
    for index, message in enumerate(messages or []):
        if isinstance(message, dict) and (
            message.get("messageId") == event.message_id or event.message_id == f"cdp-{event.intake_id}-{index}"
        ):
            return message, index
    return None, None


def duplicates(event: Event) -> dict[str, Any]:
    window = IntakeRequest.objects.filter(
        source_id=event.source_id,
        received_at__gte=event.received_at - DEDUPE_WINDOW,
        received_at__lte=event.received_at + DEDUPE_WINDOW,
    )
    after = list(window.filter(pk__gt=event.intake_id).order_by("pk").values_list("pk", flat=True)[:SCAN_AFTER])
    before = list(window.filter(pk__lt=event.intake_id).order_by("-pk").values_list("pk", flat=True)[:SCAN_BEFORE])
    found = _holding(before + after, orjson.dumps(event.message_id))
    return {
        "count": len(found),
        "requests": found,
        "searched": len(before) + len(after),
        "complete": len(after) < SCAN_AFTER and len(before) < SCAN_BEFORE,
        "note": (
            "Other requests of this source, within 24 hours of this one and still in the intake log "
            f"(kept {settings.CDP_INTAKE_RETENTION_DAYS} days), that carried this messageId; they were not stored."
        ),
    }


def _holding(intake_ids: list[int], needle: bytes) -> list[dict[str, Any]]:
    """The intake rows among `intake_ids` whose body holds `needle`, searched by the database."""
    contains = "position(%s::bytea in body) > 0" if connection.vendor == "postgresql" else "instr(body, %s) > 0"
    matched: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(intake_ids), 500):
            chunk = intake_ids[start : start + 500]
            placeholders = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"SELECT id FROM cdp_intake WHERE id IN ({placeholders}) AND {contains}", [*chunk, needle])
            matched.extend(pk for (pk,) in cursor.fetchall())
    rows = IntakeRequest.objects.filter(pk__in=matched).order_by("pk")
    return [
        {"id": pk, "received_at": received_at, "endpoint": endpoint, "ip": ip, "processed": processed_at is not None}
        for pk, received_at, endpoint, ip, processed_at in rows.values_list(
            "pk", "received_at", "endpoint", "ip", "processed_at"
        )
    ]


def _destinations(workspace_id: int) -> list[Destination]:
    return list(
        Destination.objects.filter(workspace_id=workspace_id)
        .prefetch_related("sources", "subscriptions")
        .order_by("name", "id")
    )


def destination_path(destination: Destination, event: Event) -> dict[str, Any]:
    """Whether the event reaches this destination, through which subscriptions, and what came of it."""
    source_ids = {source.pk for source in destination.sources.all()}
    connected = not source_ids or event.source_id in source_ids
    allowed = integrations_allow(event.payload.get("integrations"), destination)
    deliveries = list(
        Delivery.objects.filter(destination=destination, event_id=event.pk)
        .order_by("id")
        .prefetch_related(Prefetch("attempts_made", queryset=DeliveryAttempt.objects.order_by("number")))
    )
    subscriptions = preview(destination, event.payload) if connected else []
    return {
        "id": destination.pk, "name": destination.name, "type": destination.type, "enabled": destination.enabled,
        "connected": connected, "integrationsAllow": allowed, "subscriptions": subscriptions,
        "deliveries": [_delivery(delivery) for delivery in deliveries],
        "outcome": _outcome(destination, connected, allowed, subscriptions, deliveries),
    }  # fmt: skip


def _delivery(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.pk, "subscription": delivery.subscription_id, "action": delivery.action,
        "status": delivery.status, "payload": delivery.payload, "attempts": delivery.attempts,
        "nextAttemptAt": delivery.next_attempt_at if delivery.status in OPEN else None,
        "createdAt": delivery.created_at, "finishedAt": delivery.finished_at, "errorClass": delivery.error_class,
        "lastError": delivery.last_error,
        "attemptsMade": [
            {"number": a.number, "startedAt": a.started_at, "durationMs": a.duration_ms, "request": a.request,
             "responseStatus": a.response_status, "responseBody": a.response_body, "errorClass": a.error_class,
             "error": a.error, "outcome": a.outcome}
            for a in delivery.attempts_made.all()
        ],
    }  # fmt: skip


def _outcome(
    destination: Destination, connected: bool, allowed: bool, subscriptions: list[dict], deliveries: list[Delivery]
) -> str:
    """One word for the page: delivered, retrying, pending, failed, dead, or why nothing was sent."""
    if deliveries:
        statuses = {delivery.status for delivery in deliveries}
        for status in ("retrying", "pending", "dead", "failed"):
            if status in statuses:
                return status
        return "delivered"
    if not connected:
        return "not_connected"
    if not destination.enabled:
        return "destination_disabled"
    if not allowed:
        return "integrations_off"
    if not any(s["matched"] and s["enabled"] for s in subscriptions):
        return "no_trigger_matched"
    return "not_routed"
