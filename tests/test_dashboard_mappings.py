"""The mapping editor pages: subscriptions list, editing with errors next to the fields, live preview,
what-if before saving, versions with diff and restore, roles and audit entries."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone

from cdp.core.models import AuditEntry, Destination, Membership, Role, Source
from cdp.destinations.framework import Action, ActionField
from cdp.destinations.models import Subscription, SubscriptionVersion
from cdp.destinations.services import create_destination, save_subscription
from cdp.processing.models import Event
from dashboard import mapping_editor as editor
from tests.support.delivery import ingest, track

pytestmark = pytest.mark.django_db

_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def destination(source: Source, alice: Any) -> Destination:
    return create_destination(
        source.workspace,
        name="Orders hook",
        type_key="webhook",
        settings={"url": "http://127.0.0.1:9/hook"},
        user=alice,
    )


@pytest.fixture
def subscription(destination: Destination) -> Subscription:
    return destination.subscriptions.get()


def stored(source: Source, payload: dict[str, Any]) -> Event:
    """An event as the processor stores it, with the payload given."""
    n = next(_ids)
    message_id = payload.setdefault("messageId", f"m-{n}")
    payload.setdefault("userId", "user-1")
    now = timezone.now()
    return Event.objects.create(
        source=source, type=payload["type"], event=payload.get("event", ""), user_id=payload["userId"],
        message_id=message_id, timestamp=now, received_at=now, intake_id=n, payload=payload,
    )  # fmt: skip


def order(source: Source, total: float, email: str = "ada@example.com") -> Event:
    return stored(
        source,
        {
            "type": "track",
            "event": "Order Completed",
            "properties": {"total": total},
            "context": {"traits": {"email": email}},
        },
    )


def url(name: str, subscription: Subscription | None = None, destination: Destination | None = None) -> str:
    destination = destination or subscription.destination
    kwargs = {"slug": destination.workspace.slug, "destination_id": destination.pk}
    if subscription is not None:
        kwargs["subscription_id"] = subscription.pk
    return reverse(f"dashboard:{name}", kwargs=kwargs)


def editor_form(**overrides: str) -> dict[str, Any]:
    form = {
        "name": "Orders",
        "action": "send",
        "trigger": 'type = "track" and event = "Order Completed"',
        "m.payload.mode": "object",
        "m.payload.key": ["email", "total", "source"],
        "m.payload.kmode": ["path", "path", "literal"],
        "m.payload.kvalue": ["context.traits.email", "properties.total", "cdp"],
    }
    form.update(overrides)
    return form


ORDERS_MAPPING = {
    "payload": {"email": {"@path": "context.traits.email"}, "total": {"@path": "properties.total"}, "source": "cdp"}
}


def text(response: Any) -> str:
    return response.content.decode()


def field_section(response: Any, key: str) -> str:
    """The HTML of one action field's row in the editor, where its errors must show."""
    match = re.search(
        rf'<div class="field-row[^"]*"[^>]*data-testid="field-{key}">(.*?)<div data-live-errors>', text(response), re.S
    )
    assert match, f"no row for field {key}"
    return match.group(1)


# --- List ---------------------------------------------------------------------------------------------


def test_list_shows_subscriptions_with_trigger_status_and_version(client, alice, subscription):
    client.force_login(alice)
    response = client.get(url("destination-mappings", destination=subscription.destination))
    assert response.status_code == 200
    body = text(response)
    assert "Send Event" in body
    assert "type in [&quot;identify&quot;" in body
    assert ">v1<" in body
    assert 'data-testid="add-subscription"' in body
    assert 'aria-current="page">Mappings<' in body


def test_list_without_subscriptions_says_what_to_do(client, alice, subscription):
    subscription.delete()
    client.force_login(alice)
    response = client.get(url("destination-mappings", destination=subscription.destination))
    assert "No subscriptions yet" in text(response)
    assert "this destination receives nothing" in text(response)


def test_list_queries_do_not_grow_with_subscriptions(client, alice, destination, django_assert_max_num_queries):
    Subscription.objects.bulk_create(
        Subscription(destination=destination, name=f"Sub {n}", action="send", trigger="true", mapping={})
        for n in range(60)
    )
    client.force_login(alice)
    with django_assert_max_num_queries(8):
        response = client.get(url("destination-mappings", destination=destination))
    assert text(response).count('data-testid="subscription-row"') == 61


def test_versions_page_queries_do_not_grow_with_versions(client, alice, subscription, django_assert_max_num_queries):
    for n in range(60):
        save_subscription(subscription, {"trigger": f"properties.total > {n}"}, alice)
    client.force_login(alice)
    with django_assert_max_num_queries(8):
        response = client.get(url("subscription-versions", subscription))
    assert text(response).count('data-testid="version"') == 61


# --- Editor -------------------------------------------------------------------------------------------


def test_editor_shows_object_mapping_as_key_rows(client, alice, subscription):
    save_subscription(subscription, {"mapping": ORDERS_MAPPING}, alice)
    client.force_login(alice)
    response = client.get(url("subscription", subscription))
    section = field_section(response, "payload")
    assert 'value="object" selected' in section
    assert 'value="context.traits.email"' in section
    assert 'value="properties.total"' in section
    assert 'value="cdp"' in section


def test_editor_offers_fields_seen_in_recent_events(client, alice, subscription, source):
    order(source, 42.5)
    client.force_login(alice)
    body = text(client.get(url("subscription", subscription)))
    assert '<option value="properties.total">number</option>' in body
    assert '<option value="context.traits.email">string</option>' in body


def test_save_makes_a_new_version_with_an_audit_entry(client, alice, subscription):
    client.force_login(alice)
    response = client.post(url("subscription", subscription), editor_form())
    assert response.status_code == 302
    subscription.refresh_from_db()
    assert subscription.version == 2
    assert subscription.trigger == 'type = "track" and event = "Order Completed"'
    assert subscription.mapping == ORDERS_MAPPING
    version = SubscriptionVersion.objects.get(subscription=subscription, version=2)
    assert version.created_by == alice and version.snapshot["mapping"] == ORDERS_MAPPING
    entry = AuditEntry.objects.get(action="subscription.updated")
    assert (entry.actor, entry.via, entry.target_id) == (alice, "dashboard", str(subscription.pk))
    assert entry.changes["trigger"][1] == subscription.trigger
    assert "Saved as version 2" in text(client.get(response.url))


def test_saving_without_changes_keeps_the_version(client, alice, subscription):
    client.force_login(alice)
    client.post(url("subscription", subscription), editor_form())
    response = client.post(url("subscription", subscription), editor_form(), follow=True)
    subscription.refresh_from_db()
    assert subscription.version == 2
    assert "Nothing changed" in text(response)
    assert AuditEntry.objects.filter(action="subscription.updated").count() == 1


def test_fixed_values_template_and_json_rows_become_the_mapping(client, alice, subscription):
    client.force_login(alice)
    form = editor_form(
        **{
            "m.payload.key": ["greeting", "flag", "hash"],
            "m.payload.kmode": ["template", "json", "json"],
            "m.payload.kvalue": ["Hi {{traits.first_name}}", "true", '{"@sha256": {"value": {"@path": "$.userId"}}}'],
        }
    )
    assert client.post(url("subscription", subscription), form).status_code == 302
    subscription.refresh_from_db()
    assert subscription.mapping == {
        "payload": {
            "greeting": {"@template": "Hi {{traits.first_name}}"},
            "flag": True,
            "hash": {"@sha256": {"value": {"@path": "$.userId"}}},
        }
    }


def test_invalid_trigger_shows_the_position_and_saves_nothing(client, alice, subscription):
    client.force_login(alice)
    response = client.post(url("subscription", subscription), editor_form(trigger='event = "Order Completed'))
    assert response.status_code == 400
    match = re.search(r'data-testid="trigger-error">(.*?)</pre>', text(response), re.S)
    assert match and "string is not closed at offset 8" in match.group(1)
    assert "^" in match.group(1)
    assert "event = &quot;Order Completed</textarea>" in text(response), "what was typed is kept"
    subscription.refresh_from_db()
    assert subscription.version == 1
    assert not AuditEntry.objects.filter(action="subscription.updated").exists()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"m.payload.mode": "json", "m.payload.json": '{"@path": 5}'}, "@path needs a string path"),
        ({"m.payload.mode": "json", "m.payload.json": '{"email": '}, "not valid JSON"),
        ({"m.payload.mode": "path", "m.payload.value": "properties..total"}, "expected a name at offset"),
        ({"m.payload.mode": "path", "m.payload.value": ""}, "choose a field of the event"),
        ({"m.payload.mode": ""}, "is required"),
        ({"m.payload.kmode": ["path", "path", "literal"], "m.payload.key": ["a", "a", "b"]}, "a: appears twice"),
    ],
)
def test_invalid_mapping_shows_the_error_next_to_its_field(client, alice, subscription, rows, message):
    client.force_login(alice)
    response = client.post(url("subscription", subscription), editor_form(**rows))
    assert response.status_code == 400
    assert message in field_section(response, "payload")
    subscription.refresh_from_db()
    assert subscription.version == 1 and subscription.mapping == {"payload": {"@path": "$"}}


def test_missing_name_is_refused_next_to_the_name(client, alice, subscription):
    client.force_login(alice)
    response = client.post(url("subscription", subscription), editor_form(name="  "))
    assert response.status_code == 400
    assert 'data-testid="name-error">give the subscription a name' in text(response)


def test_new_subscription_from_a_preset(client, alice, destination):
    client.force_login(alice)
    page = client.get(url("subscription-new", destination=destination) + "?preset=0")
    assert page.status_code == 200
    assert 'value="Send Event"' in text(page)
    assert "Create subscription" in text(page)
    response = client.post(url("subscription-new", destination=destination), editor_form(name="Big orders"))
    created = Subscription.objects.get(name="Big orders")
    assert response.url == url("subscription", created)
    assert (created.version, created.mapping, created.enabled) == (1, ORDERS_MAPPING, True)
    assert created.versions.get().created_by == alice
    entry = AuditEntry.objects.get(action="subscription.created")
    assert entry.target_repr.startswith("Big orders") and entry.changes["name"] == [None, "Big orders"]


# --- Live preview and what-if --------------------------------------------------------------------------


def test_preview_runs_the_unsaved_form_on_a_recent_event(client, alice, subscription, source):
    event = order(source, 42.5)
    client.force_login(alice)
    response = client.post(url("subscription-preview", destination=subscription.destination),
                           editor_form(event=f"event:{event.pk}"))  # fmt: skip
    assert response.status_code == 200
    data = response.json()
    assert data["matched"] is True
    assert data["payload"] == {"payload": {"email": "ada@example.com", "total": 42.5, "source": "cdp"}}
    assert data["builder"] == {
        "join": "all",
        "rows": [
            {"field": "type", "op": "=", "value": "track"},
            {"field": "event", "op": "=", "value": "Order Completed"},
        ],
    }
    subscription.refresh_from_db()
    assert subscription.version == 1, "a preview saves nothing"


def test_preview_says_when_the_event_does_not_match(client, alice, subscription, source):
    event = stored(source, {"type": "identify", "traits": {"email": "bea@example.com"}})
    client.force_login(alice)
    data = client.post(url("subscription-preview", destination=subscription.destination),
                       editor_form(event=f"event:{event.pk}")).json()  # fmt: skip
    assert (data["matched"], data["payload"]) == (False, None)


def test_preview_reports_trigger_and_field_errors(client, alice, subscription):
    client.force_login(alice)
    form = editor_form(
        trigger="properties.total => 100", event="sample:track", **{"m.payload.kmode": ["path", "json", "literal"]}
    )
    data = client.post(url("subscription-preview", destination=subscription.destination), form).json()
    assert data["trigger_error"].startswith("expected a field or a value, found '>' at offset 18")
    assert data["builder"] is None
    assert any("not valid JSON" in message for message in data["field_errors"]["payload"])
    assert data["matched"] is None


def test_preview_uses_only_events_of_the_destinations_sources(client, alice, subscription, source):
    other = Source.objects.create(workspace=source.workspace, name="Server")
    subscription.destination.sources.set([source])
    elsewhere = order(other, 10)
    client.force_login(alice)
    response = client.post(url("subscription-preview", destination=subscription.destination),
                           editor_form(event=f"event:{elsewhere.pk}"))  # fmt: skip
    assert response.status_code == 400
    assert response.json()["event_error"] == "Choose a recent event or a sample event."


def test_what_if_lists_the_events_that_would_change(client, alice, subscription, source):
    big, small = order(source, 250), order(source, 20)
    stored(source, {"type": "identify", "traits": {}})
    client.force_login(alice)
    form = editor_form(
        trigger='type = "track" and properties.total > 100', **{"m.payload.mode": "path", "m.payload.value": "$"}
    )
    response = client.post(url("subscription-what-if", subscription), form)
    assert response.status_code == 200
    body = text(response)
    assert "<strong>2</strong> of the last 3 stored events would be sent differently" in body
    assert small.message_id in body and "no longer sent" in body
    assert big.message_id not in body, "the big order is sent as before"
    assert "trigger" in body, "the settings diff names the trigger"
    subscription.refresh_from_db()
    assert subscription.version == 1


def test_what_if_refuses_an_invalid_form(client, alice, subscription):
    client.force_login(alice)
    response = client.post(url("subscription-what-if", subscription), editor_form(trigger="event ="))
    assert response.status_code == 400
    assert "the trigger does not parse" in text(response)


# --- Versions, restore, toggle, delete -------------------------------------------------------------------


def test_versions_show_who_when_and_a_field_level_diff(client, alice, subscription):
    client.force_login(alice)
    client.post(url("subscription", subscription), editor_form())
    body = text(client.get(url("subscription-versions", subscription)))
    assert body.count('data-testid="version"') == 2
    assert "by alice" in body
    assert '<td class="mono">trigger</td>' in body
    assert "type in [" in body and "Order Completed" in body
    assert '<td class="mono">mapping.payload</td>' not in body
    assert '<td class="mono">mapping.payload.email</td>' in body or '<td class="mono">mapping.payload</td>' in body
    assert 'data-testid="restore-1"' in body and 'data-testid="restore-2"' not in body


def test_versions_page_of_a_subscription_without_history(client, alice, destination):
    bare = Subscription.objects.create(destination=destination, name="Made by hand", action="send", trigger="true")
    client.force_login(alice)
    response = client.get(url("subscription-versions", bare))
    assert response.status_code == 200
    assert "No versions are recorded for this subscription." in text(response)


def test_restore_saves_the_old_version_again(client, alice, subscription):
    client.force_login(alice)
    client.post(url("subscription", subscription), editor_form())
    response = client.post(url("subscription-restore", subscription), {"version": "1"}, follow=True)
    assert "Version 1 restored as version 3" in text(response)
    subscription.refresh_from_db()
    assert subscription.version == 3
    assert subscription.mapping == {"payload": {"@path": "$"}}
    assert subscription.trigger.startswith("type in [")
    entry = AuditEntry.objects.get(action="subscription.restored")
    assert entry.changes["trigger"][0] == 'type = "track" and event = "Order Completed"'


def test_restore_of_an_unknown_version_says_so(client, alice, subscription):
    client.force_login(alice)
    response = client.post(url("subscription-restore", subscription), {"version": "9"}, follow=True)
    assert "Version 9 cannot be restored: this subscription has no version 9" in text(response)
    subscription.refresh_from_db()
    assert subscription.version == 1


def test_toggle_turns_a_subscription_off_and_on(client, alice, subscription):
    client.force_login(alice)
    client.post(url("subscription-toggle", subscription))
    subscription.refresh_from_db()
    assert (subscription.enabled, subscription.version) == (False, 2)
    assert AuditEntry.objects.get(action="subscription.disabled").changes == {"enabled": [True, False]}
    client.post(url("subscription-toggle", subscription))
    subscription.refresh_from_db()
    assert subscription.enabled is True
    assert AuditEntry.objects.filter(action="subscription.enabled").count() == 1


def test_delete_removes_the_subscription(client, alice, subscription):
    client.force_login(alice)
    response = client.post(url("subscription-delete", subscription))
    assert response.url == url("destination-mappings", destination=subscription.destination)
    assert not Subscription.objects.filter(pk=subscription.pk).exists()
    entry = AuditEntry.objects.get(action="subscription.deleted")
    assert entry.target_repr.startswith("Send Event") and entry.changes["name"] == ["Send Event", None]


# --- Roles ---------------------------------------------------------------------------------------------


@pytest.fixture
def reader(make_user: Any, source: Source) -> Any:
    user = make_user("rita")
    Membership.objects.create(workspace=source.workspace, user=user, role=Role.READ_ONLY)
    return user


def test_read_only_member_sees_the_mapping_without_controls(client, reader, subscription):
    client.force_login(reader)
    listing = text(client.get(url("destination-mappings", destination=subscription.destination)))
    assert "Send Event" in listing
    assert 'data-testid="add-subscription"' not in listing and 'data-testid="toggle"' not in listing
    editor = text(client.get(url("subscription", subscription)))
    assert 'data-testid="read-only"' in editor
    assert 'data-testid="save"' not in editor and 'data-testid="delete"' not in editor
    assert "data-preview-url" not in editor and "mappings.js" not in editor
    assert re.search(r'<textarea id="id_trigger"[^>]* disabled>', editor)
    versions = text(client.get(url("subscription-versions", subscription)))
    assert "restore-" not in versions
    assert client.get(url("subscription-new", destination=subscription.destination)).status_code == 403


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("subscription", editor_form()),
        ("subscription-what-if", editor_form()),
        ("subscription-restore", {"version": "1"}),
        ("subscription-toggle", {}),
        ("subscription-delete", {}),
    ],
)
def test_read_only_member_cannot_change_anything(client, reader, subscription, name, data):
    client.force_login(reader)
    assert client.post(url(name, subscription), data).status_code == 403
    for other in ("subscription-new", "subscription-preview"):
        response = client.post(
            url(other, destination=subscription.destination), {**editor_form(), "event": "sample:track"}
        )
        assert response.status_code == 403
    subscription.refresh_from_db()
    assert (subscription.version, subscription.enabled) == (1, True)
    assert Subscription.objects.count() == 1
    assert not AuditEntry.objects.filter(action__startswith="subscription.").exists()


def test_member_can_edit_mappings(client, make_user, subscription):
    member = make_user("max")
    Membership.objects.create(workspace=subscription.destination.workspace, user=member, role=Role.MEMBER)
    client.force_login(member)
    assert client.post(url("subscription", subscription), editor_form()).status_code == 302
    subscription.refresh_from_db()
    assert subscription.version == 2 and subscription.versions.get(version=2).created_by == member


def test_preview_answer_is_json_even_for_unicode(client, alice, subscription, source):
    event = stored(source, {"type": "track", "event": "Bestellung abgeschlossen", "properties": {"stadt": "Zürich"}})
    client.force_login(alice)
    form = editor_form(
        trigger="true", event=f"event:{event.pk}", **{"m.payload.mode": "path", "m.payload.value": "properties"}
    )
    response = client.post(url("subscription-preview", destination=subscription.destination), form)
    assert json.loads(response.content)["payload"] == {"payload": {"stadt": "Zürich"}}


def test_editor_offers_fields_of_the_observed_schema(client, alice, subscription, source):
    ingest(source, track(properties={"coupon": "SPRING", "total": 10}), track(properties={"coupon": None}))
    client.force_login(alice)
    body = text(client.get(url("subscription", subscription)))
    assert '<option value="properties.coupon">string, null</option>' in body or (
        '<option value="properties.coupon">null, string</option>' in body
    )
    assert '<option value="properties.total">number</option>' in body


# --- The form's rows and the mapping they stand for ---------------------------------------------------

TYPED_ACTION = Action(
    key="upsert",
    name="Upsert contact",
    description="",
    fields=(
        ActionField("email", "Email"),
        ActionField("score", "Score", type="number"),
        ActionField("visits", "Visits", type="integer"),
        ActionField("vip", "VIP", type="boolean"),
        ActionField("attributes", "Attributes", type="object"),
    ),
    default_trigger="true",
)


def as_form(rows: dict[str, editor.Row]) -> QueryDict:
    """The POST body the editor page sends for these rows."""
    form = QueryDict(mutable=True)
    for key, row in rows.items():
        form[f"m.{key}.mode"] = row.mode
        form[f"m.{key}.json" if row.mode == "json" else f"m.{key}.value"] = row.value
        for item in row.keys:
            form.appendlist(f"m.{key}.key", item.key)
            form.appendlist(f"m.{key}.kmode", item.mode)
            form.appendlist(f"m.{key}.kvalue", item.value)
    return form


@pytest.mark.parametrize(
    "mapping",
    [
        {"email": {"@path": "$.traits.email"}, "score": 9.5, "visits": 3, "vip": True},
        {"email": "fixed@example.com", "score": 10.0, "visits": {"@path": "properties.visits"}, "vip": False},
        {"email": {"@path": ["$.traits.email", "$.context.traits.email"]}, "score": "9.5", "vip": 1},
        {"email": {"@template": "{{traits.first_name}} <{{traits.email}}>"}, "visits": 2.5},
        {"attributes": {"plan": {"@path": "traits.plan"}, "n": 1, "tags": ["a"], "name": "x", "deep": {"a": {"b": 1}}}},
        {"attributes": {"@merge": {"objects": [{"@path": "$.traits"}, {"source": "cdp"}]}}},
        {"attributes": {"@literal": {"@path": "not resolved"}}, "email": None},
    ],
)
def test_rows_read_back_as_the_same_mapping(mapping):
    rows = editor.rows_for(TYPED_ACTION, mapping)
    assert editor.mapping_from_rows(TYPED_ACTION, editor.submitted_rows(TYPED_ACTION, as_form(rows))) == (mapping, {})


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [("score", "lots", "give a number"), ("visits", "2.5", "give a whole number"), ("vip", "yes", "true or false")],
)
def test_fixed_values_of_typed_fields_say_what_is_wrong(field, text, message):
    form = as_form({field: editor.Row("literal", text)})
    mapping, errors = editor.mapping_from_rows(TYPED_ACTION, editor.submitted_rows(TYPED_ACTION, form))
    assert field not in mapping and message in errors[field][0]
