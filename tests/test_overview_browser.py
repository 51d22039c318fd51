"""The workspace overview, a source's live volume and its observed schema in headless Chromium against
the real server, with the demo data sent through the Tracking API and processed.

Screenshots go to var/test/screenshots/ (CDP_SCREENSHOT_DIR=docs/screenshots refreshes the documentation's
workspace.png and source-schema.png)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cdp.core.models import Destination
from cdp.delivery.models import Delivery, Status
from cdp.processing.processor import process_pending
from tests.support.delivery import post_batch
from tests.test_dashboard_browser import demo, fits_the_window, log_in, screenshot  # noqa: F401 - demo is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def add_delivered_webhook(source) -> Destination:
    """A destination with a day of deliveries made directly, so the health table has something to show."""
    hook = Destination.objects.create(workspace=source.workspace, name="Order webhook", type="webhook", enabled=True)
    now = timezone.now()
    for n in range(40):
        status = Status.DEAD if n == 0 else Status.DELIVERED
        finished = now - timedelta(minutes=5 + n * 20)
        Delivery.objects.create(
            destination=hook, event_id=n + 1, source_id=source.pk, message_id=f"m-{n}", action="send", payload={},
            status=status, received_at=finished - timedelta(milliseconds=80 + n * 7), created_at=finished,
            finished_at=finished, error_class="server_error" if status == Status.DEAD else "",
        )  # fmt: skip
    return hook


def test_overview_browser_shows_chart_health_and_tracked_users(cdp_server, demo, page):  # noqa: F811
    add_delivered_webhook(demo)
    log_in(page, cdp_server.url)
    page.wait_for_url(f"{cdp_server.url}/w/demo/")
    total = demo.events.count()
    assert int(page.get_by_test_id("events-24h").inner_text()) == total > 0
    # The demo has 3 visitors who signed up (userIds) and 3 who stayed anonymous.
    assert page.get_by_test_id("mtu").inner_text() == "6"
    day = page.get_by_test_id("chart-day")
    assert day.is_visible() and not page.get_by_test_id("chart-week").is_visible()
    assert day.locator("g.bar").count() == 24
    assert day.locator("g.bar").last.get_attribute("data-count") == str(total)
    assert day.locator("g.bar").last.get_attribute("aria-label").endswith(f"UTC: {total} events")
    row = page.get_by_test_id("health-row")
    assert row.get_by_test_id("health-delivered").inner_text() == "39"
    assert row.get_by_test_id("health-success").inner_text() == "97.5%"
    assert fits_the_window(page)
    screenshot(page, "workspace")

    page.get_by_role("tab", name="Last 7 days").click()
    week = page.get_by_test_id("chart-week")
    assert week.is_visible() and not day.is_visible()
    assert week.locator("g.bar").count() == 24 * 7


def test_overview_browser_live_volume_follows_new_events(cdp_server, demo, page):  # noqa: F811
    log_in(page, cdp_server.url)
    page.wait_for_url(f"{cdp_server.url}/w/demo/")
    page.goto(f"{cdp_server.url}/w/demo/sources/{demo.pk}/")
    page.wait_for_selector("#live-volume[data-state=live]", timeout=10_000)
    before = demo.events.count()
    assert page.get_by_test_id("volume-hour").inner_text() == str(before)
    assert page.locator("[data-testid=volume-chart] g.bar").count() == 60
    screenshot(page, "source")

    messages = [{"type": "track", "event": "Live Event", "userId": f"u-{n}"} for n in range(3)]
    assert post_batch(cdp_server.url, demo.write_key, messages) == 200
    process_pending()
    page.wait_for_function(
        f"() => document.querySelector('[data-testid=volume-hour]').textContent === '{before + 3}'", timeout=15_000
    )
    assert page.get_by_test_id("volume-empty").is_hidden()


def test_overview_browser_schema_lists_fields_and_filters_them(cdp_server, demo, page):  # noqa: F811
    log_in(page, cdp_server.url)
    page.wait_for_url(f"{cdp_server.url}/w/demo/")
    page.goto(f"{cdp_server.url}/w/demo/sources/{demo.pk}/")
    page.get_by_test_id("schema-link").click()
    page.wait_for_url(f"{cdp_server.url}/w/demo/sources/{demo.pk}/schema/")
    names = page.get_by_test_id("event-name").all_inner_texts()
    assert "Order Completed" in names and "Signed Up" in names and "Pricing" in names
    total = page.locator("tr[data-path='properties.total']")
    assert total.get_by_test_id("field-types").inner_text() == "number"
    assert fits_the_window(page)
    screenshot(page, "source-schema")

    page.get_by_test_id("schema-search").fill("currency")
    visible = [body for body in page.get_by_test_id("schema-event").all() if body.is_visible()]
    assert len(visible) == 1 and "Order Completed" in visible[0].inner_text()
    page.get_by_test_id("schema-search").fill("no-such-field")
    assert page.get_by_test_id("schema-no-match").is_visible()
