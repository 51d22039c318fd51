"""The Tracking API over HTTP: endpoints, write keys, bodies, partial batches, CORS, settings, durability.

Refusals (auth, limits, rate limits) are in test_tracking_limits.py.
"""

from __future__ import annotations

import base64
import gzip
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
import requests
from django.conf import settings
from django.db import connections

from cdp.core.models import Source
from cdp.processing.models import Event, RejectedMessage
from cdp.processing.processor import process_pending
from cdp.tracking.models import IntakeRequest
from tests.support.processes import LiveServer
from tests.support.tracking import ORIGIN, TrackingClient, assert_error, make_source, message, serve_tracking

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tracking_server(django_db_setup: None) -> Iterator[LiveServer]:
    yield from serve_tracking()


@pytest.fixture
def api(tracking_server: LiveServer, transactional_db: None) -> TrackingClient:
    return TrackingClient(tracking_server)


@pytest.fixture
def source(api: TrackingClient) -> Source:
    return make_source()


def stored(source: Source) -> dict[str, Event]:
    return {event.message_id: event for event in Event.objects.filter(source=source)}


# --- endpoints ------------------------------------------------------------------------------
SINGLE_PATHS = [
    ("/v1/identify", "identify"), ("/v1/track", "track"), ("/v1/page", "page"), ("/v1/screen", "screen"),
    ("/v1/group", "group"), ("/v1/alias", "alias"),
    ("/v1/i", "identify"), ("/v1/t", "track"), ("/v1/p", "page"), ("/v1/s", "screen"), ("/v1/g", "group"),
    ("/v1/a", "alias"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "kind"), SINGLE_PATHS, ids=[p for p, _ in SINGLE_PATHS])
def test_single_endpoint_answers_200_json_and_stores_its_type(api, source, path, kind):
    sent = message(kind)
    del sent["type"]  # the path alone says what the call is
    response = api.post(path, sent, key=source.write_key)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"success": True}
    process_pending()
    event = Event.objects.get(source=source)
    assert (event.type, event.message_id, event.user_id) == (kind, sent["messageId"], "user-1")


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/import", "/v1/b"])
def test_batch_endpoint_answers_200_json_and_stores_every_message(api, source, path):
    sent = [message(kind) for kind in ("identify", "track", "page", "screen", "group", "alias")]
    response = api.post(path, {"batch": sent, "sentAt": "2024-05-01T10:00:00.000Z"}, key=source.write_key)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"success": True}
    process_pending()
    assert {mid: event.type for mid, event in stored(source).items()} == {m["messageId"]: m["type"] for m in sent}


def test_single_endpoint_stores_the_path_type_over_the_body_type(api, source):
    response = api.post("/v1/t", message("track", type="identify"), key=source.write_key)
    assert response.status_code == 200
    process_pending()
    assert Event.objects.get(source=source).type == "track"


def test_unknown_endpoint_gets_404_json(api, source):
    assert_error(api.post("/v1/identity", message("identify"), key=source.write_key), 404, "not_found")


# --- write keys -----------------------------------------------------------------------------
def test_write_key_from_basic_auth(api, source):
    token = base64.b64encode(f"{source.write_key}:".encode()).decode()
    response = api.post("/v1/track", message(), headers={"Authorization": f"Basic {token}"})
    assert response.status_code == 200
    assert IntakeRequest.objects.get().source_id == source.id


def test_write_key_from_body_envelope(api, source):
    sent = message()
    response = api.post("/v1/batch", {"batch": [sent], "writeKey": source.write_key})
    assert response.status_code == 200
    process_pending()
    event = Event.objects.get(source=source)
    assert event.message_id == sent["messageId"]
    assert "writeKey" not in event.payload


def test_write_key_from_each_event_as_analytics_js_sends_it(api, source):
    sent = message(writeKey=source.write_key)
    response = api.post("/v1/t", data=orjson.dumps(sent), headers={"Content-Type": "text/plain"})
    assert response.status_code == 200
    process_pending()
    event = Event.objects.get(source=source)
    assert event.message_id == sent["messageId"]
    assert "writeKey" not in event.payload


def test_write_key_from_events_of_a_batch_without_envelope_key(api, source):
    sent = [message(writeKey=source.write_key), message(writeKey=source.write_key)]
    response = api.post("/v1/b", {"batch": sent})
    assert response.status_code == 200
    process_pending()
    assert set(stored(source)) == {m["messageId"] for m in sent}


def test_write_key_from_query_parameter(api, source):
    response = api.post("/v1/track", message(), params={"writeKey": source.write_key})
    assert response.status_code == 200
    assert IntakeRequest.objects.get().source_id == source.id


# --- bodies ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content_type",
    ["application/json", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=utf-8", None],
)
def test_body_is_read_as_json_whatever_the_content_type(api, source, content_type):
    sent = message()
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.post("/v1/track", data=orjson.dumps(sent), key=source.write_key, headers=headers)
    assert response.status_code == 200
    process_pending()
    assert Event.objects.get(source=source).event == "Order Completed"


def test_body_gzip_is_decoded_and_kept_decompressed(api, source):
    body = orjson.dumps({"batch": [message(), message()]})
    response = api.post(
        "/v1/batch", data=gzip.compress(body), key=source.write_key, headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 200
    assert bytes(IntakeRequest.objects.get().body) == body
    process_pending()
    assert Event.objects.filter(source=source).count() == 2


@pytest.mark.parametrize(
    "compress",
    [zlib.compress, lambda data: zlib.compress(data)[2:-4]],
    ids=["zlib-wrapped", "raw"],
)
def test_body_deflate_is_decoded(api, source, compress: Callable[[bytes], bytes]):
    body = orjson.dumps(message())
    response = api.post("/v1/track", data=compress(body), key=source.write_key, headers={"Content-Encoding": "deflate"})
    assert response.status_code == 200
    assert bytes(IntakeRequest.objects.get().body) == body


def test_body_with_unsupported_encoding_gets_415(api, source):
    response = api.post("/v1/track", data=b"(brotli)", key=source.write_key, headers={"Content-Encoding": "br"})
    body = assert_error(response, 415, "unsupported_encoding")
    assert "br" in body["message"]
    assert not IntakeRequest.objects.exists()


def test_body_that_is_not_gzip_gets_400(api, source):
    response = api.post(
        "/v1/track", data=orjson.dumps(message()), key=source.write_key, headers={"Content-Encoding": "gzip"}
    )
    assert_error(response, 400, "invalid_encoding")


def test_body_gzip_bomb_gets_413(api, source):
    bomb = gzip.compress(b"{" + b" " * (5 * 1024 * 1024) + b"}")
    assert len(bomb) < 32 * 1024
    response = api.post("/v1/track", data=bomb, key=source.write_key, headers={"Content-Encoding": "gzip"})
    assert_error(response, 413, "request_too_large")
    assert not IntakeRequest.objects.exists()


# --- partial batches ------------------------------------------------------------------------
def test_batch_with_one_bad_message_keeps_the_others(api, source):
    good = [message(), message("identify")]
    bad = message()
    del bad["event"]
    response = api.post("/v1/batch", {"batch": [good[0], bad, good[1]]}, key=source.write_key)
    assert response.status_code == 200
    answer = response.json()
    assert answer["accepted"] == 2
    assert [(r["index"], r["code"]) for r in answer["rejected"]] == [(1, "missing_event")]
    process_pending()
    assert set(stored(source)) == {m["messageId"] for m in good}
    rejected = RejectedMessage.objects.get(source=source)
    assert (rejected.index, rejected.code) == (1, "missing_event")
    assert orjson.loads(rejected.body)["messageId"] == bad["messageId"]


def test_batch_oversize_message_is_rejected_alone(api, source):
    big = message(properties={"blob": "x" * settings.CDP_MAX_MESSAGE_BYTES})
    good = [message(), message()]
    response = api.post("/v1/batch", {"batch": [good[0], big, good[1]]}, key=source.write_key)
    assert response.status_code == 200
    assert response.json()["accepted"] == 2
    assert [(r["index"], r["code"]) for r in response.json()["rejected"]] == [(1, "message_too_large")]
    process_pending()
    assert set(stored(source)) == {m["messageId"] for m in good}
    assert RejectedMessage.objects.get(source=source).code == "message_too_large"


def test_batch_where_every_message_is_bad_gets_400_listing_them(api, source):
    batch = [{"type": "track", "event": "No Identity"}, message(type="purchase"), "not an object"]
    body = assert_error(api.post("/v1/batch", {"batch": batch}, key=source.write_key), 400, "invalid_batch")
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (0, "missing_identity"),
        (1, "invalid_type"),
        (2, "invalid_message"),
    ]
    assert not IntakeRequest.objects.exists()


@pytest.mark.parametrize(
    "body", [{"batch": []}, {"messages": [{}]}, {"batch": {"0": {}}}], ids=["empty", "missing", "object"]
)
def test_batch_without_a_message_list_gets_400(api, source, body):
    assert_error(api.post("/v1/batch", body, key=source.write_key), 400, "invalid_batch")


# --- CORS -----------------------------------------------------------------------------------
def allowed_origin(response: requests.Response) -> str | None:
    return response.headers.get("Access-Control-Allow-Origin")


def exposed(response: requests.Response) -> set[str]:
    value = response.headers.get("Access-Control-Expose-Headers", "")
    return {name.strip().lower() for name in value.split(",")}


def test_cors_preflight_allows_post_and_echoes_requested_headers(api):
    response = api.options(
        "/v1/t",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-retry-count",
        },
    )
    assert response.status_code in (200, 204)
    assert allowed_origin(response) in (ORIGIN, "*")
    allowed_headers = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "x-retry-count"} <= allowed_headers
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


CORS_CASES: dict[str, Callable[[TrackingClient, Source], requests.Response]] = {
    "track-200": lambda api, s: api.post("/v1/t", message(), key=s.write_key, headers={"Origin": ORIGIN}),
    "partial-batch-200": lambda api, s: api.post(
        "/v1/b", {"batch": [message(), {"type": "track"}]}, key=s.write_key, headers={"Origin": ORIGIN}
    ),
    "json-400": lambda api, s: api.post("/v1/t", data=b"{", key=s.write_key, headers={"Origin": ORIGIN}),
    "key-401": lambda api, s: api.post("/v1/t", message(), key="nope", headers={"Origin": ORIGIN}),
    "size-413": lambda api, s: api.post(
        "/v1/t", message(properties={"x": "x" * 40_000}), key=s.write_key, headers={"Origin": ORIGIN}
    ),
    "method-405": lambda api, s: requests.put(f"{api.url}/v1/t", headers={"Origin": ORIGIN}, timeout=10),
    "settings-200": lambda api, s: api.get(f"/v1/projects/{s.write_key}/settings", headers={"Origin": ORIGIN}),
    "settings-404": lambda api, s: api.get("/v1/projects/nope/settings", headers={"Origin": ORIGIN}),
}


@pytest.mark.parametrize("case", CORS_CASES)
def test_cors_headers_on_every_answer(api, source, case):
    response = CORS_CASES[case](api, source)
    assert response.status_code == int(case.rsplit("-", 1)[1])
    assert allowed_origin(response) in (ORIGIN, "*")
    assert "retry-after" in exposed(response)


# --- settings and the library for analytics.js ----------------------------------------------
def test_settings_tell_analytics_js_to_send_here_and_nowhere_else(api, source):
    response = api.get(f"/v1/projects/{source.write_key}/settings")
    assert response.status_code == 200
    answer = response.json()
    assert answer["integrations"]["Segment.io"] == {
        "apiKey": source.write_key,
        "apiHost": f"127.0.0.1:{api.server.port}/v1",
        "protocol": "http",
    }
    assert answer["metrics"]["sampleRate"] == 0


@pytest.mark.parametrize("key", ["not-a-key", "bad%00key"], ids=["unknown", "nul"])
def test_settings_for_unknown_key_get_404_json(api, key):
    assert_error(api.get(f"/v1/projects/{key}/settings"), 404, "invalid_write_key")


ANALYTICS_JS = Path(settings.CDP_ANALYTICS_JS_DIR)


def test_analytics_js_bundle_is_served(api, source):
    response = api.get(f"/analytics.js/v1/{source.write_key}/analytics.min.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/javascript")
    assert response.content == (ANALYTICS_JS / "standalone.js").read_bytes()


def test_analytics_js_lazy_chunks_are_served(api):
    chunk = next(ANALYTICS_JS.glob("ajs-destination.bundle.*.js"))
    response = api.get(f"/analytics-next/bundles/{chunk.name}")
    assert response.status_code == 200
    assert response.content == chunk.read_bytes()


def test_analytics_js_unknown_chunk_gets_404(api):
    assert_error(api.get("/analytics-next/bundles/missing.bundle.js"), 404, "not_found")


# --- durability -----------------------------------------------------------------------------
def test_accepted_request_is_in_the_intake_log_before_processing(api, source):
    body = orjson.dumps({"batch": [message(), message()], "sentAt": "2024-05-01T10:00:00.000Z"})
    response = api.post("/v1/import", data=body, key=source.write_key)
    assert response.status_code == 200
    row = IntakeRequest.objects.get()
    assert (row.source_id, row.endpoint, bytes(row.body), row.processed_at) == (source.id, "import", body, None)
    assert not Event.objects.exists()


def test_concurrent_requests_are_each_committed_before_their_answer(api, source):
    sent = [message() for _ in range(120)]

    def send(one: dict) -> tuple[int, int]:
        """The answer's status, and how many intake rows hold the message right after it."""
        response = api.post("/v1/track", one, key=source.write_key)
        needle = f'"{one["messageId"]}"'.encode()
        try:
            bodies = IntakeRequest.objects.filter(source=source).values_list("body", flat=True)
            return response.status_code, sum(needle in bytes(body) for body in bodies)
        finally:
            connections.close_all()  # this thread's own connection, which would outlive the test

    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(send, sent))
    assert answers == [(200, 1)] * len(sent)
    process_pending()
    assert set(stored(source)) == {m["messageId"] for m in sent}


def test_settings_ignore_forwarded_headers_unless_trusted(api, source):
    forged = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "javascript"}
    response = api.get(f"/v1/projects/{source.write_key}/settings", headers=forged)
    assert response.status_code == 200
    segment = response.json()["integrations"]["Segment.io"]
    assert segment["apiHost"].startswith("127.0.0.1:")
    assert segment["protocol"] == "http"


def test_settings_refuse_a_host_the_server_does_not_answer_to(api, source):
    response = api.get(f"/v1/projects/{source.write_key}/settings", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_host"


def test_forwarded_for_is_the_client_address_only_when_trusted():
    # (uvicorn itself applies X-Forwarded-For from its --forwarded-allow-ips, loopback by default.)
    from cdp.tracking.app import _client_ip

    scope = {"headers": [(b"x-forwarded-for", b"203.0.113.9, 10.0.0.1")], "client": ("198.51.100.7", 5000)}
    assert _client_ip(scope, trust_forwarded=False) == "198.51.100.7"
    assert _client_ip(scope, trust_forwarded=True) == "203.0.113.9"
