"""Small ASGI helpers for the tracking fast path: reading bodies, decoding, answering with CORS."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class HttpError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []
        self.details = details or {}

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    length = header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise HttpError(413, "request_too_large", f"a request may be at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(400, "client_disconnected", "the client went away before sending the whole body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise HttpError(413, "request_too_large", f"a request may be at most {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_body(body: bytes, encoding: bytes | None, limit: int) -> bytes:
    """Undo Content-Encoding, refusing anything that inflates past `limit`."""
    if not encoding or encoding.strip().lower() in (b"identity", b""):
        return body
    name = encoding.strip().lower()
    if name in (b"gzip", b"x-gzip"):
        candidates = [zlib.MAX_WBITS | 16]
    elif name == b"deflate":
        # "deflate" is zlib-wrapped by the RFC, raw deflate in practice; accept both.
        candidates = [zlib.MAX_WBITS, -zlib.MAX_WBITS]
    else:
        raise HttpError(
            415,
            "unsupported_encoding",
            f"Content-Encoding {name.decode(errors='replace')!r} is not supported; use gzip or deflate",
        )
    for wbits in candidates:
        decoder = zlib.decompressobj(wbits)
        try:
            data = decoder.decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(data) > limit or decoder.unconsumed_tail:
            raise HttpError(413, "request_too_large", f"a request may be at most {limit} bytes once decompressed")
        if not decoder.eof:
            raise HttpError(400, "invalid_encoding", "the compressed body is truncated")
        return data
    raise HttpError(400, "invalid_encoding", f"the body is not valid {name.decode()} data")


def basic_auth_user(scope: Scope) -> str | None:
    value = header(scope, b"authorization")
    if not value or value[:6].lower() != b"basic ":
        return None
    try:
        decoded = base64.b64decode(value[6:].strip(), validate=False).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0] or None


def cors_headers(scope: Scope, allowed: list[str]) -> list[tuple[bytes, bytes]]:
    origin = header(scope, b"origin")
    if origin is None:
        return [(b"access-control-allow-origin", b"*")] if "*" in allowed else []
    if "*" in allowed or origin.decode(errors="replace") in allowed:
        return [
            (b"access-control-allow-origin", origin),
            (b"vary", b"Origin"),
            (b"access-control-expose-headers", b"Retry-After"),
        ]
    return []


def preflight_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    requested = header(scope, b"access-control-request-headers") or b"Content-Type, Authorization"
    return [
        (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
        (b"access-control-allow-headers", requested),
        (b"access-control-max-age", b"86400"),
    ]


async def respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], content_type: bytes = b"application/json"
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]]) -> None:
    await respond(send, status, orjson.dumps(payload), headers)
