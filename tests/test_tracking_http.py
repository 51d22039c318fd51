"""The ASGI helpers of the tracking fast path: body reading, decoding, Basic auth and CORS headers."""

from __future__ import annotations

import asyncio
import base64
import gzip
import zlib
from typing import Any

import pytest

from cdp.tracking.http import (
    HttpError,
    basic_auth_user,
    cors_headers,
    decode_body,
    preflight_headers,
    read_body,
)

LIMIT = 1024
ORIGIN = b"http://shop.example"


def scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "headers": list(headers)}


def refusal(call: Any, *args: Any) -> HttpError:
    with pytest.raises(HttpError) as caught:
        call(*args)
    return caught.value


# --- decode_body ----------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", [None, b"", b"identity", b" Identity "])
def test_decode_body_passes_unencoded_bodies_through(encoding):
    assert decode_body(b'{"a": 1}', encoding, LIMIT) == b'{"a": 1}'


@pytest.mark.parametrize("encoding", [b"gzip", b"x-gzip", b"GZIP", b" gzip "])
def test_decode_body_inflates_gzip_whatever_the_spelling(encoding):
    assert decode_body(gzip.compress(b'{"a": 1}'), encoding, LIMIT) == b'{"a": 1}'


@pytest.mark.parametrize("wrap", [lambda d: zlib.compress(d), lambda d: zlib.compress(d)[2:-4]], ids=["zlib", "raw"])
def test_decode_body_inflates_deflate_wrapped_or_raw(wrap):
    assert decode_body(wrap(b'{"a": 1}'), b"deflate", LIMIT) == b'{"a": 1}'


def test_decode_body_accepts_exactly_the_limit_once_inflated():
    assert len(decode_body(gzip.compress(b" " * LIMIT), b"gzip", LIMIT)) == LIMIT


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate"])
def test_decode_body_refuses_to_inflate_past_the_limit(encoding):
    data = b" " * (LIMIT + 1)
    body = gzip.compress(data) if encoding == b"gzip" else zlib.compress(data)
    error = refusal(decode_body, body, encoding, LIMIT)
    assert (error.status, error.code) == (413, "request_too_large")


def test_decode_body_reports_a_truncated_body():
    error = refusal(decode_body, gzip.compress(b'{"a": 1}' * 50)[:-12], b"gzip", LIMIT)
    assert (error.status, error.code) == (400, "invalid_encoding")


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate"])
def test_decode_body_reports_data_that_is_not_compressed(encoding):
    error = refusal(decode_body, b'{"userId": "u1", "event": "E"}', encoding, LIMIT)
    assert (error.status, error.code) == (400, "invalid_encoding")


@pytest.mark.parametrize("encoding", [b"br", b"zstd", b"gzip, deflate"])
def test_decode_body_refuses_other_encodings_with_415(encoding):
    error = refusal(decode_body, b"...", encoding, LIMIT)
    assert (error.status, error.code) == (415, "unsupported_encoding")
    assert "gzip or deflate" in error.message


# --- read_body ------------------------------------------------------------------------------
def receiving(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


def read(scope_: dict[str, Any], receive: Any) -> bytes:
    return asyncio.run(read_body(scope_, receive, LIMIT))


def test_read_body_joins_the_chunks():
    receive = receiving(
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b" 1}", "more_body": False},
    )
    assert read(scope(), receive) == b'{"a": 1}'


def test_read_body_refuses_a_declared_length_over_the_limit_without_reading():
    error = refusal(read, scope((b"content-length", str(LIMIT + 1).encode())), receiving())
    assert (error.status, error.code) == (413, "request_too_large")


def test_read_body_refuses_chunks_adding_up_past_the_limit():
    chunk = {"type": "http.request", "body": b"x" * (LIMIT // 2 + 1), "more_body": True}
    error = refusal(read, scope(), receiving(chunk, chunk))
    assert (error.status, error.code) == (413, "request_too_large")


def test_read_body_reports_a_client_that_went_away():
    receive = receiving({"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"})
    error = refusal(read, scope(), receive)
    assert (error.status, error.code) == (400, "client_disconnected")


# --- basic_auth_user ------------------------------------------------------------------------
def basic(credentials: bytes, scheme: bytes = b"Basic") -> dict[str, Any]:
    return scope((b"authorization", scheme + b" " + base64.b64encode(credentials)))


@pytest.mark.parametrize(
    ("request_scope", "expected"),
    [
        (basic(b"key123:"), "key123"),
        (basic(b"key123:ignored-password"), "key123"),
        (basic(b"key123"), "key123"),
        (basic(b"key123:", scheme=b"basic"), "key123"),
        (basic(b":key123"), None),
        (basic(b"\xff\xfe:"), None),
        (basic(b"key123:", scheme=b"Bearer"), None),
        (scope((b"authorization", b"Basic %%%")), None),
        (scope(), None),
    ],
    ids=["user", "password-ignored", "no-colon", "lowercase-scheme", "empty-user", "not-utf8", "bearer", "garbage",
         "absent"],
)  # fmt: skip
def test_basic_auth_user_is_the_write_key(request_scope, expected):
    assert basic_auth_user(request_scope) == expected


# --- CORS -----------------------------------------------------------------------------------
def test_cors_headers_echo_an_allowed_origin_and_expose_retry_after():
    headers = dict(cors_headers(scope((b"origin", ORIGIN)), [ORIGIN.decode()]))
    assert headers[b"access-control-allow-origin"] == ORIGIN
    assert headers[b"access-control-expose-headers"] == b"Retry-After"
    assert headers[b"vary"] == b"Origin"


def test_cors_headers_with_wildcard_echo_any_origin():
    headers = dict(cors_headers(scope((b"origin", b"https://other.example")), ["*"]))
    assert headers[b"access-control-allow-origin"] == b"https://other.example"


def test_cors_headers_say_nothing_to_an_origin_not_allowed():
    assert cors_headers(scope((b"origin", b"https://evil.example")), [ORIGIN.decode()]) == []


def test_cors_headers_without_origin_allow_everyone_only_with_wildcard():
    assert dict(cors_headers(scope(), ["*"])) == {b"access-control-allow-origin": b"*"}
    assert cors_headers(scope(), [ORIGIN.decode()]) == []


def test_preflight_headers_echo_the_requested_headers():
    requested = b"content-type,x-retry-count"
    headers = dict(preflight_headers(scope((b"access-control-request-headers", requested))))
    assert headers[b"access-control-allow-headers"] == requested
    assert b"POST" in headers[b"access-control-allow-methods"]


def test_preflight_headers_allow_content_type_and_authorization_by_default():
    allowed = dict(preflight_headers(scope()))[b"access-control-allow-headers"].lower()
    assert b"content-type" in allowed and b"authorization" in allowed


def test_http_error_as_dict_carries_details():
    error = HttpError(400, "invalid_batch", "no message is valid", details={"rejected": [{"index": 0}]})
    assert error.as_dict() == {"code": "invalid_batch", "message": "no message is valid", "rejected": [{"index": 0}]}
