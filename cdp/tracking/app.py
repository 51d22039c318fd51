"""The Tracking API (`/v1/...`) as a bare ASGI app in front of Django.

Django's request cycle costs about a millisecond; this path costs a fraction of that. It does only
what answering needs: authenticate, check limits, parse, validate, and wait for the intake commit.
"""

from __future__ import annotations

import gc
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from cdp.debugger import stages as debug_taps
from cdp.tracking.http import (
    HttpError,
    Receive,
    Scope,
    Send,
    basic_auth_user,
    cors_headers,
    decode_body,
    header,
    preflight_headers,
    read_body,
    respond,
    respond_json,
)
from cdp.tracking.intake import IntakeRow, IntakeWriter
from cdp.tracking.sources import RateLimiter, SourceCache, SourceInfo
from cdp.tracking.validation import BATCH_ENDPOINTS, SINGLE_ENDPOINTS, Rejection, check_message, too_large

log = logging.getLogger(__name__)

_SETTINGS_PATH = re.compile(r"^/v1/projects/([^/]+)/settings/?$")
_SNIPPET_PATH = re.compile(r"^/analytics\.js/v1/([^/]+)/analytics(?:\.min)?\.js$")
_BUNDLE_PATH = re.compile(r"^/analytics-next/bundles/([A-Za-z0-9_.\-]+\.js)$")
_OK = orjson.dumps({"success": True})
# Parsed batches are big (a 500 KB one is ~6,000 container objects), short-lived and acyclic: reference
# counting frees them. With CPython's default gen-0 threshold of 700 the cyclic collector runs several
# times while one is being parsed, promotes it, and soon traverses it again in full collections that
# also walk everything Django loaded. Measured on ~500 KB batches: ~4 ms of ~6 ms per request went to the GC.
_GC_GEN0_THRESHOLD = 50_000
_gc_tuned = False


def _tune_gc() -> None:
    """Once per process, when the app is built (after Django and the routes are loaded): keep what is
    loaded by now out of every future collection, and collect young objects less often."""
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.collect()
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    if 0 < gen0 < _GC_GEN0_THRESHOLD:
        gc.set_threshold(_GC_GEN0_THRESHOLD, gen1, gen2)


class TrackingApp:
    def __init__(self) -> None:
        self.max_request = settings.CDP_MAX_REQUEST_BYTES
        self.max_message = settings.CDP_MAX_MESSAGE_BYTES
        self.max_batch = settings.CDP_MAX_BATCH_MESSAGES
        self.cors = settings.CDP_CORS_ALLOWED_ORIGINS
        self.trust_forwarded = settings.CDP_TRUST_FORWARDED_HEADERS
        self.sources = SourceCache(settings.CDP_WRITE_KEY_CACHE_SECONDS, settings.CDP_DEFAULT_RATE_LIMIT)
        self.limiter = RateLimiter()
        self.writer = IntakeWriter()
        self._files: dict[str, bytes] = {}
        _tune_gc()

    @staticmethod
    def handles(path: str) -> bool:
        return path.startswith(("/v1/", "/analytics.js/", "/analytics-next/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cors = cors_headers(scope, self.cors)
        method = scope["method"]
        path = scope["path"]
        try:
            if method == "OPTIONS":
                await respond(send, 204, b"", cors + preflight_headers(scope), b"text/plain")
            elif method == "POST" and path.startswith("/v1/"):
                await self._ingest(scope, receive, send, path[4:].strip("/"), cors)
            elif method in ("GET", "HEAD"):
                await self._get(scope, send, path, cors)
            else:
                raise HttpError(405, "method_not_allowed", f"{method} is not allowed on {path}")
        except HttpError as exc:
            debug_taps.refused(scope, exc)
            await respond_json(send, exc.status, exc.as_dict(), cors + exc.headers)

    # --- POST /v1/<endpoint> --------------------------------------------------------------
    async def _ingest(self, scope: Scope, receive: Receive, send: Send, endpoint: str, cors: list) -> None:
        single_type = SINGLE_ENDPOINTS.get(endpoint)
        if single_type is None and endpoint not in BATCH_ENDPOINTS:
            raise HttpError(404, "not_found", f"/v1/{endpoint} is not a Tracking API endpoint")
        body = await read_body(scope, receive, self.max_request)
        body = decode_body(body, header(scope, b"content-encoding"), self.max_request)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise HttpError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise HttpError(400, "invalid_json", "the body must be a JSON object")
        source = await self._authenticate(scope, payload)

        rejected: list[dict[str, Any]] = []
        if single_type is not None:
            payload["type"] = single_type
            problem = too_large(self.max_message) if len(body) > self.max_message else check_message(payload)
            if problem is not None:
                raise HttpError(problem.status, problem.code, problem.message)
            count = 1
        else:
            messages = payload.get("batch")
            if not isinstance(messages, list) or not messages:
                raise HttpError(400, "invalid_batch", "the body needs a non-empty `batch` array of messages")
            if len(messages) > self.max_batch:
                raise HttpError(
                    413, "batch_too_large", f"a batch may hold at most {self.max_batch} messages, got {len(messages)}"
                )
            rejected = self._check_batch(messages, len(body) > self.max_message)
            count = len(messages) - len(rejected)
            if count == 0:
                raise HttpError(
                    400, "invalid_batch", "no message in the batch is valid", details={"rejected": rejected}
                )
        retry_after = self.limiter.take(source.id, source.rate_limit, count)
        if retry_after:
            raise HttpError(
                429, "rate_limited", f"this source may send {source.rate_limit} events per second",
                [(b"retry-after", str(retry_after).encode())],
            )  # fmt: skip
        row = IntakeRow(source.id, datetime.now(UTC), endpoint, body, _client_ip(scope, self.trust_forwarded))
        # The parsed batch is many times the size of its body: let it go before waiting for the commit,
        # so that concurrent large requests hold only their bodies.
        payload = messages = None
        try:
            await self.writer.write(row)
        except Exception:
            raise HttpError(
                503, "unavailable", "the request could not be stored; retry", [(b"retry-after", b"1")]
            ) from None
        debug_taps.accepted(source.id, endpoint, body, row.received_at, count, rejected)
        if rejected:
            await respond_json(send, 200, {"success": True, "accepted": count, "rejected": rejected}, cors)
        else:
            await respond(send, 200, _OK, cors)

    def _check_batch(self, messages: list[Any], check_sizes: bool) -> list[dict[str, Any]]:
        rejected = []
        dumps, limit = orjson.dumps, self.max_message
        for index, message in enumerate(messages):
            problem: Rejection | None = check_message(message)
            if problem is None and check_sizes and len(dumps(message)) > limit:
                problem = too_large(limit)
            if problem is not None:
                rejected.append({"index": index, **problem.as_dict()})
        return rejected

    async def _authenticate(self, scope: Scope, payload: dict[str, Any]) -> SourceInfo:
        key = basic_auth_user(scope) or _body_write_key(payload) or _query_write_key(scope)
        if not key:
            raise HttpError(
                401, "missing_write_key", "send the write key as Basic auth user, `writeKey` in the body, or ?writeKey="
            )
        source = await self.sources.get(key)
        if source is None:
            raise HttpError(401, "invalid_write_key", "the write key is unknown or was rotated")
        if not source.enabled:
            raise HttpError(403, "source_disabled", "this source is disabled")
        return source

    # --- GET: settings for analytics.js, the library itself ---------------------------------
    async def _get(self, scope: Scope, send: Send, path: str, cors: list) -> None:
        if match := _SETTINGS_PATH.match(path):
            source = await self.sources.get(match.group(1))
            if source is None:
                raise HttpError(404, "invalid_write_key", "the write key is unknown or was rotated")
            await respond_json(
                send, 200, _browser_settings(scope, match.group(1)), cors + [(b"cache-control", b"max-age=60")]
            )
        elif _SNIPPET_PATH.match(path):
            await self._static(send, "standalone.js", cors)
        elif match := _BUNDLE_PATH.match(path):
            await self._static(send, match.group(1), cors)
        else:
            raise HttpError(404, "not_found", f"{path} is not a Tracking API endpoint")

    async def _static(self, send: Send, name: str, cors: list) -> None:
        data = self._files.get(name)
        if data is None:
            file = Path(settings.CDP_ANALYTICS_JS_DIR) / name
            if not file.is_file():
                raise HttpError(404, "not_found", f"{name} is not installed here; run `npm ci` in the project folder")
            data = self._files[name] = file.read_bytes()
        await respond(send, 200, data, cors + [(b"cache-control", b"public, max-age=300")], b"application/javascript")


def _body_write_key(payload: dict[str, Any]) -> str | None:
    key = payload.get("writeKey")
    if isinstance(key, str) and key:
        return key
    messages = payload.get("batch")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        key = messages[0].get("writeKey")
        if isinstance(key, str) and key:
            return key
    return None


def _query_write_key(scope: Scope) -> str | None:
    query = scope.get("query_string", b"")
    if b"writeKey=" not in query:
        return None
    values = parse_qs(query.decode(errors="replace")).get("writeKey")
    return values[0] if values else None


def _client_ip(scope: Scope, trust_forwarded: bool) -> str:
    forwarded = header(scope, b"x-forwarded-for") if trust_forwarded else None
    if forwarded:
        return forwarded.split(b",")[0].strip().decode(errors="replace")[:64]
    client = scope.get("client")
    return client[0] if client else ""


def public_origin(scope: Scope) -> tuple[str, str]:
    """(protocol, host) browsers should send to: CDP_PUBLIC_URL when set; otherwise the request's
    own, with X-Forwarded-* only behind a trusted proxy. The host must be an allowed host, so a forged
    Host header cannot make a cached settings answer point browsers elsewhere."""
    if settings.CDP_PUBLIC_URL:
        parts = urlsplit(settings.CDP_PUBLIC_URL)
        return parts.scheme, parts.netloc
    trusted = settings.CDP_TRUST_FORWARDED_HEADERS
    forwarded_host = header(scope, b"x-forwarded-host") if trusted else None
    host = (forwarded_host or header(scope, b"host") or b"").decode(errors="replace").split(",")[0].strip()
    if not host or not validate_host(split_domain_port(host)[0], settings.ALLOWED_HOSTS):
        raise HttpError(400, "invalid_host", f"the host {host!r} is not one this server answers to (CDP_ALLOWED_HOSTS)")
    forwarded_proto = header(scope, b"x-forwarded-proto") if trusted else None
    proto = (forwarded_proto or scope.get("scheme", "http").encode()).decode(errors="replace").strip().lower()
    if proto not in ("http", "https"):
        raise HttpError(400, "invalid_protocol", "the forwarded protocol must be http or https")
    return proto, host


def _browser_settings(scope: Scope, write_key: str) -> dict[str, Any]:
    """What analytics.js needs to send to us, and nothing that makes it call anyone else."""
    proto, host = public_origin(scope)
    return {
        "integrations": {"Segment.io": {"apiKey": write_key, "apiHost": f"{host}/v1", "protocol": proto}},
        "plan": {"track": {"__default": {"enabled": True}}, "identify": {"__default": {"enabled": True}}},
        "metrics": {"sampleRate": 0},
        "remotePlugins": [],
        "enabledMiddleware": {},
        "middlewareSettings": {},
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "legacyVideoPluginsEnabled": False,
    }
