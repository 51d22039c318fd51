"""The mapping editor in headless Chromium against the real server: build a trigger, pick event fields,
watch the live preview, see the what-if before saving, then the version history."""

from __future__ import annotations

import pytest
from django.test import Client as DjangoClient

from cdp.core.models import Membership, Role
from cdp.destinations.models import Subscription
from cdp.destinations.services import create_destination
from tests.support.delivery import ingest, track
from tests.support.processes import LiveServer
from tests.test_dashboard_browser import fits_the_window, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def log_in(page, server: LiveServer, user) -> None:
    client = DjangoClient()
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server.url}])


@pytest.fixture
def subscription(cdp_server, alice, source) -> Subscription:
    destination = create_destination(
        source.workspace, name="Orders hook", type_key="webhook", settings={"url": "http://127.0.0.1:9/"}, user=alice
    )
    ingest(
        source,
        track(userId="user-1", properties={"total": 42.5, "currency": "EUR"}),
        track(event="Cart Viewed", userId="user-2", properties={"items": 3}),
        {"type": "identify", "userId": "user-3", "messageId": "identify-1", "traits": {"email": "ada@example.com"}},
    )
    return destination.subscriptions.get()


def editor_url(server: LiveServer, subscription: Subscription) -> str:
    return f"{server.url}/w/acme/destinations/{subscription.destination_id}/mappings/{subscription.pk}/"


def preview_text(page) -> str:
    return page.get_by_test_id("preview-payload").inner_text()


def test_build_trigger_pick_fields_preview_and_save_after_what_if(cdp_server, page, alice, subscription):
    log_in(page, cdp_server, alice)
    page.goto(editor_url(cdp_server, subscription))
    status = page.get_by_test_id("preview-status")
    page.wait_for_function("document.querySelector('[data-testid=preview-status]').textContent.startsWith('Matches')")
    assert '"type": "identify"' in preview_text(page), "the latest event, the identify, goes as a whole event"

    # The builder shows the preset's trigger as one row; replace it with a condition on the event name.
    rows = page.get_by_test_id("condition-row")
    assert rows.count() == 1
    assert rows.first.locator("[data-cond-field]").input_value() == "type"
    rows.first.get_by_role("button", name="Remove this condition").click()
    page.get_by_role("button", name="+ Add condition").click()
    row = rows.first
    row.locator("[data-cond-field]").fill("event")
    row.locator("[data-cond-op]").select_option("=")
    row.locator("[data-cond-value]").fill("Order Completed")
    assert page.locator("#id_trigger").input_value() == 'event = "Order Completed"'
    page.wait_for_function(
        "document.querySelector('[data-testid=preview-status]').textContent.startsWith('Does not match')"
    )

    # Preview on the stored order, then map the payload key by key with fields picked from the schema.
    order = page.locator("#preview-event option", has_text="Order Completed").first.get_attribute("value")
    page.select_option("#preview-event", order)
    page.wait_for_function("document.querySelector('[data-testid=preview-status]').textContent.startsWith('Matches')")
    payload = page.get_by_test_id("field-payload")
    payload.locator("[data-mode]").select_option("object")
    first_key = payload.locator("[data-key-row]").first
    first_key.locator("[data-pick]").select_option("properties.total")
    assert first_key.locator("input[name='m.payload.key']").input_value() == "total"
    payload.get_by_role("button", name="+ Add key").click()
    second_key = payload.locator("[data-key-row]").nth(1)
    second_key.locator("input[name='m.payload.key']").fill("currency")
    second_key.locator("[data-pick]").select_option("properties.currency")
    page.wait_for_function(
        "JSON.stringify(Object.keys(JSON.parse(document.querySelector('[data-testid=preview-payload]').textContent)"
        '.payload).sort()) === \'["currency","total"]\''
    )
    assert status.inner_text() == "Matches the trigger. This is what is sent:"
    assert fits_the_window(page)
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "mapping-editor", full_page=True)

    # Save shows the what-if first; nothing is saved until it is confirmed.
    page.get_by_test_id("save").click()
    dialog = page.locator("dialog[data-what-if]")
    dialog.wait_for(state="visible")
    summary = dialog.get_by_test_id("what-if-summary").inner_text()
    assert summary.startswith("3 of the last 3 stored events would be sent differently")
    assert dialog.get_by_text("no longer sent").count() == 2
    subscription.refresh_from_db()
    assert subscription.version == 1
    screenshot(page, "mapping-what-if")
    dialog.get_by_test_id("confirm-save").click()
    page.wait_for_selector("text=Saved as version 2.")
    subscription.refresh_from_db()
    assert subscription.trigger == 'event = "Order Completed"'
    assert subscription.mapping == {
        "payload": {"total": {"@path": "properties.total"}, "currency": {"@path": "properties.currency"}}
    }

    page.get_by_role("link", name="Mappings").click()
    row = page.get_by_test_id("subscription-row")
    assert row.count() == 1 and 'event = "Order Completed"' in row.inner_text() and "v2" in row.inner_text()
    screenshot(page, "mappings")
    row.get_by_role("link", name="Send Event").click()
    page.get_by_test_id("versions-link").click()
    page.wait_for_selector("[data-testid=version][data-version='2']")
    assert "by alice" in page.locator("[data-version='2']").inner_text()
    assert page.locator("[data-version='2'] td.mono", has_text="mapping.payload").count() >= 1
    screenshot(page, "mapping-versions", full_page=True)


def test_typed_condition_updates_the_builder_and_shows_parse_errors(cdp_server, page, alice, subscription):
    log_in(page, cdp_server, alice)
    page.goto(editor_url(cdp_server, subscription))
    page.wait_for_function("document.querySelector('[data-testid=preview-status]').textContent.startsWith('Matches')")
    page.fill("#id_trigger", 'type = "identify" or traits.email exists')
    page.wait_for_function("document.querySelectorAll('[data-testid=condition-row]').length === 2")
    assert page.locator("[data-join]").input_value() == "any"
    assert page.get_by_test_id("condition-row").nth(1).locator("[data-cond-op]").input_value() == "exists"

    page.fill("#id_trigger", "properties.total => 100")
    error = page.get_by_test_id("trigger-error")
    error.wait_for(state="visible")
    assert error.inner_text().startswith("expected a field or a value, found '>' at offset 18")
    assert page.locator("[data-builder-note]").is_visible()

    # Without the what-if confirmation nothing is saved; the server refuses the broken trigger anyway.
    page.get_by_test_id("save").click()
    page.wait_for_selector("[data-testid=trigger-error]:visible")
    subscription.refresh_from_db()
    assert subscription.version == 1


def test_read_only_member_sees_the_mapping_without_controls(cdp_server, page, make_user, subscription):
    reader = make_user("rita")
    Membership.objects.create(workspace=subscription.destination.workspace, user=reader, role=Role.READ_ONLY)
    log_in(page, cdp_server, reader)
    page.goto(editor_url(cdp_server, subscription))
    assert page.get_by_test_id("read-only").is_visible()
    assert page.locator("#id_trigger").is_disabled()
    assert page.locator("[name='m.payload.value']").input_value() == "$"
    assert page.locator("[name='m.payload.json']").is_hidden(), "only the part holding the value is shown"
    assert page.get_by_test_id("save").count() == 0 and page.locator("[data-preview]").count() == 0
    assert page.get_by_role("button", name="+ Add condition").count() == 0


def test_without_javascript_the_form_still_saves(cdp_server, browser, alice, subscription):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 860})
    try:
        page = context.new_page()
        log_in(page, cdp_server, alice)
        page.goto(editor_url(cdp_server, subscription))
        assert page.locator("[data-builder]").is_hidden() and page.locator("[data-preview]").is_hidden()
        page.fill("#id_trigger", 'type = "identify"')
        page.select_option("[name='m.payload.mode']", "object")
        page.locator("[name='m.payload.key']").first.fill("email")
        page.locator("[name='m.payload.kvalue']").first.fill("traits.email")
        page.get_by_test_id("save").click()
        page.wait_for_selector("text=Saved as version 2.")
    finally:
        context.close()
    subscription.refresh_from_db()
    assert subscription.trigger == 'type = "identify"'
    assert subscription.mapping == {"payload": {"email": {"@path": "traits.email"}}}
