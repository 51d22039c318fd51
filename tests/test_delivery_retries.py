"""Retries of the delivery engine against a real HTTP server on loopback that answers as scripted.

Events go through the real processor (which routes them) and `drain()` sends them; time moves by
editing `next_attempt_at` / `created_at` in the database, never by sleeping.
"""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from django.utils import timezone

from cdp.core.models import Source
from cdp.delivery.engine import drain
from cdp.delivery.models import Delivery, DeliveryAttempt
from tests.support.delivery import ingest, make_due, track, webhook
from tests.support.processes import free_port
from tests.support.sink import Reply, Sink, retry_after_date

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_lanes")]


@pytest.fixture
def source(make_workspace) -> Source:
    return Source.objects.create(workspace=make_workspace("acme"), name="Website", kind="website")


def only_delivery() -> Delivery:
    [delivery] = Delivery.objects.all()
    return delivery


def scheduled_delay(delivery: Delivery) -> float:
    """Seconds between the end of the last attempt and the next attempt time, to the millisecond
    (datetimes keep microseconds, so the sum of start and duration is off by a few)."""
    attempt = delivery.attempts_made.order_by("-number").first()
    return round((delivery.next_attempt_at - attempt.started_at).total_seconds() - attempt.duration_ms / 1000, 3)


# --- retry classes ---------------------------------------------------------------------------------


def test_drain_retries_network_error_until_endpoint_listens(source):
    port = free_port()  # nothing listens here: connection refused
    destination = webhook(source.workspace, f"http://127.0.0.1:{port}/hook")
    ingest(source, track())

    drain(destination.pk)

    delivery = only_delivery()
    assert (delivery.status, delivery.error_class, delivery.attempts) == ("retrying", "network", 1)
    assert delivery.next_attempt_at > timezone.now()
    with Sink(port=port) as sink:
        make_due(destination)
        drain(destination.pk)
        assert sink.count() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


def test_drain_retries_timeout_of_slow_endpoint(source):
    with Sink(Reply(delay=3.0)) as sink:  # the first answer comes far too late, the next at once
        destination = webhook(source.workspace, sink.url, timeout_seconds=0.4)
        ingest(source, track())

        drain(destination.pk)
        delivery = only_delivery()
        assert (delivery.status, delivery.error_class) == ("retrying", "timeout")
        attempt = delivery.attempts_made.get()
        assert 400 <= attempt.duration_ms < 3000
        assert attempt.response_status is None

        make_due(destination)
        drain(destination.pk)
        assert sink.count() == 2
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (408, "retryable_client_error"),
        (423, "retryable_client_error"),
        (429, "rate_limited"),
        (500, "server_error"),
        (502, "server_error"),
        (503, "server_error"),
    ],
)
def test_drain_retries_status_then_delivers(source, sink, status, error_class):
    sink.script(Reply(status))
    destination = webhook(source.workspace, sink.url)
    ingest(source, track())

    drain(destination.pk)
    delivery = only_delivery()
    assert (delivery.status, delivery.error_class, delivery.attempts) == ("retrying", error_class, 1)
    assert delivery.next_attempt_at > timezone.now()
    drain(destination.pk)
    assert sink.count() == 1, "not attempted again before its next attempt time"

    make_due(destination)
    drain(destination.pk)

    assert sink.count() == 2
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.finished_at is not None) == ("delivered", 2, True)
    outcomes = list(delivery.attempts_made.values_list("response_status", "outcome"))
    assert outcomes == [(status, "retry"), (200, "delivered")]


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422, 501])
def test_drain_fails_permanently_on_status(source, sink, status):
    sink.script(Reply(status, body=b'{"error":"no such hook"}'))
    destination = webhook(source.workspace, sink.url)
    ingest(source, track())

    drain(destination.pk)
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(hours=1))
    drain(destination.pk)

    assert sink.count() == 1
    delivery = only_delivery()
    assert (delivery.status, delivery.attempts, delivery.finished_at is not None) == ("failed", 1, True)
    assert delivery.error_class == "client_error"
    attempt = delivery.attempts_made.get()
    assert (attempt.response_status, attempt.outcome, attempt.response_body) == (
        status,
        "failed",
        '{"error":"no such hook"}',
    )


# --- Retry-After and backoff -----------------------------------------------------------------------


def test_drain_honours_retry_after_seconds_as_floor(source, sink, settings):
    settings.CDP_RETRY_BASE_SECONDS = 0.01  # the backoff alone would retry at once
    sink.script(Reply(429, headers={"Retry-After": "120"}))
    destination = webhook(source.workspace, sink.url)
    ingest(source, track())

    drain(destination.pk)

    delivery = only_delivery()
    assert delivery.status == "retrying"
    assert 120 <= scheduled_delay(delivery) < 121


def test_drain_honours_retry_after_http_date(source, sink, settings):
    settings.CDP_RETRY_BASE_SECONDS = 0.01
    sink.script(Reply(503, headers={"Retry-After": retry_after_date(300)}))
    destination = webhook(source.workspace, sink.url)
    ingest(source, track())

    drain(destination.pk)

    delivery = only_delivery()
    assert delivery.status == "retrying"
    assert 298 <= scheduled_delay(delivery) <= 301  # an HTTP date has whole seconds


def test_drain_keeps_backoff_when_retry_after_is_shorter(source, sink, settings):
    settings.CDP_RETRY_BASE_SECONDS = 100
    sink.script(Reply(503, headers={"Retry-After": "1"}))
    destination = webhook(source.workspace, sink.url)
    ingest(source, track())

    drain(destination.pk)

    assert 50 <= scheduled_delay(only_delivery()) <= 150


def test_drain_backoff_grows_exponentially_with_jitter(source, settings):
    settings.CDP_RETRY_BASE_SECONDS = 2.0
    settings.CDP_RETRY_MAX_DELAY_SECONDS = 10_000
    settings.CDP_BREAKER_THRESHOLD = 1000  # 48 failures in a row would open it, which is not the subject here
    with Sink(default=Reply(503)) as sink:
        destination = webhook(source.workspace, sink.url)
        ingest(source, *[track() for _ in range(8)])
        delays: dict[int, list[float]] = {}
        for attempt in range(1, 7):
            make_due(destination)
            drain(destination.pk)
            assert sink.count() == 8 * attempt
            delays[attempt] = [scheduled_delay(d) for d in Delivery.objects.all()]

    for attempt, observed in delays.items():
        nominal = 2.0 * 2 ** (attempt - 1)
        assert all(0.5 * nominal <= d <= 1.5 * nominal for d in observed), (attempt, observed)
        assert len({round(d, 3) for d in observed}) > 1, "the delays are randomised, not all equal"
    means = [sum(observed) / len(observed) for observed in delays.values()]
    # Each step doubles the nominal delay; averages of eight jittered delays stay well apart two steps on.
    assert all(later > earlier for earlier, later in zip(means, means[1:], strict=False)), means
    assert all(later > earlier * 2.5 for earlier, later in zip(means, means[2:], strict=False)), means
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {6}


def test_drain_backoff_never_exceeds_max_delay(source, settings):
    settings.CDP_RETRY_BASE_SECONDS = 60
    settings.CDP_RETRY_MAX_DELAY_SECONDS = 100
    settings.CDP_BREAKER_THRESHOLD = 1000
    with Sink(default=Reply(500)) as sink:
        destination = webhook(source.workspace, sink.url)
        ingest(source, *[track() for _ in range(10)])
        for _ in range(4):  # nominal delays 60, 120, 240, 480 s
            make_due(destination)
            drain(destination.pk)
        delays = [scheduled_delay(d) for d in Delivery.objects.all()]

    assert len(delays) == 10
    assert all(0 < d <= 100 for d in delays), delays


# --- giving up -------------------------------------------------------------------------------------


def test_drain_dead_letters_when_next_attempt_would_pass_retry_hours(source, sink, settings):
    settings.CDP_RETRY_BASE_SECONDS = 60  # next attempt 30..90 s after a failure
    sink.script(Reply(503), Reply(503), Reply(503))
    destination = webhook(source.workspace, sink.url, retry_hours=1.0)
    ingest(source, track())
    drain(destination.pk)
    assert only_delivery().status == "retrying"

    # Still well inside the hour: scheduled again.
    Delivery.objects.update(created_at=timezone.now() - timedelta(minutes=50))
    make_due(destination)
    drain(destination.pk)
    assert only_delivery().status == "retrying"

    # Ten seconds left of the hour: the next attempt would come too late, so it is dead-lettered.
    Delivery.objects.update(created_at=timezone.now() - timedelta(hours=1) + timedelta(seconds=10))
    make_due(destination)
    drain(destination.pk)

    delivery = only_delivery()
    assert (delivery.status, delivery.attempts, delivery.finished_at is not None) == ("dead", 3, True)
    assert delivery.error_class == "server_error"
    assert list(delivery.attempts_made.values_list("outcome", flat=True)) == ["retry", "retry", "dead"]
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(hours=1))
    drain(destination.pk)
    assert sink.count() == 3, "a dead letter is not attempted again"


def test_drain_dead_letters_at_once_when_retry_hours_is_zero(source, sink):
    sink.script(Reply(500))
    destination = webhook(source.workspace, sink.url, retry_hours=0)
    ingest(source, track())

    drain(destination.pk)

    assert only_delivery().status == "dead"


# --- evidence --------------------------------------------------------------------------------------


def test_drain_records_every_attempt_with_secrets_masked(source, settings):
    settings.CDP_RETRY_BASE_SECONDS = 0.01
    secret = "whsec-very-secret-signing-key"
    extra = {"X-Api-Key": "key-4f1d2a", "X-Tenant-Token": "tok-9c3e77"}
    failure_body = b"upstream exploded: " + b"x" * 5000
    script = [Reply(500, body=failure_body, delay=0.05), Reply(delay=3.0), Reply(201, body=b'{"stored":1}')]
    with Sink(*script) as sink:
        destination = webhook(
            source.workspace, sink.url, timeout_seconds=0.5, settings={"signing_secret": secret, "headers": extra}
        )
        ingest(source, track(messageId="evidence-1"))
        for _ in range(3):
            make_due(destination)
            drain(destination.pk)
        received = sink.requests

    delivery = only_delivery()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    attempts = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [a.number for a in attempts] == [1, 2, 3]
    assert [(a.response_status, a.error_class, a.outcome) for a in attempts] == [
        (500, "server_error", "retry"),
        (None, "timeout", "retry"),
        (201, "", "delivered"),
    ]
    assert attempts[0].response_body.startswith("upstream exploded: xxx")
    assert len(attempts[0].response_body) <= 2000
    assert attempts[0].duration_ms >= 50
    assert 500 <= attempts[1].duration_ms < 3000
    assert attempts[2].response_body == '{"stored":1}'
    for attempt in attempts:
        assert attempt.request["method"] == "POST"
        assert attempt.request["url"] == sink.url
        assert '"messageId":"evidence-1"' in attempt.request["body"].replace(" ", "")
        assert {"X-Api-Key", "X-Tenant-Token", "X-CDP-Signature"} <= set(attempt.request["headers"])
    # What the endpoint really got carried the secrets; none of them is in the evidence.
    secrets = [secret, *extra.values(), *(r.headers["x-cdp-signature"] for r in received)]
    assert received[0].headers["x-api-key"] == "key-4f1d2a"
    evidence = orjson.dumps([[a.request, a.response_body, a.error] for a in attempts] + [delivery.last_error]).decode()
    assert not [s for s in secrets if s in evidence]
    assert not [s for s in secrets if s.split(",v1=")[-1] in evidence]
