"""S3 archive connection test: write one small object under the prefix, with the same client and error
meanings as deliveries. Only a write is tried: an archive's credentials often may not list or read."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from cdp.core.models import Destination
from cdp.destinations.framework import ConnectionCheck
from cdp.destinations.types.s3_archive.client import classify_error, client_for
from cdp.destinations.types.s3_archive.sender import DEFAULT_PREFIX

TEST_OBJECT = "_cdp-connection-test.txt"


def test_object_key(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{TEST_OBJECT}" if prefix else TEST_OBJECT


def check(destination: Destination) -> ConnectionCheck:
    started = time.perf_counter()
    bucket = str(destination.settings.get("bucket") or "")
    if not bucket:
        return ConnectionCheck(False, "set the bucket first")
    key = test_object_key(str(destination.settings.get("prefix") or DEFAULT_PREFIX))
    body = f"Written by the CDP's connection test at {datetime.now(UTC).isoformat()}; safe to delete.\n"
    try:
        client = client_for(destination)
        client.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="text/plain")
    except Exception as exc:  # botocore raises for every failure; each is classified as for deliveries
        return ConnectionCheck(False, classify_error(exc, bucket).error, _ms(started))
    return ConnectionCheck(True, f"Wrote s3://{bucket}/{key}.", _ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
