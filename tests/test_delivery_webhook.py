"""The Webhook destination against a real HTTP server on loopback: what the endpoint receives."""

from __future__ import annotations

import hashlib
import hmac
import time

import orjson
import pytest

from cdp.core.models import Source
from cdp.delivery.engine import drain
from cdp.delivery.models import Delivery
from cdp.destinations.services import save_subscription
from tests.support.delivery import age, ingest, make_due, track, webhook
from tests.support.sink import Received, Reply, messages_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_lanes")]

SECRET = "whsec-3b1f9e0c7d"


@pytest.fixture
def source(make_workspace) -> Source:
    return Source.objects.create(workspace=make_workspace("acme"), name="Website", kind="website")


def verify(request: Received, secret: str, tolerance: float = 300) -> bool:
    """What a receiver does: recompute the HMAC over the raw body and check the timestamp is fresh."""
    parts = dict(part.split("=", 1) for part in request.headers["x-cdp-signature"].split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) <= tolerance


def test_webhook_posts_the_mapped_payload_as_json(source, sink):
    hook = webhook(source.workspace, sink.url)
    mapping = {"payload": {"order": {"@path": "$.properties.order_id"}, "who": {"@path": "$.userId"}, "n": 1}}
    save_subscription(hook.subscriptions.get(), {"mapping": mapping})
    ingest(source, track(userId="ada", properties={"order_id": "o-1"}))

    drain(hook.pk)

    [request] = sink.requests
    assert (request.method, request.path) == ("POST", "/hook")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"order": "o-1", "who": "ada", "n": 1}
    assert "x-cdp-signature" not in request.headers  # no secret, no signature
    assert Delivery.objects.get().status == "delivered"


def test_webhook_default_mapping_posts_the_whole_event(source, sink):
    hook = webhook(source.workspace, sink.url)
    ingest(source, track(messageId="whole-1", event="Signed Up", properties={"plan": "pro"}))

    drain(hook.pk)

    event = sink.requests[0].json()
    assert (event["type"], event["event"], event["messageId"], event["properties"]) == (
        "track",
        "Signed Up",
        "whole-1",
        {"plan": "pro"},
    )
    assert {"receivedAt", "timestamp"} <= set(event)


def test_webhook_sends_the_configured_extra_headers(source, sink):
    headers = {"X-Api-Key": "k-123", "X-Tenant": "acme"}
    hook = webhook(source.workspace, sink.url, settings={"headers": headers})
    ingest(source, track(), track())

    drain(hook.pk)

    assert len(sink.requests) == 2
    for request in sink.requests:
        assert (request.headers["x-api-key"], request.headers["x-tenant"]) == ("k-123", "acme")


def test_webhook_signature_verifies_over_the_raw_body(source, sink):
    hook = webhook(source.workspace, sink.url, settings={"signing_secret": SECRET})
    ingest(source, track(properties={"note": "naïve café ☕", "n": 1.5}))

    drain(hook.pk)

    [request] = sink.requests
    assert request.headers["x-cdp-signature"].startswith("t=")
    assert verify(request, SECRET)
    assert not verify(request, "another-secret")
    tampered = Received(request.method, request.path, request.headers, request.body.replace(b"1.5", b"9.5"), 0)
    assert not verify(tampered, SECRET)


def test_webhook_batch_mode_sends_up_to_batch_size_events_per_request(source, sink):
    hook = webhook(source.workspace, sink.url, settings={"batch": True, "signing_secret": SECRET}, batch_size=3)
    sent = [track() for _ in range(7)]
    ingest(source, *sent)

    drain(hook.pk)

    bodies = [request.json() for request in sink.requests]
    assert all(set(body) == {"batch"} for body in bodies)
    assert sorted(len(body["batch"]) for body in bodies) == [1, 3, 3]
    assert sorted(m["messageId"] for m in messages_in(sink.requests)) == sorted(m["messageId"] for m in sent)
    assert all(verify(request, SECRET) for request in sink.requests)
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_webhook_batch_wait_holds_a_partial_batch_until_it_is_old_enough(source, sink):
    hook = webhook(source.workspace, sink.url, settings={"batch": True}, batch_size=3, batch_wait_seconds=60)
    ingest(source, track(), track())

    drain(hook.pk)
    assert sink.count() == 0
    assert set(Delivery.objects.values_list("status", "attempts")) == {("pending", 0)}

    age(hook, 61)
    drain(hook.pk)

    [request] = sink.requests
    assert len(request.json()["batch"]) == 2


def test_webhook_batch_wait_sends_full_batches_and_holds_the_rest(source, sink):
    hook = webhook(source.workspace, sink.url, settings={"batch": True}, batch_size=3, batch_wait_seconds=60)
    ingest(source, *[track() for _ in range(7)])

    drain(hook.pk)
    assert sorted(len(r.json()["batch"]) for r in sink.requests) == [3, 3]
    assert Delivery.objects.filter(status="pending").count() == 1

    age(hook, 61)
    drain(hook.pk)

    assert sorted(len(r.json()["batch"]) for r in sink.requests) == [1, 3, 3]


def test_webhook_failed_batch_retries_each_of_its_events(source, sink):
    sink.script(Reply(503))
    hook = webhook(source.workspace, sink.url, settings={"batch": True}, batch_size=10)
    ingest(source, *[track() for _ in range(4)])

    drain(hook.pk)
    assert set(Delivery.objects.values_list("status", "attempts")) == {("retrying", 1)}

    make_due(hook)
    drain(hook.pk)

    assert [len(r.json()["batch"]) for r in sink.requests] == [4, 4]
    assert set(Delivery.objects.values_list("status", "attempts")) == {("delivered", 2)}
    attempt = Delivery.objects.first().attempts_made.first()
    assert len(orjson.loads(attempt.request["body"])["batch"]) == 4
