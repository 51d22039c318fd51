"""S3 archive delivery: each batch becomes gzipped NDJSON objects, one per source and received day.

Keys: `<prefix>/<source id>/<YYYY-MM-DD>/<YYYYMMDDTHHMMSSffffffZ>-<first delivery id>-<digest>.ndjson.gz`,
where the time is the earliest `receivedAt` in the object (UTC) and the digest is taken over the
object's delivery ids. Names sort by time, never collide between different sets of deliveries, and
a retry of the same batch rewrites the same object instead of adding a duplicate."""

from __future__ import annotations

import gzip
import hashlib
import time
from collections import defaultdict
from datetime import UTC, date
from typing import Any

import orjson

from cdp.core.models import Destination
from cdp.delivery.models import ErrorClass
from cdp.delivery.senders import Item, Result
from cdp.delivery.transport import Transport
from cdp.destinations.types.s3_archive.client import Failure, classify_error, client_for

DEFAULT_PREFIX = "cdp"
CONTENT_TYPE = "application/x-ndjson"
CONTENT_ENCODING = "gzip"
_EXCERPT = 2000


def received_day(item: Item) -> date:
    return item.received_at.astimezone(UTC).date()


def group_items(items: list[Item]) -> dict[tuple[int, date], list[Item]]:
    """The items of each object: by source and received day (UTC), oldest first."""
    groups: dict[tuple[int, date], list[Item]] = defaultdict(list)
    for item in sorted(items, key=lambda i: (i.received_at, i.delivery_id)):
        groups[(item.source_id, received_day(item))].append(item)
    return dict(groups)


def object_key(prefix: str, source_id: int, day: date, group: list[Item]) -> str:
    ids = sorted(item.delivery_id for item in group)
    digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:10]
    earliest = min(item.received_at for item in group).astimezone(UTC)
    name = f"{earliest:%Y%m%dT%H%M%S%fZ}-{ids[0]:012d}-{digest}.ndjson.gz"
    folder = f"{source_id}/{day.isoformat()}/{name}"
    prefix = prefix.strip("/")
    return f"{prefix}/{folder}" if prefix else folder


def ndjson_lines(group: list[Item]) -> list[bytes]:
    return [orjson.dumps(item.fields.get("event")) for item in group]


class S3ArchiveSender:
    def takes_batches(self, destination: Destination) -> bool:
        return True

    def send(self, destination: Destination, items: list[Item], transport: Transport) -> list[Result]:
        bucket = str(destination.settings.get("bucket", ""))
        try:
            client = client_for(destination)
        except Exception as exc:  # e.g. a region botocore refuses: the settings must change
            failure = Failure(ErrorClass.CONFIGURATION, f"cannot use these S3 settings: {exc}", retryable=False)
            return [_failed(item, failure, {}, 0.0) for item in items]
        prefix = str(destination.settings.get("prefix") or DEFAULT_PREFIX)
        results: list[Result] = []
        for (source_id, day), group in group_items(items).items():
            key = object_key(prefix, source_id, day, group)
            results += self._put(destination, client, bucket, key, group)
        return results

    def _put(self, destination: Destination, client: Any, bucket: str, key: str, group: list[Item]) -> list[Result]:
        lines = ndjson_lines(group)
        body = gzip.compress(b"\n".join(lines) + b"\n", compresslevel=6)
        requests = [_request_summary(destination, bucket, key, line, len(body), len(group)) for line in lines]
        started = time.perf_counter()
        try:
            answer = client.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType=CONTENT_TYPE, ContentEncoding=CONTENT_ENCODING
            )
        except Exception as exc:  # botocore raises for every failure; each is classified for a retry
            failure = classify_error(exc, bucket)
            duration = _ms(started)
            return [_failed(item, failure, request, duration) for item, request in zip(group, requests, strict=True)]
        duration = _ms(started)
        status = answer.get("ResponseMetadata", {}).get("HTTPStatusCode", 200)
        etag = str(answer.get("ETag", "")).strip('"')
        return [
            Result(item.delivery_id, ok=True, duration_ms=duration, request=request, response_status=status,
                   response_body=f"stored s3://{bucket}/{key} (ETag {etag})")
            for item, request in zip(group, requests, strict=True)
        ]  # fmt: skip


def _request_summary(
    destination: Destination, bucket: str, key: str, line: bytes, object_bytes: int, events: int
) -> dict[str, Any]:
    """Evidence for one delivery: the object it went into and its own line (no credentials)."""
    return {
        "method": "PUT",
        "url": f"s3://{bucket}/{key}",
        "endpoint": destination.settings.get("endpoint_url") or "Amazon S3",
        "headers": {"Content-Type": CONTENT_TYPE, "Content-Encoding": CONTENT_ENCODING},
        "body": line[:_EXCERPT].decode(errors="replace"),
        "body_bytes": object_bytes,
        "events": events,
    }


def _failed(item: Item, failure: Failure, request: dict[str, Any], duration_ms: float) -> Result:
    return Result(
        item.delivery_id, ok=False, duration_ms=duration_ms, request=request, response_status=failure.status,
        response_body=failure.body, error_class=failure.error_class, error=failure.error,
        retryable=failure.retryable, retry_after=failure.retry_after,
    )  # fmt: skip


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
