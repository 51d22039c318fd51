"""The dashboard in headless Chromium against the real server: log in as `setup_demo` makes you, find
the demo source and its write key, use the snippet tabs, copy and rotate.

Screenshots of the login, workspace and source pages go to var/test/screenshots/; set
CDP_SCREENSHOT_DIR=docs/screenshots to refresh the ones in the documentation.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.management import call_command

from cdp.core.models import Source
from cdp.processing.processor import process_pending
from tests.support.processes import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "demo-password-1"
SCREENSHOTS = ROOT / os.environ.get("CDP_SCREENSHOT_DIR", "var/test/screenshots")


@pytest.fixture
def demo(cdp_server):
    """What `setup_demo` makes, with the demo events sent through the Tracking API and processed."""
    call_command("setup_demo", "--password", PASSWORD, stdout=open(os.devnull, "w"))
    call_command("send_demo_events", "--url", cdp_server.url, stdout=open(os.devnull, "w"))
    process_pending()
    return Source.objects.get(workspace__slug="demo", name="Demo website")


def screenshot(page, name: str, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def fits_the_window(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def log_in(page, url: str) -> None:
    page.goto(f"{url}/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def test_dashboard_browser_demo_login_shows_the_source_and_its_write_key(cdp_server, demo, page):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{cdp_server.url}/")
    assert page.url.startswith(f"{cdp_server.url}/login/")
    assert page.get_by_role("heading", name="Log in").is_visible()
    screenshot(page, "login")

    page.fill("#id_username", "admin")
    page.fill("#id_password", "wrong-password")
    page.click("button[type=submit]")
    assert "Please enter a correct username and password" in page.locator("[role=alert]").inner_text()

    log_in(page, cdp_server.url)
    page.wait_for_url(f"{cdp_server.url}/w/demo/")
    assert page.locator("h1").inner_text() == "Demo"
    assert int(page.get_by_test_id("events-24h").inner_text()) == demo.events.count() > 0
    assert page.locator("table.events tbody tr").count() == 20
    assert fits_the_window(page)
    screenshot(page, "workspace")

    page.get_by_role("link", name="Demo website").first.click()
    page.wait_for_url(f"{cdp_server.url}/w/demo/sources/{demo.pk}/")
    assert page.get_by_test_id("write-key").inner_text() == demo.write_key
    assert f'analytics._writeKey = "{demo.write_key}"' in page.get_by_test_id("snippet-browser").inner_text()
    assert page.get_by_test_id("rotate-key").is_visible()  # the demo user is the workspace owner
    assert fits_the_window(page)
    screenshot(page, "source")
    screenshot(page, "source-full", full_page=True)


def test_dashboard_browser_snippet_tabs_copy_and_rotate(cdp_server, demo, page):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=cdp_server.url)
    log_in(page, cdp_server.url)
    page.wait_for_url(f"{cdp_server.url}/w/demo/")
    page.goto(f"{cdp_server.url}/w/demo/sources/{demo.pk}/")

    # One snippet at a time; each tab shows its own, with this server's address in it.
    assert page.get_by_test_id("snippet-browser").is_visible()
    assert not page.get_by_test_id("snippet-python").is_visible()
    page.get_by_role("tab", name="Python").click()
    python = page.get_by_test_id("snippet-python")
    assert python.is_visible() and not page.get_by_test_id("snippet-browser").is_visible()
    assert f'analytics.host = "{cdp_server.url}"' in python.inner_text()

    page.locator("#panel-python button.copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == python.inner_text()
    page.locator(".keyline button.copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == demo.write_key

    # Rotating asks first; dismissing keeps the key, accepting replaces it.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_test_id("rotate-key").click()
    page.wait_for_timeout(300)
    assert page.get_by_test_id("write-key").inner_text() == demo.write_key
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("rotate-key").click()
    page.wait_for_selector("text=The write key was rotated")
    demo.refresh_from_db()
    assert page.get_by_test_id("write-key").inner_text() == demo.write_key
    assert demo.write_key_rotated_at is not None


def test_dashboard_browser_new_user_goes_from_empty_workspace_to_a_source(cdp_server, page, make_user, make_workspace):
    make_workspace("startup", owner=make_user("newbie", password=PASSWORD))
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{cdp_server.url}/login/")
    page.fill("#id_username", "newbie")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{cdp_server.url}/w/startup/")
    assert page.get_by_role("heading", name="Add your first source").is_visible()
    screenshot(page, "workspace-empty")

    page.get_by_role("link", name="Add a source").click()
    page.fill("#id_name", "Marketing site")
    page.select_option("#id_kind", "website")
    screenshot(page, "source-new")
    page.get_by_role("button", name="Create source").click()
    page.wait_for_selector("text=Source “Marketing site” created")
    source = Source.objects.get(workspace__slug="startup", name="Marketing site")
    assert page.get_by_test_id("write-key").inner_text() == source.write_key
    assert page.get_by_test_id("no-events").is_visible()
    assert page.get_by_test_id("rotate-key").is_visible()  # the owner may rotate
