"""The one place outgoing HTTP happens, and what each answer means for a retry.

Network errors, timeouts, 408, 423, 429 and 5xx other than 501 are worth retrying; every other
non-2xx answer is permanent. `Retry-After` (seconds or an HTTP date) is read from any answer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationValueError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import TimeoutError as TimedOut
from urllib3.util import Timeout, parse_url

from cdp.delivery.models import ErrorClass

_EXCERPT = 2000
_SECRET_HEADERS = {"authorization", "x-api-key", "api-key", "x-cdp-signature", "proxy-authorization", "cookie"}


@dataclass
class HttpResult:
    status: int | None
    body: str
    duration_ms: float
    error_class: str = ""
    error: str = ""
    retry_after: float | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.error_class in RETRYABLE


RETRYABLE = {
    ErrorClass.NETWORK,
    ErrorClass.TIMEOUT,
    ErrorClass.RATE_LIMITED,
    ErrorClass.SERVER,
    ErrorClass.RETRYABLE_4XX,
}


def classify(status: int) -> str:
    if 200 <= status < 300:
        return ""
    if status == 429:
        return ErrorClass.RATE_LIMITED
    if status in (408, 423):
        return ErrorClass.RETRYABLE_4XX
    if status >= 500 and status != 501:
        return ErrorClass.SERVER
    return ErrorClass.CLIENT


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def mask_headers(headers: dict[str, str], secret_names: set[str] | None = None) -> dict[str, str]:
    secret = _SECRET_HEADERS | {name.lower() for name in (secret_names or set())}
    return {key: ("********" if key.lower() in secret else value) for key, value in headers.items()}


def request_summary(
    method: str, url: str, headers: dict[str, str], body: bytes, secret_names: set[str] | None = None
) -> dict[str, Any]:
    return {
        "method": method,
        "url": url,
        "headers": mask_headers(headers, secret_names),
        "body": body[:_EXCERPT].decode(errors="replace"),
        "body_bytes": len(body),
    }


class Transport:
    """A pooled HTTP client shared by the delivery threads of a worker process: urllib3's connection
    pools (thread-safe, keep-alive), one per host. Its CPU cost per request is about half of other
    Python clients', and a worker sending single events spends much of its time right here."""

    def __init__(self) -> None:
        self.pools = urllib3.PoolManager(num_pools=200, maxsize=16, block=False, retries=False)
        self._targets: dict[str, tuple[urllib3.HTTPConnectionPool, str]] = {}

    def _target(self, url: str) -> tuple[urllib3.HTTPConnectionPool, str]:
        target = self._targets.get(url)
        if target is None:
            parsed = parse_url(url)
            if parsed.scheme not in ("http", "https") or not parsed.host:
                raise LocationValueError(f"not an http(s) URL: {url!r}")
            target = (self.pools.connection_from_url(url), parsed.request_uri)
            if len(self._targets) < 10_000:
                self._targets[url] = target
        return target

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> HttpResult:
        started = time.perf_counter()
        try:
            pool, path = self._target(url)
            response = pool.urlopen(
                "POST", path, body=body, headers=headers, timeout=Timeout(connect=timeout, read=timeout),
                retries=False, redirect=False, assert_same_host=False, preload_content=True,
            )  # fmt: skip
        except (NewConnectionError, NameResolutionError) as exc:  # (urllib3 counts these as timeouts too)
            return HttpResult(None, "", _ms(started), ErrorClass.NETWORK, _reason(exc))
        except TimedOut as exc:
            error = f"timed out after {timeout:g}s ({_reason(exc)})"
            return HttpResult(None, "", _ms(started), ErrorClass.TIMEOUT, error)
        except (HTTPError, OSError) as exc:
            return HttpResult(None, "", _ms(started), ErrorClass.NETWORK, _reason(exc))
        status = response.status
        error_class = classify(status)
        return HttpResult(
            status=status,
            body=response.data[: _EXCERPT * 4].decode(errors="replace")[:_EXCERPT],
            duration_ms=_ms(started),
            error_class=error_class,
            error=f"HTTP {status}" if error_class else "",
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            headers={key.lower(): value for key, value in response.headers.items()},
        )


def _reason(exc: BaseException) -> str:
    """What went wrong, in words a user can act on: the underlying cause (refused, reset, unknown
    host ...) rather than the client library's wrapping of it."""
    if isinstance(exc, NewConnectionError | NameResolutionError):
        cause = exc.__context__ or exc.__cause__
        return f"could not connect: {cause or exc}"
    if isinstance(exc, ProtocolError) and exc.args[1:] and isinstance(exc.args[1], BaseException):
        return f"connection broken: {exc.args[1]}"
    if isinstance(exc, ReadTimeoutError):
        return "no answer"
    if isinstance(exc, ConnectTimeoutError):
        return "could not connect in time"
    return f"{type(exc).__name__}: {exc}"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


_shared: Transport | None = None


def shared_transport() -> Transport:
    global _shared
    if _shared is None:
        _shared = Transport()
    return _shared
