"""People pages in headless Chromium against the real server: an owner invites someone, who accepts in
another browser (a second context: no shared cookies) by creating an account; the audit log shows it all;
an API token is created, shown once and revoked.

Screenshots members.png, audit-log.png and tokens.png go to var/test/screenshots/ (CDP_SCREENSHOT_DIR
to put them elsewhere, e.g. docs/screenshots).
"""

from __future__ import annotations

import pytest

from cdp.core.models import ApiToken, Membership, Role
from tests.test_dashboard_browser import fits_the_window, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "pass-for-tests-1"


def log_in(page, url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def test_people_browser_invite_accept_in_another_browser_and_audit(cdp_server, browser, page, alice, source, bob):
    Membership.objects.create(workspace=source.workspace, user=bob, role=Role.READ_ONLY)
    log_in(page, cdp_server.url, "alice")
    page.goto(f"{cdp_server.url}/w/acme/members/")
    page.select_option("#id_role", "member")
    page.fill("#id_email", "nina@example.com")
    page.get_by_role("button", name="Create invitation link").click()
    link = page.get_by_test_id("invitation-link").inner_text()
    assert link.startswith(f"{cdp_server.url}/invite/")
    assert "nina@example.com" in page.get_by_test_id("invitations").inner_text()

    other = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        guest = other.new_page()
        guest.goto(link)
        assert guest.get_by_role("heading", name="Join Acme").is_visible()
        assert guest.locator("#id_email").input_value() == "nina@example.com"
        guest.fill("#id_username", "nina")
        guest.fill("#id_password1", "a-long-passphrase-for-nina")
        guest.fill("#id_password2", "a-long-passphrase-for-nina")
        guest.get_by_role("button", name="Create account and join").click()
        guest.wait_for_url(f"{cdp_server.url}/w/acme/")
        assert "Welcome to Acme: you joined as Member." in guest.locator(".flash").inner_text()
        guest.goto(link)
        assert "already used" in guest.get_by_test_id("invitation-problem").inner_text()
    finally:
        other.close()

    page.goto(f"{cdp_server.url}/w/acme/members/")
    nina = page.locator('tr[data-member="nina"]')
    assert "Member" in nina.inner_text()
    page.locator('tr[data-member="bob"] select').select_option("admin")
    page.locator('tr[data-member="bob"]').get_by_role("button", name="Save").click()
    assert "bob is now admin." in page.locator(".flash").inner_text()
    assert fits_the_window(page)
    screenshot(page, "members", full_page=True)

    page.goto(f"{cdp_server.url}/w/acme/audit-log/")
    entries = page.get_by_test_id("audit-entries").inner_text()
    for action in ("member.invited", "member.joined", "member.role_changed"):
        assert action in entries
    page.select_option("#id_actor", "nina")
    page.get_by_role("button", name="Filter").click()
    filtered = page.get_by_test_id("audit-entries").inner_text()
    assert "member.joined" in filtered and "member.invited" not in filtered
    page.get_by_role("link", name="Clear").click()
    assert fits_the_window(page)
    screenshot(page, "audit-log", full_page=True)


def test_people_browser_token_is_shown_once_and_revoked(cdp_server, page, alice, source):
    log_in(page, cdp_server.url, "alice")
    page.goto(f"{cdp_server.url}/w/acme/members/")
    page.get_by_role("link", name="Your API tokens").click()
    assert page.get_by_test_id("no-tokens").is_visible()
    page.fill("#id_name", "CI deploy")
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_test_id("token-secret").inner_text()
    assert secret.startswith("cdp_")
    ApiToken.issue(alice, "Old laptop script")
    page.fill("#id_name", "Reporting")
    page.get_by_role("button", name="Create token").click()
    assert secret not in page.content(), "a token is shown only once"
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator('tr[data-token="Old laptop script"]').get_by_role("button", name="Revoke").click()
    assert "revoked" in page.locator('tr[data-token="Old laptop script"]').inner_text()
    assert fits_the_window(page)
    screenshot(page, "tokens", full_page=True)
