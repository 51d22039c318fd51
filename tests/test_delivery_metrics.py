"""Delivery metrics per destination, through the API and at /metrics (Prometheus text format): the
numbers match delivery records made directly in the database at known states and times."""

from __future__ import annotations

import random
import re
import statistics
from datetime import timedelta
from itertools import count

import pytest
from django.utils import timezone

from cdp.core.models import Destination, Membership, Role
from cdp.delivery.models import Delivery, DeliveryAttempt, FilteredCount, Status
from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db

_event_ids = count(1)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def now():
    # Whole milliseconds: SQLite keeps times to the millisecond in date arithmetic.
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def hook(source) -> Destination:
    return Destination.objects.create(workspace=source.workspace, name="Hook", type="webhook", enabled=True)


@pytest.fixture
def other_hook(source) -> Destination:
    return Destination.objects.create(workspace=source.workspace, name="Other", type="webhook", enabled=True)


def delivery(destination, status, *, ago=None, latency_ms=250, error_class="", now=None):
    """A delivery of `destination` that reached `status` `ago` before now, `latency_ms` after its
    event was received (open deliveries: no finish time)."""
    finished = now - ago if ago is not None else None
    received = (finished or now) - timedelta(milliseconds=latency_ms)
    return Delivery.objects.create(
        destination=destination, event_id=next(_event_ids), source_id=1, message_id=f"m-{next(_event_ids)}",
        action="send", payload={}, status=status, error_class=error_class, received_at=received,
        created_at=received, finished_at=finished,
    )  # fmt: skip


def retried_attempt(row, ago, now):
    return DeliveryAttempt.objects.create(
        delivery=row, number=1, started_at=now - ago, duration_ms=12.0, outcome="retry",
        error_class="server_error", response_status=503,
    )  # fmt: skip


def filtered(destination, hour, reason, n):
    FilteredCount.objects.create(destination=destination, hour=hour, reason=reason, count=n)


@pytest.fixture
def history(hook, other_hook, now):
    """A known week of one destination, plus noise in another destination that must not count."""
    m = timedelta(minutes=1)
    for ago in (2 * m, 5 * m, 9 * m):
        delivery(hook, Status.DELIVERED, ago=ago, now=now)
    for ago in (30 * m, 45 * m):
        delivery(hook, Status.DELIVERED, ago=ago, now=now)
    delivery(hook, Status.DELIVERED, ago=timedelta(hours=3), now=now)
    delivery(hook, Status.DELIVERED, ago=timedelta(days=2), now=now)
    delivery(hook, Status.DELIVERED, ago=timedelta(days=8), now=now)  # older than every window
    delivery(hook, Status.FAILED, ago=4 * m, error_class="client_error", now=now)
    delivery(hook, Status.FAILED, ago=timedelta(hours=2), error_class="payload", now=now)
    delivery(hook, Status.FAILED, ago=timedelta(hours=5), error_class="client_error", now=now)
    delivery(hook, Status.DEAD, ago=20 * m, error_class="rate_limited", now=now)
    delivery(hook, Status.DEAD, ago=timedelta(days=3), error_class="timeout", now=now)
    waiting = delivery(hook, Status.RETRYING, now=now)
    delivery(hook, Status.PENDING, now=now)
    delivery(hook, Status.PENDING, now=now)
    for ago in (3 * m, 50 * m, timedelta(hours=10)):
        retried_attempt(waiting, ago, now)
    this_hour = now.replace(minute=0, second=0)
    filtered(hook, this_hour, "no_trigger_matched", 4)
    filtered(hook, this_hour - timedelta(hours=3), "integrations_off", 2)
    filtered(hook, this_hour - timedelta(days=8), "no_trigger_matched", 9)
    # Noise: another destination's records.
    delivery(other_hook, Status.DELIVERED, ago=m, now=now)
    delivery(other_hook, Status.DEAD, ago=m, error_class="timeout", now=now)
    filtered(other_hook, this_hour, "destination_disabled", 7)
    retried_attempt(delivery(other_hook, Status.RETRYING, now=now), m, now)


EXPECTED = {
    "10m": {"delivered": 3, "retried": 1, "failed": {"client_error": 1}, "dead": {}, "filtered_total": 4},
    "1h": {"delivered": 5, "retried": 2, "failed": {"client_error": 1}, "dead": {"rate_limited": 1}},
    "24h": {
        "delivered": 6, "retried": 3, "failed": {"client_error": 2, "payload": 1}, "dead": {"rate_limited": 1},
        "filtered": {"no_trigger_matched": 4, "integrations_off": 2},
    },
    "7d": {
        "delivered": 7, "retried": 3, "failed": {"client_error": 2, "payload": 1},
        "dead": {"rate_limited": 1, "timeout": 1}, "filtered": {"no_trigger_matched": 4, "integrations_off": 2},
    },
}  # fmt: skip


def test_metrics_api_counts_each_window_from_the_delivery_records(alice_api, hook, history):
    response = alice_api.get(f"/api/v1/destinations/{hook.pk}/metrics/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["destination"] == hook.pk
    assert body["open"] == {"pending": 2, "retrying": 1}
    assert list(body["windows"]) == ["10m", "1h", "24h", "7d"]
    for name, expected in EXPECTED.items():
        window = body["windows"][name]
        assert window["delivered"] == expected["delivered"], name
        assert window["retried"] == expected["retried"], name
        assert window["failed"] == {"total": sum(expected["failed"].values()), "by_reason": expected["failed"]}, name
        assert window["dead_lettered"] == {"total": sum(expected["dead"].values()), "by_reason": expected["dead"]}
        if "filtered" in expected:
            assert window["filtered"]["by_reason"] == expected["filtered"], name
    # Filtered events are counted per hour: a window counts every hour it overlaps.
    assert body["windows"]["10m"]["filtered"]["total"] == 4
    assert body["windows"]["1h"]["filtered"]["by_reason"] == {"no_trigger_matched": 4}


def test_metrics_api_latency_percentiles_match_the_delivered_records(alice_api, hook, now):
    rng = random.Random(7)
    recent = [rng.randint(20, 4000) for _ in range(137)]
    older = [rng.randint(5000, 20000) for _ in range(41)]
    for latency in recent:
        delivery(hook, Status.DELIVERED, ago=timedelta(minutes=rng.randint(1, 9)), latency_ms=latency, now=now)
    for latency in older:
        delivery(hook, Status.DELIVERED, ago=timedelta(hours=rng.randint(2, 20)), latency_ms=latency, now=now)
    # Failed and dead deliveries have no delivery latency.
    delivery(hook, Status.DEAD, ago=timedelta(minutes=3), latency_ms=999_999, error_class="timeout", now=now)

    windows = alice_api.get(f"/api/v1/destinations/{hook.pk}/metrics/").json()["windows"]

    for name, values in (("10m", recent), ("1h", recent), ("24h", recent + older), ("7d", recent + older)):
        cuts = statistics.quantiles(values, n=20, method="inclusive")  # 5 %, 10 %, ..., 95 %
        assert windows[name]["latency_ms"]["p50"] == pytest.approx(cuts[9], abs=0.5), name
        assert windows[name]["latency_ms"]["p95"] == pytest.approx(cuts[18], abs=0.5), name


def test_metrics_api_latency_is_null_without_deliveries(alice_api, hook, now):
    delivery(hook, Status.DELIVERED, ago=timedelta(hours=2), latency_ms=100, now=now)
    windows = alice_api.get(f"/api/v1/destinations/{hook.pk}/metrics/").json()["windows"]
    assert windows["10m"]["latency_ms"] == {"p50": None, "p95": None}
    assert windows["10m"]["delivered"] == 0
    assert windows["24h"]["latency_ms"] == {"p50": pytest.approx(100, abs=0.5), "p95": pytest.approx(100, abs=0.5)}


def test_metrics_api_is_readable_by_every_member(make_user, alice_workspace, hook, history):
    reader = make_user("reader")
    Membership.objects.create(workspace=alice_workspace, user=reader, role=Role.READ_ONLY)
    response = api_client_for(reader).get(f"/api/v1/destinations/{hook.pk}/metrics/")
    assert response.status_code == 200
    assert response.json()["windows"]["7d"]["delivered"] == 7


# --- /metrics (Prometheus) ---------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def parse_exposition(text):
    """Parse the Prometheus text format strictly: HELP and TYPE before each family's samples, a family's
    samples together, label values escaped. Returns {name: [(labels, value)]}."""
    assert text.endswith("\n")
    families, typed, current = {}, {}, None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in families, f"{name} appears twice"
            families[name], current = [], name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name == current and kind in {"gauge", "counter", "summary"}
            typed[name] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, raw_labels, value = match.groups()
            assert name == current and name in typed, f"{name} is outside its family"
            labels, position = {}, 0
            for label in _LABEL.finditer(raw_labels):
                assert label.start() == position, f"bad labels: {raw_labels!r}"
                labels[label[1]] = label[2].replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
                position = label.end()
            assert position == len(raw_labels), f"bad labels: {raw_labels!r}"
            families[name].append((labels, float(value)))
    return families


def samples(families, name, destination, **labels):
    wanted = {"destination_id": str(destination.pk), **labels}
    return {
        tuple(sorted((k, v) for k, v in found.items() if k not in wanted)): value
        for found, value in families[name]
        if all(found.get(k) == v for k, v in wanted.items())
    }


def test_prometheus_metrics_match_the_api(client, alice_api, hook, other_hook, history):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = parse_exposition(response.content.decode())
    api = alice_api.get(f"/api/v1/destinations/{hook.pk}/metrics/").json()

    base = {("destination", "Hook"), ("workspace", "acme")}
    open_now = samples(families, "cdp_delivery_open", hook)
    assert open_now == {
        tuple(sorted({*base, ("status", "pending")})): 2,
        tuple(sorted({*base, ("status", "retrying")})): 1,
    }
    for name, window in api["windows"].items():
        outcomes = {
            (labels["status"], labels["reason"]): value
            for labels, value in families["cdp_delivery_outcomes"]
            if labels["destination_id"] == str(hook.pk) and labels["window"] == name
        }
        assert outcomes.pop(("delivered", "")) == window["delivered"]
        expected = {("failed", r): n for r, n in window["failed"]["by_reason"].items()}
        expected |= {("dead", r): n for r, n in window["dead_lettered"]["by_reason"].items()}
        assert outcomes == expected, name
        assert list(samples(families, "cdp_delivery_retries", hook, window=name).values()) == [window["retried"]]
        assert {
            dict(labels)["reason"]: value
            for labels, value in samples(families, "cdp_delivery_filtered", hook, window=name).items()
        } == window["filtered"]["by_reason"]
    # The other destination has its own series.
    assert samples(families, "cdp_delivery_outcomes", other_hook, window="10m", status="dead") == {
        tuple(sorted({("destination", "Other"), ("workspace", "acme"), ("reason", "timeout")})): 1
    }


def test_prometheus_latency_quantiles_are_the_api_figures_in_seconds(client, alice_api, hook, now):
    for latency in (120, 340, 560, 780, 1000):
        delivery(hook, Status.DELIVERED, ago=timedelta(minutes=4), latency_ms=latency, now=now)
    families = parse_exposition(client.get("/metrics").content.decode())
    api = alice_api.get(f"/api/v1/destinations/{hook.pk}/metrics/").json()["windows"]
    for name in ("10m", "7d"):
        quantiles = {
            dict(labels)["quantile"]: value
            for labels, value in samples(families, "cdp_delivery_latency_seconds", hook, window=name).items()
        }
        assert quantiles == {
            "0.5": pytest.approx(api[name]["latency_ms"]["p50"] / 1000),
            "0.95": pytest.approx(api[name]["latency_ms"]["p95"] / 1000),
        }
        assert quantiles["0.5"] == pytest.approx(0.56, abs=0.001)


def test_prometheus_latency_is_nan_without_deliveries(client, hook):
    families = parse_exposition(client.get("/metrics").content.decode())
    latency = samples(families, "cdp_delivery_latency_seconds", hook, window="1h")
    assert len(latency) == 2 and all(value != value for value in latency.values())  # NaN


def test_prometheus_label_values_are_escaped(client, source):
    odd = Destination.objects.create(workspace=source.workspace, name='Say "hi"\\ to\nme', type="webhook")
    families = parse_exposition(client.get("/metrics").content.decode())
    [(labels, value)] = [(labels, v) for labels, v in families["cdp_delivery_open"] if labels["status"] == "pending"]
    assert labels["destination"] == odd.name and value == 0


def test_prometheus_metrics_are_open_without_a_token(client, settings, hook):
    settings.CDP_METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200


def test_prometheus_metrics_need_the_bearer_token_when_one_is_set(client, settings, hook):
    settings.CDP_METRICS_TOKEN = "scrape-me-7f3a"
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert b"cdp_delivery" not in refused.content
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic scrape-me-7f3a").status_code == 401
    allowed = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-7f3a")
    assert allowed.status_code == 200 and b"cdp_delivery_open" in allowed.content


def test_prometheus_metrics_only_answer_reads(client, hook):
    assert client.post("/metrics").status_code == 405
