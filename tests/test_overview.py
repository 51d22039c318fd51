"""The workspace overview and the source pages: volume counted while processing (per hour, per minute),
monthly tracked users, delivery health from the delivery metrics, setup per source kind, query counts."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from cdp.core.models import Destination, Membership, Role, Source
from cdp.delivery.metrics import collect
from cdp.delivery.models import Delivery, Status
from cdp.insights.models import MonthlyUsers, SourceHour
from tests.support.delivery import ingest

pytestmark = pytest.mark.django_db

_ids = count(1)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice_client(client, alice, alice_workspace):
    client.force_login(alice)
    return client


def send(source: Source, *messages: dict[str, Any], at: datetime | None = None) -> None:
    """Accept the messages as the Tracking API would (received at `at`) and run the processor."""
    ingest(source, *messages, at=at)


def track(user: str | None = "u1", anonymous: str | None = None, name: str = "Order Completed") -> dict[str, Any]:
    message: dict[str, Any] = {"type": "track", "event": name, "properties": {"n": next(_ids)}}
    if user:
        message["userId"] = user
    if anonymous:
        message["anonymousId"] = anonymous
    return message


def text(response) -> str:
    return html.unescape(response.content.decode())


def bar_titles(page: str, chart_id: str) -> list[str]:
    svg = page[page.index(f'data-testid="{chart_id}"') :]
    svg = svg[: svg.index("</svg>")]
    return re.findall(r"<g class=\"bar\"[^>]*><title>([^<]*)</title>", svg)


# --- Events per hour --------------------------------------------------------------------------------


def test_hourly_counts_follow_processed_events_and_skip_duplicates(source):
    backend = Source.objects.create(workspace=source.workspace, name="Backend")
    at = datetime(2026, 11, 23, 10, 59, 59, tzinfo=UTC)
    send(source, track(), track(), {**track(), "messageId": "same"}, at=at)
    send(source, {**track(), "messageId": "same"}, track(), at=at + timedelta(seconds=1))
    send(backend, track(), at=at)
    counts = {(row.source_id, row.hour.hour): row.count for row in SourceHour.objects.all()}
    assert counts == {(source.pk, 10): 3, (source.pk, 11): 1, (backend.pk, 10): 1}


def test_overview_chart_shows_the_events_of_each_hour(alice_client, source):
    now = timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    send(source, *[track() for _ in range(3)], at=hour + timedelta(seconds=1))
    send(source, *[track() for _ in range(5)], at=hour - timedelta(hours=2) + timedelta(minutes=5))
    send(source, track(), at=hour - timedelta(days=3))
    send(source, track(), at=hour - timedelta(days=8))  # older than the chart
    page = text(alice_client.get(reverse("dashboard:workspace", args=["acme"])))
    day = bar_titles(page, "chart-day")
    assert len(day) == 24
    assert day[-1] == f"{hour:%a %Y-%m-%d %H:%M}–{hour + timedelta(hours=1):%H:%M} UTC: 3 events"
    assert day[-3].endswith("UTC: 5 events") and day[-2].endswith("UTC: 0 events")
    week = bar_titles(page, "chart-week")
    assert len(week) == 24 * 7
    assert week[-1 - 72].endswith("UTC: 1 event")
    assert sum(int(re.search(r": (\d+) event", t).group(1)) for t in week) == 9
    assert 'data-testid="chart-day-total">8<' in page and 'data-testid="chart-week-total">9<' in page
    assert 'data-testid="events-24h">8<' in page


def test_sources_page_counts_the_last_24_hours_per_source(alice_client, source):
    backend = Source.objects.create(workspace=source.workspace, name="Backend")
    send(source, track(), track())
    send(backend, track(), at=timezone.now() - timedelta(days=2))
    response = alice_client.get(reverse("dashboard:sources", args=["acme"]))
    assert {s.name: s.events_24h for s in response.context["sources"]} == {"Backend": 0, "Website": 2}


# --- Live volume --------------------------------------------------------------------------------------


def test_source_volume_gives_events_per_minute_over_the_last_hour(alice_client, source):
    now = timezone.now()
    send(source, track(), track(), at=now)
    send(source, track(), at=now - timedelta(minutes=10))
    send(source, track(), at=now - timedelta(minutes=75))  # an hour ago and more: not shown
    data = alice_client.get(reverse("dashboard:source-volume", args=["acme", source.pk])).json()
    assert len(data["bars"]) == 60
    assert data["bars"][-1]["count"] == data["lastMinute"] == 2
    assert data["bars"][-11]["count"] == 1
    assert data["total"] == 3
    assert data["bars"][-1]["title"] == f"{now:%H:%M} UTC: 2 events"


def test_source_volume_reuses_the_slot_of_an_hour_ago(alice_client, source):
    now = timezone.now()
    send(source, track(), track(), track(), at=now - timedelta(minutes=60))
    send(source, track(), at=now)
    data = alice_client.get(reverse("dashboard:source-volume", args=["acme", source.pk])).json()
    assert data["total"] == 1 and data["lastMinute"] == 1


def test_source_page_shows_live_volume_and_schema_links(alice_client, source):
    page = text(alice_client.get(reverse("dashboard:source", args=["acme", source.pk])))
    assert reverse("dashboard:source-volume", args=["acme", source.pk]) in page
    assert reverse("dashboard:source-schema", args=["acme", source.pk]) in page


# --- Monthly tracked users -------------------------------------------------------------------------


def mtu(workspace, month: date | None = None) -> tuple[int, int]:
    month = month or date.today().replace(day=1)
    row = MonthlyUsers.objects.filter(workspace=workspace, month=month).first()
    return (row.users, row.anonymous) if row else (0, 0)


def test_mtu_counts_users_once_and_anonymous_ids_until_tied(source):
    workspace = source.workspace
    send(source, track("u1"), track("u1"), track(None, "anon-a"), track(None, "anon-a"), track(None, "anon-b"))
    assert mtu(workspace) == (1, 2)
    # anon-a logs in as u2: one person, counted once, as a user.
    send(source, {"type": "identify", "userId": "u2", "anonymousId": "anon-a", "traits": {}})
    assert mtu(workspace) == (2, 1)
    # Seen alone again later: still tied, still not counted.
    send(source, track(None, "anon-a"))
    assert mtu(workspace) == (2, 1)
    # An alias ties its previousId too; a track carrying both ids ties as well.
    send(source, {"type": "alias", "userId": "u3", "previousId": "anon-b"}, track("u1", "anon-c"))
    assert mtu(workspace) == (3, 0)
    send(source, track(None, "anon-c"))
    assert mtu(workspace) == (3, 0)
    # A batch that only ties (its user already counted) still takes the anonymous visitor off.
    send(source, track(None, "anon-d"))
    assert mtu(workspace) == (3, 1)
    send(source, track("u1", "anon-d"))
    assert mtu(workspace) == (3, 0)


def test_mtu_anonymous_id_identified_in_the_same_batch_is_never_counted(source):
    send(source, track(None, "anon-a"), {"type": "identify", "userId": "u1", "anonymousId": "anon-a"})
    assert mtu(source.workspace) == (1, 0)


def test_mtu_is_per_workspace_and_per_month(source, bob_workspace):
    bob_source = Source.objects.create(workspace=bob_workspace, name="Bob's site")
    last_month = (timezone.now().replace(day=1) - timedelta(days=1)).replace(hour=12)
    send(source, track("u1"), track(None, "anon-a"), at=last_month)
    send(source, track("u1"))
    send(bob_source, track("u1"), {"type": "identify", "userId": "u9", "anonymousId": "anon-a"})
    assert mtu(source.workspace, date(last_month.year, last_month.month, 1)) == (1, 1)
    assert mtu(source.workspace) == (1, 0)
    assert mtu(bob_workspace) == (2, 0)


def test_overview_shows_this_months_tracked_users(alice_client, source):
    send(source, track("u1"), track(None, "anon-a"), track(None, "anon-b"))
    page = text(alice_client.get(reverse("dashboard:workspace", args=["acme"])))
    assert 'data-testid="mtu">3<' in page
    assert "1 identified, 2 anonymous" in page


# --- Delivery health -------------------------------------------------------------------------------


def delivery(destination: Destination, status: str, finished_ago: timedelta | None, latency_ms: int = 200) -> None:
    now = timezone.now()
    finished = now - finished_ago if finished_ago is not None else None
    received = (finished or now) - timedelta(milliseconds=latency_ms)
    Delivery.objects.create(
        destination=destination, event_id=next(_ids), source_id=1, message_id=f"m-{next(_ids)}", action="send",
        payload={}, status=status, received_at=received, created_at=received, finished_at=finished,
        error_class="server_error" if status in (Status.FAILED, Status.DEAD) else "",
    )  # fmt: skip


def test_overview_delivery_health_matches_the_delivery_metrics(alice_client, source):
    hook = Destination.objects.create(workspace=source.workspace, name="Hook", type="webhook", enabled=True)
    quiet = Destination.objects.create(workspace=source.workspace, name="Quiet", type="webhook")
    for n in range(18):
        delivery(hook, Status.DELIVERED, timedelta(minutes=5), latency_ms=100 + n * 10)
    delivery(hook, Status.FAILED, timedelta(minutes=30))
    delivery(hook, Status.DEAD, timedelta(hours=2))
    delivery(hook, Status.DEAD, timedelta(days=3))
    delivery(hook, Status.PENDING, None)
    response = alice_client.get(reverse("dashboard:workspace", args=["acme"]))
    health = {row.destination.name: row for row in response.context["health"]}
    metrics = collect([hook.pk, quiet.pk])[hook.pk]
    day = metrics.windows["24h"]
    row = health["Hook"]
    assert (row.delivered, row.failed, row.dead_lettered) == (day.delivered, 1, 1) == (18, 1, 1)
    assert row.success_rate == pytest.approx(90.0)
    assert row.p95_ms == pytest.approx(day.latency_ms[0.95])
    assert (row.dead_letters_7d, row.open) == (2, 1)
    assert health["Quiet"].success_rate is None
    page = text(response)
    assert "90.0%" in page and f"{day.latency_ms[0.95]:.0f} ms" in page


def test_overview_without_destinations_says_where_to_add_one(alice_client, source):
    page = text(alice_client.get(reverse("dashboard:workspace", args=["acme"])))
    assert "No destinations yet" in page
    assert reverse("dashboard:destinations", args=["acme"]) in page


# --- Setup per kind ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "first_tab", "step"),
    [
        ("website", "Browser", "<head>"),
        ("server", "Python", "flush"),
        ("mobile", "iOS", "HTTPS"),
        ("other", "curl", "HTTP Basic"),
    ],
)
def test_source_page_setup_fits_the_source_kind(alice_client, alice_workspace, kind, first_tab, step):
    source = Source.objects.create(workspace=alice_workspace, name=f"A {kind}", kind=kind)
    response = alice_client.get(reverse("dashboard:source", args=["acme", source.pk]))
    assert response.context["snippets"][0][1] == first_tab
    page = text(response)
    steps = page[page.index('data-testid="setup-steps"') :]
    assert step in steps[: steps.index("</ol>")]
    assert all(source.write_key in code for *_, code in response.context["snippets"])


def test_mobile_setup_points_the_libraries_at_this_server(alice_client, alice_workspace):
    source = Source.objects.create(workspace=alice_workspace, name="App", kind="mobile")
    page = text(alice_client.get(reverse("dashboard:source", args=["acme", source.pk])))
    assert f'Configuration(writeKey: "{source.write_key}")' in page
    assert '.apiHost("testserver/v1")' in page and 'apiHost = "testserver/v1"' in page


# --- Roles and query counts -------------------------------------------------------------------------


def test_read_only_member_sees_the_overview_without_controls(client, make_user, source):
    reader = make_user("reader")
    Membership.objects.create(workspace=source.workspace, user=reader, role=Role.READ_ONLY)
    send(source, track())
    client.force_login(reader)
    page = text(client.get(reverse("dashboard:workspace", args=["acme"])))
    assert 'data-testid="events-24h">1<' in page
    assert reverse("dashboard:source-new", args=["acme"]) not in page
    source_page = text(client.get(reverse("dashboard:source", args=["acme", source.pk])))
    assert "Rotate write key" not in source_page
    assert client.get(reverse("dashboard:source-volume", args=["acme", source.pk])).status_code == 200


@pytest.fixture
def busy_workspace(alice_workspace):
    """60 sources with a week of hourly counts, destinations with deliveries, events and people."""
    sources = Source.objects.bulk_create(
        Source(workspace=alice_workspace, name=f"Source {n:02}", write_key=f"key-{n:02}") for n in range(60)
    )
    now = timezone.now()
    for n, source in enumerate(sources[:6]):
        send(source, *[track(f"u{m}", name=f"Event {m}") for m in range(40)], at=now - timedelta(hours=n * 20))
    SourceHour.objects.bulk_create(
        SourceHour(source=s, hour=now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=h), count=h)
        for s in sources[6:]
        for h in range(1, 168, 7)
    )
    for n in range(12):
        hook = Destination.objects.create(workspace=alice_workspace, name=f"Hook {n:02}", type="webhook")
        for _ in range(5):
            delivery(hook, Status.DELIVERED, timedelta(minutes=n + 1))
        delivery(hook, Status.DEAD, timedelta(hours=1))
    return sources[0]


@pytest.mark.parametrize("page", ["workspace", "sources", "source", "source-volume", "source-schema"])
def test_overview_pages_queries_do_not_grow_with_rows(
    alice_client, busy_workspace, page, django_assert_max_num_queries
):
    kwargs = {"slug": "acme"} if page in ("workspace", "sources") else {"slug": "acme", "source_id": busy_workspace.pk}
    # The workspace page: 3 for the session and membership, 4 for sources, counts, chart and latest events,
    # 1 for the destinations and 5 for their metrics (SQLite computes latency percentiles per window: 3 more).
    workspace = 14 if connection.vendor == "postgresql" else 17
    limit = {"workspace": workspace, "sources": 5, "source": 6, "source-volume": 5, "source-schema": 6}[page]
    with django_assert_max_num_queries(limit):
        response = alice_client.get(reverse(f"dashboard:{page}", kwargs=kwargs))
    assert response.status_code == 200


# --- Rebuilding from stored events ------------------------------------------------------------------


def test_rebuild_insights_counts_events_stored_before_the_aggregates_existed(alice_client, source):
    from django.core.management import call_command

    from tests.support.data import make_events

    make_events(source, 4, user_id="u-1")
    make_events(source, 2, type="page", user_id="u-1", received_at=timezone.now() - timedelta(days=3))
    send(source, track("u-2"))  # processed normally: counted once, not twice, after the rebuild
    call_command("rebuild_insights", "--batch", "3", stdout=open("/dev/null", "w"))
    response = alice_client.get(reverse("dashboard:workspace", args=["acme"]))
    assert response.context["events_24h"] == 5
    assert response.context["chart_week"].total == 7
    assert mtu(source.workspace) == (2, 0)  # u-1 once for its six events, u-2 once though also counted live
