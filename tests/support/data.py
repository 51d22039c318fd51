"""Rows the pipeline would write (events, rejected messages), made directly for API and dashboard tests."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from cdp.core.models import Source
from cdp.processing.models import Event, RejectedMessage

_intake_ids = itertools.count(1)


def make_event(source: Source, type: str = "track", at: datetime | None = None, **fields: Any) -> Event:
    return make_events(source, 1, type=type, at=at, **fields)[0]


def make_events(
    source: Source, count: int, type: str = "track", at: datetime | None = None, **fields: Any
) -> list[Event]:
    at = at or timezone.now()
    events = []
    for n in range(count):
        message_id = fields.get("message_id") or f"msg-{uuid.uuid4()}"
        values = {
            "event": "Order Completed" if type == "track" else "",
            "user_id": "",
            "anonymous_id": f"anon-{n}",
            "timestamp": at - timedelta(seconds=n),
            "received_at": at - timedelta(seconds=n),
            **fields,
        }
        values["message_id"] = message_id
        payload = {"type": type, "messageId": message_id, "event": values["event"], "userId": values["user_id"]}
        events.append(Event(source=source, type=type, intake_id=next(_intake_ids), payload=payload, **values))
    return Event.objects.bulk_create(events)


def make_rejected(source: Source, code: str = "invalid_message", **fields: Any) -> RejectedMessage:
    values = {
        "intake_id": next(_intake_ids),
        "index": 0,
        "reason": "userId or anonymousId is required",
        "body": '{"type": "track"}',
        "received_at": timezone.now(),
        **fields,
    }
    return RejectedMessage.objects.create(source=source, code=code, **values)
