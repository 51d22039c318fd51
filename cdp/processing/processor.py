"""Processing of the intake log: split, validate, normalise, dedupe and store events in bulk."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from cdp.debugger import stages as debug_taps
from cdp.delivery.routing import RoutableEvent, route_events, routing_config
from cdp.insights.observe import observe
from cdp.processing.models import RejectedMessage
from cdp.processing.normalise import normalise, parse_time, without_nul
from cdp.processing.waker import waker
from cdp.tracking.models import IntakeRequest
from cdp.tracking.validation import SINGLE_ENDPOINTS, Rejection, check_message, too_large

log = logging.getLogger(__name__)
_CHUNK = 500
_COLUMNS = "source_id, type, event, user_id, anonymous_id, message_id, timestamp, received_at, intake_id, payload"


@dataclass
class ProcessResult:
    requests: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    stored_event_ids: list[int] = field(default_factory=list)


@dataclass
class _Pending:
    received_at: datetime | None = None
    events: list[tuple] = field(default_factory=list)
    normalised: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[RejectedMessage] = field(default_factory=list)


def _split(row: tuple) -> tuple[list[Any], Any, dict[str, dict]]:
    """The messages of one intake request, the envelope's sentAt, and the context and integrations
    a batch gives all its messages."""
    _id, _source, _received, endpoint, body, _ip = row
    raw = bytes(body)
    payload = orjson.loads(raw)
    if b"\\u0000" in raw:
        payload = without_nul(payload)
    single_type = SINGLE_ENDPOINTS.get(endpoint)
    if single_type is not None:
        payload["type"] = single_type
        return [payload], None, {}
    shared = {key: payload[key] for key in ("context", "integrations") if isinstance(payload.get(key), dict)}
    return payload["batch"], payload.get("sentAt"), shared


def _with_shared(message: dict[str, Any], shared: dict[str, dict]) -> dict[str, Any]:
    """The message with its batch's context and integrations added; the message's own keys win."""
    merged = dict(message)
    for key, values in shared.items():
        own = message.get(key)
        if own is None:
            merged[key] = dict(values)
        elif isinstance(own, dict):
            merged[key] = {**values, **own}
    return merged


def _collect(row: tuple) -> _Pending:
    intake_id, source_id, received_at, _endpoint, body, ip = row
    pending = _Pending(received_at=received_at)
    messages, envelope_sent_at, shared = _split(row)
    check_sizes = len(body) > settings.CDP_MAX_MESSAGE_BYTES
    adapt = connection.ops.adapt_datetimefield_value
    for index, message in enumerate(messages):
        problem: Rejection | None = check_message(message)
        raw = orjson.dumps(message) if (check_sizes or problem) else b""
        if problem is None and check_sizes and len(raw) > settings.CDP_MAX_MESSAGE_BYTES:
            problem = too_large(settings.CDP_MAX_MESSAGE_BYTES)
        if problem is not None:
            pending.rejects.append(
                RejectedMessage(
                    source_id=source_id, intake_id=intake_id, index=index, code=problem.code,
                    reason=problem.message, body=raw[:65536].decode(errors="replace"), received_at=received_at,
                )
            )  # fmt: skip
            continue
        if shared:  # after the checks, which judge each message as sent, like the Tracking API does
            message = _with_shared(message, shared)
        event = normalise(
            message, envelope_sent_at=envelope_sent_at, received_at=received_at, intake_id=intake_id, index=index, ip=ip
        )
        name = event["event"] if event["type"] == "track" else ""
        pending.events.append(
            (
                source_id, event["type"], name, event["userId"] or "", event["anonymousId"] or "",
                event["messageId"], adapt(parse_time(event["timestamp"])), adapt(received_at), intake_id,
                orjson.dumps(event).decode(),
            )
        )  # fmt: skip
        pending.normalised.append(event)
    return pending


def _insert_events(events: list[tuple]) -> list[tuple[int, int, str]]:
    """Multi-row INSERT; (source, messageId) already stored is skipped by the unique constraint.
    Returns (id, source_id, message_id) of the rows inserted."""
    payload_param = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    row_sql = f"(%s, %s, %s, %s, %s, %s, %s, %s, %s, {payload_param})"
    ids: list[tuple[int, int, str]] = []
    with connection.cursor() as cursor:
        for start in range(0, len(events), _CHUNK):
            chunk = events[start : start + _CHUNK]
            sql = (
                f"INSERT INTO cdp_event ({_COLUMNS}) VALUES {', '.join([row_sql] * len(chunk))} "
                "ON CONFLICT (source_id, message_id) DO NOTHING RETURNING id, source_id, message_id"
            )
            cursor.execute(sql, [value for row in chunk for value in row])
            ids.extend(cursor.fetchall())
    return ids


def process_pending(max_rows: int | None = None) -> ProcessResult:
    """Process up to `max_rows` pending intake requests in one transaction."""
    limit = max_rows or settings.CDP_PROCESS_BATCH_ROWS
    result = ProcessResult()
    with transaction.atomic():
        rows = list(
            _pending_requests()
            .select_for_update(skip_locked=True)
            .order_by("id")
            .values_list("id", "source_id", "received_at", "endpoint", "body", "ip")[:limit]
        )
        if not rows:
            return result
        collected: dict[int, _Pending] = {}
        for row in rows:
            try:
                collected[row[0]] = _collect(row)
            except Exception as exc:  # a bug must not lose the request: it stays pending, marked
                log.exception("intake #%s could not be processed", row[0])
                _record_failure(row[0], exc)
        inserted = _store(collected)
        result.stored_event_ids = [row[0] for row in inserted]
        # Routing happens in the same transaction as storing: an event is never stored without
        # its deliveries, whatever process dies when.
        routable = _routable(inserted, collected)
        config = routing_config({event.source_id for event in routable}) if routable else None
        # dashboard aggregates (volume, schema, MTU), committed with the events
        observe(routable, workspaces=config.workspaces if config else None)
        destinations = route_events(routable, config)
        IntakeRequest.objects.filter(id__in=list(collected)).update(processed_at=timezone.now())
        if destinations:
            transaction.on_commit(lambda: waker.wake(destinations))
    result.requests = len(collected)
    result.stored = len(result.stored_event_ids)
    result.duplicates = sum(len(p.events) for p in collected.values()) - result.stored
    result.rejected = sum(len(p.rejects) for p in collected.values())
    debug_taps.processed(collected, inserted)
    return result


def _pending_requests() -> QuerySet[IntakeRequest]:
    """Intake requests waiting to be processed: not done, attempts left, not held back for a retry."""
    return IntakeRequest.objects.filter(
        Q(retry_at__isnull=True) | Q(retry_at__lte=timezone.now()),
        processed_at__isnull=True,
        attempts__lt=settings.CDP_INTAKE_MAX_ATTEMPTS,
    )


def has_pending() -> bool:
    """Whether a request is waiting to be processed (one index lookup, no transaction)."""
    return _pending_requests().exists()


def _routable(inserted: list[tuple[int, int, str]], collected: dict[int, _Pending]) -> list[RoutableEvent]:
    """The stored events, from memory (no second read of what was just written)."""
    by_key: dict[tuple[int, str], tuple[dict[str, Any], datetime]] = {}
    for pending in collected.values():
        for row, event in zip(pending.events, pending.normalised, strict=True):
            by_key.setdefault((row[0], event["messageId"]), (event, pending.received_at))
    routable = []
    for event_id, source_id, message_id in inserted:
        event, received_at = by_key[(source_id, message_id)]
        routable.append(RoutableEvent(event_id, source_id, message_id, event, received_at))
    return routable


def _store(collected: dict[int, _Pending]) -> list[tuple[int, int, str]]:
    """Write all requests in bulk. Should the database refuse something, write request by request so
    that only the request at fault stays pending (removed from `collected`) and the others go through."""
    try:
        with transaction.atomic():
            return _write(list(collected.values()))
    except (OperationalError, InterfaceError):
        raise  # the database itself is unwell: nothing is marked, the next run retries everything
    except Exception:
        log.warning("bulk write of %d request(s) failed; writing them one by one", len(collected), exc_info=True)
    ids: list[tuple[int, int, str]] = []
    for intake_id, pending in list(collected.items()):
        try:
            with transaction.atomic():
                ids.extend(_write([pending]))
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:
            log.exception("intake #%s could not be stored", intake_id)
            _record_failure(intake_id, exc)
            del collected[intake_id]
    return ids


def _write(requests: list[_Pending]) -> list[tuple[int, int, str]]:
    events = [event for pending in requests for event in pending.events]
    ids = _insert_events(events) if events else []
    RejectedMessage.objects.bulk_create([reject for pending in requests for reject in pending.rejects])
    return ids


def _record_failure(intake_id: int, exc: Exception) -> None:
    """Count the failure and hold the request back for a while, so its retries are spread over time
    (a fix deployed in between gets its chance) instead of spent in one drain."""
    IntakeRequest.objects.filter(id=intake_id).update(
        attempts=F("attempts") + 1,
        error=f"{type(exc).__name__}: {exc}"[:2000],
        retry_at=timezone.now() + timedelta(seconds=settings.CDP_INTAKE_RETRY_SECONDS),
    )


def purge_processed(before: datetime) -> int:
    deleted, _ = IntakeRequest.objects.filter(processed_at__lt=before).delete()
    return deleted
