"""boto3 clients for S3 archive destinations, and what each S3 error means for a retry.

One client per distinct connection settings, created once and shared by the delivery threads
(boto3 clients are thread-safe; creating one costs tens of milliseconds). The engine retries with
backoff and records every attempt, so boto3 itself tries at most twice: the second try only
absorbs a keep-alive connection the store closed while a batch was filling up."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from cdp.core.models import Destination
from cdp.delivery.models import ErrorClass
from cdp.delivery.transport import classify, parse_retry_after

DEFAULT_REGION = "us-east-1"
_BOTO_ATTEMPTS = 2
_clients: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()


def client_for(destination: Destination) -> Any:
    """The cached S3 client for the destination's current settings and timeout."""
    settings = destination.settings
    key = (
        settings.get("endpoint_url") or None,
        settings.get("region") or DEFAULT_REGION,
        settings.get("access_key_id") or None,
        settings.get("secret_access_key") or None,
        float(destination.timeout_seconds),
        max(10, destination.max_in_flight),
    )
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _make_client(*key)
        return client


def _make_client(
    endpoint_url: str | None, region: str, key_id: str | None, secret: str | None, timeout: float, pool: int
) -> Any:
    options: dict[str, Any] = {
        "region_name": region,
        "connect_timeout": timeout,
        "read_timeout": timeout,
        "retries": {"mode": "standard", "total_max_attempts": _BOTO_ATTEMPTS},
        "max_pool_connections": pool,
    }
    if endpoint_url:
        # S3-compatible stores serve buckets by path, and many reject the newer default checksums.
        options.update(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
    session = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=region)
    return session.client("s3", endpoint_url=endpoint_url, config=Config(**options))


def forget_clients() -> None:
    """Drop every cached client (tests; a process that rotates credentials gets new ones anyway)."""
    with _lock:
        _clients.clear()


@dataclass(frozen=True)
class Failure:
    error_class: str
    error: str
    retryable: bool
    status: int | None = None
    body: str = ""
    retry_after: float | None = None


# S3 error codes that no retry can fix: the destination's settings must change.
_CONFIGURATION = {
    "NoSuchBucket": "bucket {bucket!r} does not exist: create it or correct the bucket setting",
    "AccessDenied": "access denied: the credentials need s3:PutObject on {bucket!r} under the prefix",
    "AllAccessDisabled": "all access to bucket {bucket!r} is disabled",
    "InvalidAccessKeyId": "the access key ID is not known to the store: correct the access key ID",
    "SignatureDoesNotMatch": "the secret access key does not match the access key ID",
    "InvalidBucketName": "{bucket!r} is not a valid bucket name",
    "PermanentRedirect": "bucket {bucket!r} is in another region: correct the region setting",
    "AuthorizationHeaderMalformed": "the region setting does not match the bucket's region",
    "InvalidToken": "the credentials are not valid",
    "ExpiredToken": "the credentials have expired",
}
_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}
_RETRYABLE_CODES = {"RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable"}


def classify_error(exc: Exception, bucket: str) -> Failure:
    """Retry meaning of an exception from put_object; other errors (connection refused or reset,
    bugs) count as retryable network errors."""
    if isinstance(exc, ClientError):
        return _client_failure(exc, bucket)
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return Failure(ErrorClass.TIMEOUT, f"{type(exc).__name__}: {exc}", retryable=True)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return Failure(ErrorClass.CONFIGURATION, f"no usable credentials: {exc}", retryable=False)
    if isinstance(exc, ParamValidationError):
        return Failure(ErrorClass.CONFIGURATION, f"invalid request: {exc}", retryable=False)
    return Failure(ErrorClass.NETWORK, f"{type(exc).__name__}: {exc}", retryable=True)


def _client_failure(exc: ClientError, bucket: str) -> Failure:
    error = exc.response.get("Error", {})
    meta = exc.response.get("ResponseMetadata", {})
    code = str(error.get("Code", ""))
    status = meta.get("HTTPStatusCode")
    detail = f"{code or 'HTTP ' + str(status)}: {error.get('Message', '')}".rstrip(": ")
    body = f"{code}: {error.get('Message', '')}"
    retry_after = parse_retry_after((meta.get("HTTPHeaders") or {}).get("retry-after"))
    if code in _CONFIGURATION:
        message = _CONFIGURATION[code].format(bucket=bucket)
        return Failure(ErrorClass.CONFIGURATION, f"{message} ({detail})", False, status, body)
    if code in _THROTTLED:
        return Failure(ErrorClass.RATE_LIMITED, detail, True, status, body, retry_after)
    if code in _RETRYABLE_CODES:
        error_class = ErrorClass.TIMEOUT if code == "RequestTimeout" else ErrorClass.SERVER
        return Failure(error_class, detail, True, status, body, retry_after)
    error_class = (classify(status) if isinstance(status, int) else "") or ErrorClass.SERVER
    return Failure(error_class, detail, error_class != ErrorClass.CLIENT, status, body, retry_after)
