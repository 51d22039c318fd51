"""What a debugger shows the moment it opens: the latest stored events and rejections of a source,
the latest deliveries of a destination with their latest attempt."""

from __future__ import annotations

from django.db.models import Prefetch

from cdp.debugger.items import Item, delivery_item, message_item, parsed
from cdp.delivery.models import Delivery, DeliveryAttempt
from cdp.processing.models import Event, RejectedMessage

BACKLOG_EVENTS = 300
BACKLOG_REJECTED = 100
BACKLOG_DELIVERIES = 300


def source_backlog(source_id: int) -> list[Item]:
    events = (
        Event.objects.filter(source_id=source_id)
        .order_by("-id")
        .values_list("id", "payload", "received_at")[:BACKLOG_EVENTS]
    )
    items = [message_item("stored", payload, received_at, eventId=pk) for pk, payload, received_at in events]
    rejected = (
        RejectedMessage.objects.filter(source_id=source_id)
        .order_by("-received_at", "-id")
        .values_list("index", "code", "reason", "body", "received_at")[:BACKLOG_REJECTED]
    )
    items += [
        message_item("rejected", parsed(body), received_at, index=index, code=code, reason=reason)
        for index, code, reason, body, received_at in rejected
    ]
    items.sort(key=lambda item: item["at"] or "")
    return items


def destination_backlog(destination_id: int) -> list[Item]:
    deliveries = list(
        Delivery.objects.filter(destination_id=destination_id)
        .order_by("-id")
        .prefetch_related(Prefetch("attempts_made", queryset=DeliveryAttempt.objects.order_by("number")))[
            :BACKLOG_DELIVERIES
        ]
    )
    items = []
    for delivery in reversed(deliveries):
        attempts = list(delivery.attempts_made.all())
        items.append(delivery_item(delivery, attempts[-1] if attempts else None))
    return items
