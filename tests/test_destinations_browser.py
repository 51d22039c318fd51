"""Connecting a webhook from the dashboard in headless Chromium, against the real server: find it in the
catalog by search and category, fill in its settings form, test the connection against a loopback
endpoint, enable it, and delete it after confirming.

Screenshots destination-catalog, destination-new and destination go where tests/test_dashboard_browser.py
puts its own (CDP_SCREENSHOT_DIR=docs/screenshots refreshes the ones in the documentation)."""

from __future__ import annotations

import pytest
from django.test import Client as DjangoClient

from cdp.core.models import Destination
from tests.support.sink import Sink
from tests.test_dashboard_browser import fits_the_window, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def log_in(page, server_url: str, user) -> None:
    client = DjangoClient()
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server_url}])


def visible_cards(page) -> list[str]:
    return page.locator(".catalog-card:visible h2").all_inner_texts()


def test_destinations_browser_search_catalog_add_test_and_enable_a_webhook(cdp_server, page, alice, source):
    log_in(page, cdp_server.url, alice)
    with Sink() as sink:
        page.goto(f"{cdp_server.url}/w/acme/destinations/")
        assert page.get_by_test_id("no-destinations").is_visible()
        page.get_by_role("link", name="Browse the catalog").click()
        page.wait_for_url(f"{cdp_server.url}/w/acme/destinations/catalog/")

        assert visible_cards(page) == ["PostgreSQL warehouse", "S3 archive", "Webhook"]
        screenshot(page, "destination-catalog")
        page.get_by_test_id("catalog-search").fill("http")
        assert visible_cards(page) == ["Webhook"]
        page.get_by_test_id("catalog-search").fill("no such tool")
        assert visible_cards(page) == [] and page.get_by_test_id("catalog-empty").is_visible()
        page.get_by_test_id("catalog-search").fill("")
        page.get_by_role("button", name="Storage").click()
        assert visible_cards(page) == ["S3 archive"]
        page.get_by_role("button", name="All").click()
        page.get_by_test_id("catalog-search").fill("webhook")
        page.get_by_role("link", name="Add Webhook").click()
        page.wait_for_url(f"{cdp_server.url}/w/acme/destinations/new/webhook/")

        assert not page.locator("#id_max_in_flight").is_visible()  # delivery options start collapsed
        page.fill("#id_name", "Order webhook")
        page.click("button[type=submit].primary")
        url_block = page.get_by_test_id("setting-url")
        assert url_block.get_by_role("alert").inner_text() == "URL is required."
        page.fill("#id_setting_url", sink.url)
        page.fill("#id_setting_signing_secret", "whsec-browser-1")
        page.get_by_label("Website").check()
        assert fits_the_window(page)
        screenshot(page, "destination-new", full_page=True)
        page.click("button[type=submit].primary")
        page.wait_for_url(f"{cdp_server.url}/w/acme/destinations/*/")

        destination = Destination.objects.get(name="Order webhook")
        assert destination.settings["url"] == sink.url and [s.name for s in destination.sources.all()] == ["Website"]
        assert "was added with 1 subscription" in page.locator(".flash").inner_text()
        assert page.get_by_test_id("destination-status").inner_text() == "disabled"
        assert page.locator("#id_setting_signing_secret").input_value() == ""

        page.get_by_test_id("test-connection").click()
        result = page.get_by_test_id("connection-result")
        assert "Connection works" in result.inner_text() and f"{sink.url} answered HTTP 200." in result.inner_text()
        assert sink.count() == 1

        page.get_by_test_id("toggle").click()
        assert page.get_by_test_id("destination-status").inner_text() == "enabled"
        assert page.get_by_test_id("toggle").inner_text() == "Disable"
        assert "Connection works" in page.get_by_test_id("connection-result").inner_text()  # still shown
        destination.refresh_from_db()
        assert destination.enabled
        assert fits_the_window(page)
        screenshot(page, "destination", full_page=True)

    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_test_id("delete-destination").click()
    assert Destination.objects.filter(pk=destination.pk).exists()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("delete-destination").click()
    page.wait_for_url(f"{cdp_server.url}/w/acme/destinations/")
    assert not Destination.objects.filter(pk=destination.pk).exists()
    assert page.get_by_test_id("no-destinations").is_visible()
