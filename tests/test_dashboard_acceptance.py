"""The dashboard's acceptance tests, in headless Chromium against the real server (uvicorn), a real Celery
worker and a loopback webhook endpoint:

- a new user logs in, adds a Webhook from the catalog, maps its payload with the live preview, saves through
  the what-if step, sends events with the unchanged segment-analytics-python library and sees them delivered
  on the destination's Delivery page, while the endpoint receives the mapped payloads;
- a read-only member walks every main page and finds nothing that changes anything, and the forms an owner
  sees on the same pages, replayed by the read-only member, are refused.

Screenshots of the journey go where tests/test_dashboard_browser.py puts its own (var/test/screenshots/;
CDP_SCREENSHOT_DIR=docs/screenshots refreshes the ones the README shows).
"""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client as DjangoClient
from django.urls import reverse
from django.utils import timezone
from segment.analytics import Client as SegmentClient

from cdp.core.members import invite
from cdp.core.models import AuditEntry, Destination, Invitation, Membership, Role, Source, SourceKind
from cdp.delivery.engine import drain
from cdp.delivery.jobs import start_replay
from cdp.delivery.models import Delivery, Status
from cdp.destinations.models import Subscription
from tests.support.delivery import ingest, track, webhook
from tests.support.processes import child_env
from tests.support.sink import OK, Reply, Sink
from tests.test_dashboard_browser import fits_the_window, screenshot

pytestmark = [pytest.mark.usefixtures("fresh_lanes"), pytest.mark.browser, pytest.mark.slow]

PASSWORD = "a-new-users-password-1"

# Every control that changes something is one of these; a read-only member must find none of them enabled.
CHANGING = re.compile(
    r"\b(add|edit|save|delete|remove|rotate|enable|disable|turn on|turn off|restore|invite|revoke|re-drive|replay"
    r"|rename|create)\b",
    re.IGNORECASE,
)


def wait_for_preview(page, status_starts: str) -> None:
    page.wait_for_function(
        "(start) => document.querySelector('[data-testid=preview-status]').textContent.startsWith(start)",
        arg=status_starts,
    )


def wait_for_shown(page, condition: str) -> None:
    """Until the preview shows a result for which the JS `condition` on `shown` holds."""
    page.wait_for_function(
        "() => { try { const shown = JSON.parse(document.querySelector('[data-testid=preview-payload]')"
        f".textContent); return Boolean({condition}); }} catch (e) {{ return false; }} }}"
    )


def preview_payload(page) -> Any:
    return json.loads(page.get_by_test_id("preview-payload").inner_text())


# --- The new user's journey ------------------------------------------------------------------------------


def test_new_user_connects_a_webhook_maps_it_and_sees_events_delivered(
    cdp_server, celery_worker, page, make_user, make_workspace
):
    worker = celery_worker(env=child_env(CDP_SWEEP_SECONDS="1"), beat=True)  # starts while the browser works
    grace = make_user("grace", password=PASSWORD)
    shop = make_workspace("shop", owner=grace)
    website = Source.objects.create(workspace=shop, name="Web shop", kind=SourceKind.WEBSITE)
    base = cdp_server.url

    with Sink() as sink:
        # Log in through the form: the only workspace opens.
        page.goto(f"{base}/")
        assert page.url.startswith(f"{base}/login/")
        page.fill("#id_username", "grace")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/w/shop/")

        # Destinations → the catalog → search → add the Webhook with the endpoint's URL.
        page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Destinations").click()
        page.wait_for_url(f"{base}/w/shop/destinations/")
        assert page.get_by_test_id("no-destinations").is_visible()
        page.get_by_role("link", name="Browse the catalog").click()
        page.wait_for_url(f"{base}/w/shop/destinations/catalog/")
        page.get_by_test_id("catalog-search").fill("webhook")
        assert page.locator(".catalog-card:visible h2").all_inner_texts() == ["Webhook"]
        screenshot(page, "journey-catalog")
        page.get_by_role("link", name="Add Webhook").click()
        page.wait_for_url(f"{base}/w/shop/destinations/new/webhook/")
        page.fill("#id_name", "Order events")
        page.fill("#id_setting_url", sink.url)
        page.get_by_label("Web shop").check()
        page.click("button[type=submit].primary")
        page.wait_for_url(f"{base}/w/shop/destinations/*/")
        destination = Destination.objects.get(workspace=shop, name="Order events")
        assert page.get_by_test_id("destination-status").inner_text() == "disabled"

        page.get_by_test_id("toggle").click()
        page.wait_for_selector("[data-testid=destination-status]:text-is('enabled')")
        assert fits_the_window(page)
        screenshot(page, "journey-destination", full_page=True)

        # Mappings → the preset subscription's editor: build the payload key by key, watch the preview.
        page.get_by_role("navigation", name="Order events").get_by_role("link", name="Mappings").click()
        page.wait_for_url(f"{base}/w/shop/destinations/{destination.pk}/mappings/")
        row = page.get_by_test_id("subscription-row")
        assert row.count() == 1
        row.get_by_role("link", name="Send Event").click()
        page.wait_for_url(f"{base}/w/shop/destinations/{destination.pk}/mappings/*/")
        wait_for_preview(page, "Matches")
        page.select_option("#preview-event", "sample:track")  # no events yet: the samples stand in
        wait_for_shown(page, "shown.payload.type === 'track'")  # the preset sends the whole event

        payload = page.get_by_test_id("field-payload")
        payload.locator("[data-mode]").select_option("object")
        keys = [("order", "properties.order_id"), ("total", "properties.total"), ("user", "userId")]
        for n, (key, path) in enumerate(keys):
            if n:
                payload.get_by_role("button", name="+ Add key").click()
            key_row = payload.locator("[data-key-row]").nth(n)
            key_row.locator("input[name='m.payload.key']").fill(key)
            key_row.locator("input[name='m.payload.kvalue']").fill(path)
        wait_for_shown(page, "shown.payload.user === 'user-42' && shown.payload.order === 'o-1001'")
        assert preview_payload(page)["payload"] == {"order": "o-1001", "total": 129.9, "user": "user-42"}
        assert page.get_by_test_id("preview-status").inner_text() == "Matches the trigger. This is what is sent:"
        page.evaluate("window.scrollTo(0, 0)")
        screenshot(page, "journey-mapping-preview", full_page=True)

        # Save: the what-if comes first; only confirming saves version 2.
        page.get_by_test_id("save").click()
        dialog = page.locator("dialog[data-what-if]")
        dialog.wait_for(state="visible")
        assert "No events from this destination's sources are stored yet" in dialog.inner_text()
        assert Subscription.objects.get(destination=destination).version == 1
        screenshot(page, "journey-what-if")
        dialog.get_by_test_id("confirm-save").click()
        page.wait_for_selector("text=Saved as version 2.")
        subscription = Subscription.objects.get(destination=destination)
        assert subscription.mapping == {
            "payload": {
                "order": {"@path": "properties.order_id"},
                "total": {"@path": "properties.total"},
                "user": {"@path": "userId"},
            }
        }

        # Send events the way an app does, with the write key shown on the source's page.
        page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Sources").click()
        page.get_by_role("link", name="Web shop").first.click()
        page.wait_for_url(f"{base}/w/shop/sources/{website.pk}/")
        write_key = page.get_by_test_id("write-key").inner_text()
        errors: list[Exception] = []
        client = SegmentClient(write_key, host=base, on_error=lambda error, batch: errors.append(error))
        for n in range(1, 4):
            client.track(f"customer-{n}", "Order Completed", {"order_id": f"o-{n}", "total": 10.5 * n})
        client.shutdown()
        assert errors == []

        # The destination's Delivery page shows them delivered (reloaded until the worker is done).
        page.goto(f"{base}/w/shop/destinations/{destination.pk}/")
        page.get_by_role("navigation", name="Order events").get_by_role("link", name="Delivery").click()
        page.wait_for_url(f"{base}/w/shop/destinations/{destination.pk}/delivery/")
        deadline = time.monotonic() + 60
        while page.locator("[data-testid=delivery-row]:has-text('Delivered')").count() < 3:
            assert time.monotonic() < deadline, f"not delivered in time; worker log:\n{worker.log()[-3000:]}"
            page.wait_for_timeout(1000)
            page.reload()
        rows = page.get_by_test_id("delivery-row")
        assert rows.count() == 3
        assert all("Order Completed" in text for text in rows.all_inner_texts())
        assert page.get_by_test_id("figure-delivered").locator("td").nth(1).inner_text() == "3"
        assert page.get_by_test_id("no-errors").is_visible()
        assert fits_the_window(page)
        screenshot(page, "journey-delivered", full_page=True)

        received = sorted((request.json() for request in sink.requests), key=lambda body: body["order"])
        assert received == [
            {"order": "o-1", "total": 10.5, "user": "customer-1"},
            {"order": "o-2", "total": 21.0, "user": "customer-2"},
            {"order": "o-3", "total": 31.5, "user": "customer-3"},
        ]

    # The overview counts them too.
    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Shop").click()
    page.wait_for_url(f"{base}/w/shop/")
    assert page.get_by_test_id("events-24h").inner_text() == "3"
    screenshot(page, "journey-overview", full_page=True)

    actions = set(AuditEntry.objects.filter(workspace=shop).values_list("action", flat=True))
    assert {"destination.created", "destination.enabled", "subscription.updated"} <= actions


# --- A read-only member ----------------------------------------------------------------------------------


def log_in(page, server_url: str, user) -> None:
    client = DjangoClient()
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server_url}])


@pytest.fixture
def busy_workspace(cdp_server, alice, source) -> dict[str, Any]:
    """Alice's workspace with everything its pages can show: a webhook with deliveries and dead letters, a
    finished job, a pending invitation."""
    with Sink(default=Reply(503, body=b'{"error":"down"}')) as sink:
        hook = webhook(source.workspace, sink.url, name="Orders webhook", sources=[source], retry_hours=0)
        ingest(source, track(), track())
        drain(hook.pk)
        sink.default = OK
        ingest(source, track(), track(event="Signed Up"))
        drain(hook.pk)
    dead = Delivery.objects.filter(destination=hook, status=Status.DEAD).first()
    assert dead is not None
    now = timezone.now()
    job = start_replay(hook, source.pk, now + timedelta(days=1), now + timedelta(days=2), user=alice, via="dashboard")
    owner = Membership.objects.get(workspace=source.workspace, user=alice)
    invite(owner, Role.MEMBER, "dave@example.com", via="dashboard")
    return {"destination": hook, "subscription": hook.subscriptions.get(), "dead": dead, "job": job}


def main_pages(source: Source, objects: dict[str, Any]) -> dict[str, str]:
    slug = source.workspace.slug
    destination = objects["destination"].pk
    return {
        "overview": reverse("dashboard:workspace", args=[slug]),
        "sources": reverse("dashboard:sources", args=[slug]),
        "source": reverse("dashboard:source", args=[slug, source.pk]),
        "destinations": reverse("dashboard:destinations", args=[slug]),
        "destination settings": reverse("dashboard:destination", args=[slug, destination]),
        "mappings": reverse("dashboard:destination-mappings", args=[slug, destination]),
        "subscription editor": reverse("dashboard:subscription", args=[slug, destination, objects["subscription"].pk]),
        "versions": reverse("dashboard:subscription-versions", args=[slug, destination, objects["subscription"].pk]),
        "delivery": reverse("dashboard:destination-delivery", args=[slug, destination]),
        "dead letters": reverse("dashboard:destination-dead-letters", args=[slug, destination]),
        "dead letter": reverse("dashboard:dead-letter", args=[slug, destination, objects["dead"].pk]),
        "jobs": reverse("dashboard:jobs", args=[slug]),
        "job": reverse("dashboard:job", args=[slug, objects["job"].pk]),
        "members": reverse("dashboard:members", args=[slug]),
        "workspace settings": reverse("dashboard:workspace-settings", args=[slug]),
        "audit log": reverse("dashboard:audit-log", args=[slug]),
        "debugger": reverse("dashboard:debugger", args=[slug]),
        "source debugger": reverse("dashboard:source-debugger", args=[slug, source.pk]),
    }


# The POST forms of a page (but logging out), as the browser would submit them.
POST_FORMS = """() => Array.from(document.forms)
  .filter((form) => (form.getAttribute("method") || "get").toLowerCase() === "post")
  .map((form) => ({
    // Not form.action: an input named "action" (the mapping editor has one) hides it.
    action: new URL(form.getAttribute("action") || location.href, location.href).href,
    fields: Array.from(new FormData(form)).filter(([, value]) => typeof value === "string"),
  }))
  .filter((form) => !form.action.endsWith("/logout/"))"""

# Buttons and button-like links that are there to be used (not disabled).
CONTROLS = """() => Array.from(document.querySelectorAll("button, input[type=submit], a.button"))
  .filter((el) => !el.disabled && !el.closest("form.account"))
  .map((el) => (el.innerText || el.value || el.getAttribute("aria-label") || "").trim())"""

# Submit a replayed form with the current user's own CSRF token, so that only the role check can refuse it.
REPLAY = """async ({action, fields}) => {
  const token = document.querySelector("form.account [name=csrfmiddlewaretoken]").value;
  const body = new URLSearchParams(fields.map(([k, v]) => [k, k === "csrfmiddlewaretoken" ? token : v]));
  const response = await fetch(action, {method: "POST", body, redirect: "manual", credentials: "same-origin"});
  return {status: response.status, text: await response.text()};
}"""


def test_read_only_member_finds_nothing_to_change_and_replayed_posts_are_refused(
    cdp_server, browser, page, alice, source, make_user, busy_workspace
):
    reader = make_user("rita")
    reading = Membership.objects.create(workspace=source.workspace, user=reader, role=Role.READ_ONLY)
    pages = main_pages(source, busy_workspace)
    own_leave = reverse("dashboard:member-remove", args=[source.workspace.slug, reading.pk])

    log_in(page, cdp_server.url, reader)
    for name, path in pages.items():
        response = page.goto(f"{cdp_server.url}{path}")
        assert response.status == 200, f"{name}: {response.status}"
        assert page.locator(".badge.role").inner_text() == "Read-only"
        forms = [form for form in page.evaluate(POST_FORMS) if not form["action"].endswith(own_leave)]
        assert forms == [], f"{name} offers a read-only member forms that change something: {forms}"
        controls = [text for text in page.evaluate(CONTROLS) if CHANGING.search(text)]
        assert controls == [], f"{name} offers a read-only member controls: {controls}"
        if name in ("destination settings", "subscription editor"):
            screenshot(page, f"read-only-{name.replace(' ', '-')}", full_page=True)

    # The owner's forms on the same pages, replayed by the read-only member: every one is refused.
    owner_context = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        owner_page = owner_context.new_page()
        log_in(owner_page, cdp_server.url, alice)
        owner_forms: dict[str, dict[str, Any]] = {}
        for path in pages.values():
            owner_page.goto(f"{cdp_server.url}{path}")
            for form in owner_page.evaluate(POST_FORMS):
                if not form["action"].endswith(own_leave):  # removing the reader: leaving is the reader's right
                    owner_forms.setdefault(form["action"], form)
    finally:
        owner_context.close()
    replayed = {action.removeprefix(cdp_server.url) for action in owner_forms}
    slug, destination = source.workspace.slug, busy_workspace["destination"].pk
    assert {
        reverse("dashboard:rotate-key", args=[slug, source.pk]),
        reverse("dashboard:destination-toggle", args=[slug, destination]),
        reverse("dashboard:destination-delete", args=[slug, destination]),
        reverse("dashboard:subscription", args=[slug, destination, busy_workspace["subscription"].pk]),
        reverse("dashboard:dead-letter-redrive", args=[slug, destination]),
        reverse("dashboard:invitation-new", args=[slug]),
    } <= replayed, replayed

    before = workspace_state(source)
    page.goto(f"{cdp_server.url}{pages['overview']}")
    for action, form in owner_forms.items():
        answer = page.evaluate(REPLAY, form)
        assert answer["status"] == 403, f"{action}: {answer['status']}"
        assert "Not allowed" in answer["text"], f"{action} was refused for another reason than the role"
    assert workspace_state(source) == before


def workspace_state(source: Source) -> tuple:
    """What any change through the dashboard would leave a trace in."""
    workspace = source.workspace
    return (
        list(Source.objects.filter(workspace=workspace).values_list("id", "name", "write_key", "enabled")),
        list(Destination.objects.filter(workspace=workspace).values_list("id", "name", "enabled", "settings")),
        list(Subscription.objects.filter(destination__workspace=workspace).values_list("id", "version", "enabled")),
        list(Delivery.objects.filter(destination__workspace=workspace).values_list("id", "status", "attempts")),
        list(Membership.objects.filter(workspace=workspace).values_list("id", "role")),
        list(Invitation.objects.filter(workspace=workspace).values_list("id", "revoked_at")),
        AuditEntry.objects.filter(workspace=workspace).count(),
    )
