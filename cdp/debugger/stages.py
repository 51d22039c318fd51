"""The taps of each stage: one call from the Tracking API, the processor and the delivery engine.

Each call returns at once when nobody watches the group (a set lookup). Otherwise it queues a
builder that holds references to what the stage already has in memory; parsing and shaping happen
on the taps' background thread (see taps.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson
from django.db import close_old_connections, connection

from cdp.core.models import Source
from cdp.debugger.items import Item, delivery_item, message_item
from cdp.debugger.taps import SOURCE_PREFIX, destination_group, source_group, taps
from cdp.tracking.http import HttpError, Scope, basic_auth_user, header
from cdp.tracking.validation import SINGLE_ENDPOINTS

if TYPE_CHECKING:
    from cdp.delivery.models import Delivery, DeliveryAttempt
    from cdp.processing.processor import _Pending

_KEY_CACHE_SECONDS = 5.0
_key_cache: dict[str, tuple[float, int | None]] = {}


# --- Tracking API ---------------------------------------------------------------------------------
def accepted(
    source_id: int, endpoint: str, body: bytes, received_at: datetime, count: int, rejected: list[dict[str, Any]]
) -> None:
    """A request was committed to the intake log: its messages, and the ones refused in it."""
    group = source_group(source_id)
    if taps.watching(group):
        taps.publish(group, partial(_accepted_items, endpoint, body, received_at, rejected), count + len(rejected))


def _accepted_items(
    endpoint: str, body: bytes, received_at: datetime, rejected: list[dict[str, Any]], limit: int
) -> list[Item]:
    """The newest `limit` messages of the request (a batch may hold thousands: only those are shaped)."""
    payload = orjson.loads(body)
    at = received_at.isoformat()
    single_type = SINGLE_ENDPOINTS.get(endpoint)
    if single_type is not None:
        return [message_item("accepted", {**payload, "type": single_type}, at, endpoint=endpoint)]
    refused = {entry["index"]: entry for entry in rejected}
    messages = payload.get("batch") or []
    first = max(0, len(messages) - limit)
    items = []
    for index, message in enumerate(messages[first:], start=first):
        problem = refused.get(index)
        if problem is None:
            items.append(message_item("accepted", message, at, endpoint=endpoint))
        else:
            items.append(
                message_item("rejected", message, at, endpoint=endpoint, index=index, code=problem["code"],
                             reason=problem["message"])
            )  # fmt: skip
    return items


def refused(scope: Scope, exc: HttpError) -> None:
    """A whole request was refused. Only requests whose write key is in a header or the query string
    are attributed to a source: the body may not even be JSON."""
    if scope.get("method") != "POST" or not taps.watching_any(SOURCE_PREFIX):
        return
    key = basic_auth_user(scope) or _query_write_key(scope)
    if not key:
        return
    client = scope.get("client")
    forwarded = header(scope, b"x-forwarded-for")
    item = {
        "kind": "refused", "at": datetime.now(UTC).isoformat(), "type": "", "event": "", "messageId": "",
        "userId": "", "anonymousId": "", "endpoint": scope.get("path", ""), "status": exc.status, "code": exc.code,
        "reason": exc.message, "ip": forwarded.decode(errors="replace") if forwarded else (client[0] if client else ""),
    }  # fmt: skip
    taps.publish_resolved(partial(_watched_group_of_key, key), item)


def _query_write_key(scope: Scope) -> str | None:
    query = scope.get("query_string", b"")
    if b"writeKey=" not in query:
        return None
    values = parse_qs(query.decode(errors="replace")).get("writeKey")
    return values[0] if values else None


def _watched_group_of_key(write_key: str) -> str | None:
    """Runs on the taps' thread: the write key's source (cached a few seconds), if it is watched."""
    now = time.monotonic()
    hit = _key_cache.get(write_key)
    if hit is None or hit[0] < now:
        if len(write_key) > 64 or "\x00" in write_key:
            return None
        if not connection.in_atomic_block:  # the taps' thread keeps one connection; renew it when stale
            close_old_connections()
        source_id = Source.objects.filter(write_key=write_key).values_list("pk", flat=True).first()
        if len(_key_cache) > 10_000:
            _key_cache.clear()
        hit = _key_cache[write_key] = (now + _KEY_CACHE_SECONDS, source_id)
    if hit[1] is None:
        return None
    group = source_group(hit[1])
    return group if taps.watching(group) else None


# --- Processor ------------------------------------------------------------------------------------
def processed(collected: dict[int, _Pending], inserted: Iterable[tuple[int, int, str]]) -> None:
    """Requests were processed: each message was stored, or dropped as a duplicate."""
    if not taps.watching_any(SOURCE_PREFIX):
        return
    by_group: dict[str, list[_Pending]] = {}
    for pending in collected.values():
        if pending.events:
            group = source_group(pending.events[0][0])
            if taps.watching(group):
                by_group.setdefault(group, []).append(pending)
    if not by_group:
        return
    stored = {(source_id, message_id): event_id for event_id, source_id, message_id in inserted}
    for group, pendings in by_group.items():
        count = sum(len(pending.events) for pending in pendings)
        taps.publish(group, partial(_processed_items, pendings, stored, datetime.now(UTC)), count)


def _processed_items(
    pendings: list[_Pending], stored: dict[tuple[int, str], int], at: datetime, limit: int
) -> list[Item]:
    """Stored or duplicate for every message (the first occurrence of a stored key is the one stored);
    items for the newest `limit` only."""
    outcomes = []
    for pending in pendings:
        for row, event in zip(pending.events, pending.normalised, strict=True):
            outcomes.append((event, stored.pop((row[0], event["messageId"]), None), pending.received_at))
    processed_at = at.isoformat()
    return [
        message_item("stored" if event_id else "duplicate", event, received_at, eventId=event_id,
                     processedAt=processed_at)
        for event, event_id, received_at in outcomes[-limit:]
    ]  # fmt: skip


# --- Delivery -------------------------------------------------------------------------------------
def attempts_recorded(rows: list[Delivery], attempts: Callable[[], list[DeliveryAttempt]]) -> None:
    """One attempt per delivery was made and recorded (rows all belong to one destination); `attempts`
    makes their records, called only when somebody watches."""
    if rows:
        group = destination_group(rows[0].destination_id)
        if taps.watching(group):
            taps.publish(group, partial(_attempt_items, rows, attempts), len(rows))


def _attempt_items(rows: list[Delivery], attempts: Callable[[], list[DeliveryAttempt]], limit: int) -> list[Item]:
    pairs = list(zip(rows, attempts(), strict=True))[-limit:]
    return [delivery_item(row, attempt, kind="attempt") for row, attempt in pairs]
