"""The live debugger and the X-ray in headless Chromium, against the real server, a real Celery
worker, and events sent by the unchanged Segment library (segment-analytics-python)."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.test import Client as DjangoClient
from segment.analytics import Client

from cdp.core.models import Source
from cdp.delivery.engine import drain
from cdp.processing.models import Event
from cdp.processing.processor import process_pending
from tests.support import processes
from tests.support.delivery import webhook
from tests.support.processes import LiveServer, child_env
from tests.support.sink import Reply, Sink

pytestmark = [pytest.mark.usefixtures("fresh_lanes"), pytest.mark.browser, pytest.mark.slow]

# After the page says "live", web processes and workers learn within half a second that the source
# is watched (they re-read the watched set twice a second); only then do they publish.
PUBLISHERS_LEARN = 0.7


def screenshot(page, name: str) -> None:
    """For a look by eye: var/<CDP_VAR_DIR>/screenshots/."""
    folder = settings.VAR_DIR / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def log_in(page, server: LiveServer, user) -> None:
    client = DjangoClient()
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server.url}])


def open_debugger(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#debugger[data-state=live]", timeout=10_000)
    page.wait_for_timeout(PUBLISHERS_LEARN * 1000)


def segment_client(server: LiveServer, source: Source, errors: list) -> Client:
    return Client(source.write_key, host=server.url, on_error=lambda error, batch: errors.append(error))


def visible_rows(page, selector: str = "") -> list[str]:
    return page.locator(f"[data-testid=debug-row]{selector}:visible").all_inner_texts()


def wait_rows(page, count: int, selector: str = "", timeout: float = 20_000) -> None:
    page.wait_for_function(
        "([selector, count]) => document.querySelectorAll(`[data-testid=debug-row]${selector}:not([hidden])`).length"
        " >= count",
        arg=[selector, count],
        timeout=timeout,
    )


def test_source_debugger_shows_events_within_a_second_then_stored(cdp_server, celery_worker, page, alice, source):
    celery_worker(env=child_env(CDP_SWEEP_SECONDS="1"), beat=True)
    log_in(page, cdp_server, alice)
    open_debugger(page, f"{cdp_server.url}/w/acme/sources/{source.pk}/debugger/")
    assert page.get_by_test_id("empty").is_visible()

    errors: list = []
    analytics = segment_client(cdp_server, source, errors)
    analytics.track("user-a", "Order Completed", {"plan": "pro", "total": 42.5})
    analytics.identify("user-b", {"email": "bea@example.com"})
    analytics.page("user-c", "Docs", "Install")
    analytics.flush()
    sent = time.monotonic()
    wait_rows(page, 3, timeout=2_000)
    assert time.monotonic() - sent < 1.0, "the events took more than a second to show"
    assert errors == []

    rows = visible_rows(page)
    assert any("track" in row and "Order Completed" in row and "user-a" in row for row in rows)
    assert any("identify" in row and "user-b" in row for row in rows)
    assert any("page" in row and "Install" in row for row in rows)
    # The processor (the Celery worker) then reports each message stored, on the same row.
    wait_rows(page, 3, "[data-kind=stored]")
    assert len(visible_rows(page)) == 3

    page.get_by_text("Order Completed").click()
    assert '"plan": "pro"' in page.get_by_test_id("json").inner_text()
    page.get_by_role("tab", name="Raw").click()
    assert '"plan":"pro"' in page.get_by_test_id("json").inner_text()
    curl = page.get_by_test_id("curl").inner_text()
    assert curl.startswith(f"curl -X POST '{cdp_server.url}/v1/track'") and f"-u '{source.write_key}:'" in curl
    assert '"event":"Order Completed"' in curl and "messageId" not in curl
    event = Event.objects.get(source=source, event="Order Completed")
    assert page.get_by_test_id("xray-link").get_attribute("href") == f"/w/acme/events/{event.pk}/xray/"
    screenshot(page, "debugger-source")
    analytics.shutdown()


def test_source_debugger_filters_and_pause(cdp_server, page, alice, source):
    log_in(page, cdp_server, alice)
    open_debugger(page, f"{cdp_server.url}/w/acme/sources/{source.pk}/debugger/")
    errors: list = []
    analytics = segment_client(cdp_server, source, errors)
    analytics.track("user-a", "Order Completed", {"coupon": "SPRING"})
    analytics.track("user-b", "Signed Up")
    analytics.identify("user-b", {"email": "bea@example.com"})
    analytics.flush()
    wait_rows(page, 3, timeout=2_000)

    page.get_by_test_id("filter-type").select_option("identify")
    [identify] = visible_rows(page)
    assert identify.startswith("identify") and "user-b" in identify
    page.get_by_test_id("filter-type").select_option("")
    page.get_by_test_id("filter-event").fill("signed")
    assert len(visible_rows(page)) == 1 and "Signed Up" in visible_rows(page)[0]
    page.get_by_test_id("filter-event").fill("")
    page.get_by_test_id("filter-user").fill("user-b")
    assert len(visible_rows(page)) == 2
    page.get_by_test_id("filter-user").fill("")
    page.get_by_test_id("filter-text").fill("spring")
    assert len(visible_rows(page)) == 1 and "Order Completed" in visible_rows(page)[0]
    page.get_by_test_id("filter-text").fill("")
    assert len(visible_rows(page)) == 3

    page.get_by_test_id("pause").click()
    analytics.track("user-d", "While Paused")
    analytics.flush()
    page.wait_for_function("() => document.querySelector('[data-testid=held]').textContent.startsWith('1 ')")
    assert len(visible_rows(page)) == 3 and page.get_by_test_id("status").inner_text() == "paused"
    page.get_by_test_id("pause").click()
    wait_rows(page, 4, timeout=1_000)
    assert "While Paused" in visible_rows(page)[0]  # newest first
    assert page.get_by_test_id("skipped").inner_text() == "0"
    assert errors == []
    analytics.shutdown()


def test_source_debugger_reconnects_after_a_server_restart(cdp_server, page, alice, source, monkeypatch):
    log_in(page, cdp_server, alice)
    open_debugger(page, f"{cdp_server.url}/w/acme/sources/{source.pk}/debugger/")

    cdp_server.stop()
    page.wait_for_selector("#debugger[data-state=reconnecting]", timeout=10_000)
    monkeypatch.setattr(processes, "free_port", lambda: cdp_server.port)
    restarted = LiveServer()
    try:
        page.wait_for_selector("#debugger[data-state=live]", timeout=15_000)
        page.wait_for_timeout(PUBLISHERS_LEARN * 1000)
        analytics = segment_client(restarted, source, [])
        analytics.track("user-a", "After Restart")
        analytics.flush()
        wait_rows(page, 1, timeout=2_000)
        assert "After Restart" in visible_rows(page)[0]
        analytics.shutdown()
    finally:
        restarted.stop()


def test_destination_debugger_shows_the_error_and_the_scheduled_retry(cdp_server, celery_worker, page, alice, source):
    with Sink(default=Reply(500, body=b'{"error":"database is down"}')) as sink:
        hook = webhook(source.workspace, sink.url, name="Warehouse hook")
        celery_worker(env=child_env(CDP_SWEEP_SECONDS="1"), beat=True)
        log_in(page, cdp_server, alice)
        open_debugger(page, f"{cdp_server.url}/w/acme/destinations/{hook.pk}/debugger/")

        analytics = segment_client(cdp_server, source, [])
        analytics.track("user-a", "Order Completed", {"total": 42.5})
        analytics.flush()
        wait_rows(page, 1, "[data-status=retrying]", timeout=30_000)

        [row] = visible_rows(page)
        assert "Order Completed" in row and "#1" in row and "HTTP 500" in row and "retry at" in row
        screenshot(page, "debugger-destination")
        page.locator("[data-testid=debug-row]").first.click()
        detail = page.get_by_test_id("json").inner_text()
        assert "database is down" in detail and '"retryAt"' in detail
        assert sink.count() >= 1
        analytics.shutdown()


def test_xray_page_shows_the_whole_path_of_an_event(cdp_server, page, alice, source):
    with Sink(default=Reply(500, body=b'{"error":"try later"}')) as sink:
        hook = webhook(source.workspace, sink.url, name="Warehouse hook")
        analytics = segment_client(cdp_server, source, [])
        analytics.track("user-a", "Order Completed", {"total": 42.5})
        analytics.flush()
        analytics.shutdown()
        while process_pending().requests:
            pass
        drain(hook.pk)
        event = Event.objects.get(source=source)

        log_in(page, cdp_server, alice)
        page.goto(f"{cdp_server.url}/w/acme/xray/?message_id={event.message_id}")
        page.wait_for_url(f"{cdp_server.url}/w/acme/events/{event.pk}/xray/")

        assert page.get_by_test_id("xray-message-id").inner_text() == event.message_id
        assert page.get_by_test_id("xray-endpoint").inner_text() == "POST /v1/batch"
        assert '"event": "Order Completed"' in page.get_by_test_id("xray-sent").inner_text()
        assert '"receivedAt"' in page.get_by_test_id("xray-normalised").inner_text()
        assert page.get_by_test_id("xray-duplicate-count").inner_text() == "0"
        destination = page.get_by_test_id("xray-destination")
        assert "Warehouse hook" in destination.inner_text()
        assert page.get_by_test_id("xray-outcome").inner_text() == "retrying"
        assert page.get_by_test_id("xray-matched").inner_text() == "matched"
        assert page.get_by_test_id("xray-response-status").inner_text() == "500"
        assert page.get_by_test_id("xray-next-attempt").is_visible()
        assert "try later" in page.get_by_test_id("xray-attempt").inner_text()
        assert sink.url in page.get_by_test_id("xray-attempt").inner_text()
        screenshot(page, "xray")
