"""The Tracking API's refusals over HTTP: bad input, write keys, sources, sizes and rate limits.

Every refusal is a JSON {"code", "message"} with a status the Segment clients act on (they retry
429 and 5xx and drop other 4xx), and a refused request leaves nothing in the intake log.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest
from django.conf import settings

from cdp.core.models import Source
from cdp.tracking.models import IntakeRequest
from tests.support.processes import LiveServer
from tests.support.tracking import ORIGIN, TrackingClient, assert_error, make_source, message, serve_tracking

pytestmark = pytest.mark.slow
MAX_MESSAGE = settings.CDP_MAX_MESSAGE_BYTES
MAX_REQUEST = settings.CDP_MAX_REQUEST_BYTES
MAX_BATCH = settings.CDP_MAX_BATCH_MESSAGES


@pytest.fixture(scope="module")
def tracking_server(django_db_setup: None) -> Iterator[LiveServer]:
    yield from serve_tracking()


@pytest.fixture
def api(tracking_server: LiveServer, transactional_db: None) -> TrackingClient:
    return TrackingClient(tracking_server)


@pytest.fixture
def source(api: TrackingClient) -> Source:
    return make_source()


def padded(size: int) -> bytes:
    """A valid track call whose JSON is exactly `size` bytes."""
    base = message(properties={"pad": ""})
    pad = size - len(orjson.dumps(base))
    body = orjson.dumps({**base, "properties": {"pad": "x" * pad}})
    assert len(body) == size
    return body


# --- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body", [b'{"userId": "u1", "event": ', b"", b"\xff\xfe"], ids=["truncated", "empty", "binary"]
)
def test_malformed_json_gets_400(api, source, body):
    assert_error(api.post("/v1/track", data=body, key=source.write_key), 400, "invalid_json")
    assert not IntakeRequest.objects.exists()


def test_json_that_is_not_an_object_gets_400(api, source):
    assert_error(api.post("/v1/track", [message()], key=source.write_key), 400, "invalid_json")


@pytest.mark.parametrize("ids", [{}, {"userId": None, "anonymousId": None}, {"userId": "  ", "anonymousId": ""}])
def test_message_without_user_or_anonymous_id_gets_400(api, source, ids):
    sent = {key: value for key, value in message().items() if key != "userId"} | ids
    assert_error(api.post("/v1/track", sent, key=source.write_key), 400, "missing_identity")
    assert not IntakeRequest.objects.exists()


def test_message_with_only_anonymous_id_is_accepted(api, source):
    sent = message(userId=None, anonymousId="anon-7")
    assert api.post("/v1/track", sent, key=source.write_key).status_code == 200


def test_track_without_event_gets_400(api, source):
    sent = message()
    del sent["event"]
    assert_error(api.post("/v1/track", sent, key=source.write_key), 400, "missing_event")
    assert not IntakeRequest.objects.exists()


# --- write keys and sources -----------------------------------------------------------------
def test_missing_write_key_gets_401(api):
    assert_error(api.post("/v1/track", message()), 401, "missing_write_key")
    assert not IntakeRequest.objects.exists()


@pytest.mark.parametrize("key", ["not-a-key", "k" * 65, "bad\x00key"], ids=["unknown", "too-long", "nul"])
def test_unknown_write_key_gets_401(api, source, key):
    assert_error(api.post("/v1/track", message(writeKey=key)), 401, "invalid_write_key")
    assert not IntakeRequest.objects.exists()


def test_rotated_write_key_gets_401_while_the_new_key_works(api, source):
    old = source.write_key
    assert api.post("/v1/track", message(), key=old).status_code == 200  # the server now caches the old key
    new = source.rotate_write_key()
    time.sleep(settings.CDP_WRITE_KEY_CACHE_SECONDS + 0.2)
    assert_error(api.post("/v1/track", message(), key=old), 401, "invalid_write_key")
    assert api.post("/v1/track", message(), key=new).status_code == 200
    assert IntakeRequest.objects.count() == 2


def test_disabled_source_gets_403(api):
    source = make_source(enabled=False)
    assert_error(api.post("/v1/track", message(), key=source.write_key), 403, "source_disabled")
    assert not IntakeRequest.objects.exists()


def test_re_enabled_source_is_accepted_again(api, source):
    assert api.post("/v1/track", message(), key=source.write_key).status_code == 200
    Source.objects.filter(pk=source.pk).update(enabled=False)
    time.sleep(settings.CDP_WRITE_KEY_CACHE_SECONDS + 0.2)
    assert_error(api.post("/v1/track", message(), key=source.write_key), 403, "source_disabled")
    Source.objects.filter(pk=source.pk).update(enabled=True)
    time.sleep(settings.CDP_WRITE_KEY_CACHE_SECONDS + 0.2)
    assert api.post("/v1/track", message(), key=source.write_key).status_code == 200


# --- sizes ----------------------------------------------------------------------------------
def test_single_message_of_exactly_32kb_is_accepted(api, source):
    assert api.post("/v1/track", data=padded(MAX_MESSAGE), key=source.write_key).status_code == 200


def test_single_message_over_32kb_gets_413(api, source):
    response = api.post("/v1/track", data=padded(MAX_MESSAGE + 1), key=source.write_key)
    assert_error(response, 413, "message_too_large")
    assert not IntakeRequest.objects.exists()


def big_batch() -> bytes:
    """A batch over the request limit made of messages each under the message limit."""
    messages = [message(properties={"pad": "x" * 30_000}) for _ in range(MAX_REQUEST // 30_000 + 1)]
    body = orjson.dumps({"batch": messages})
    assert len(body) > MAX_REQUEST
    return body


def test_request_over_500kb_gets_413(api, source):
    assert_error(api.post("/v1/batch", data=big_batch(), key=source.write_key), 413, "request_too_large")
    assert not IntakeRequest.objects.exists()


def test_chunked_request_over_500kb_gets_413(api, source):
    body = big_batch()
    chunks = (body[start : start + 65536] for start in range(0, len(body), 65536))  # no Content-Length
    assert_error(api.post("/v1/batch", data=chunks, key=source.write_key), 413, "request_too_large")
    assert not IntakeRequest.objects.exists()


def test_batch_of_2500_messages_is_accepted(api, source):
    batch = [{"type": "track", "userId": "u", "event": "e"}] * MAX_BATCH
    response = api.post("/v1/batch", {"batch": batch}, key=source.write_key)
    assert response.status_code == 200
    assert response.json() == {"success": True}


def test_batch_of_more_than_2500_messages_gets_413(api, source):
    batch = [{"type": "track", "userId": "u", "event": "e"}] * (MAX_BATCH + 1)
    assert_error(api.post("/v1/batch", {"batch": batch}, key=source.write_key), 413, "batch_too_large")
    assert not IntakeRequest.objects.exists()


# --- rate limits ----------------------------------------------------------------------------
def test_rate_limit_gets_429_with_retry_after_then_accepts_again(api):
    source = make_source(rate_limit=2)
    burst = api.post("/v1/batch", {"batch": [message() for _ in range(4)]}, key=source.write_key)
    assert burst.status_code == 200  # a batch may overdraw the budget once ...

    limited = api.post("/v1/track", message(), key=source.write_key, headers={"Origin": ORIGIN})
    assert_error(limited, 429, "rate_limited")  # ... and the next request waits for it to refill
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= 2
    assert "retry-after" in limited.headers["Access-Control-Expose-Headers"].lower()
    assert IntakeRequest.objects.count() == 1

    time.sleep(retry_after)
    assert api.post("/v1/track", message(), key=source.write_key).status_code == 200
    assert IntakeRequest.objects.count() == 2


def test_rate_limit_of_one_source_leaves_others_alone(api, source):
    limited = make_source(rate_limit=1)
    assert api.post("/v1/batch", {"batch": [message() for _ in range(5)]}, key=limited.write_key).status_code == 200
    assert_error(api.post("/v1/track", message(), key=limited.write_key), 429, "rate_limited")
    assert api.post("/v1/track", message(), key=source.write_key).status_code == 200


def test_source_without_rate_limit_takes_a_burst(api, source):
    statuses = {api.post("/v1/track", message(), key=source.write_key).status_code for _ in range(30)}
    assert statuses == {200}
