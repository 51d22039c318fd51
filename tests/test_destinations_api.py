"""Destinations, subscriptions, preview and what-if through the management API."""

import pytest

from cdp.core.models import Membership, Role, Source
from cdp.destinations.configuration import SECRET_MASK
from cdp.processing.models import Event
from tests.conftest import api_client_for

HOOK = {"url": "https://hooks.example.com/in", "signing_secret": "very-secret-value"}


@pytest.fixture
def destination(alice_api, alice_workspace):
    response = alice_api.post(
        "/api/v1/destinations/",
        {"workspace": alice_workspace.pk, "name": "Hook", "type": "webhook", "settings": HOOK},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def subscription(alice_api, destination):
    rows = alice_api.get(f"/api/v1/subscriptions/?destination={destination['id']}").json()["results"]
    assert len(rows) == 1
    return rows[0]


def store(source, message_id, **payload):
    body = {"type": "track", "event": "Order Completed", "userId": "u1", "messageId": message_id, **payload}
    return Event.objects.create(
        source=source, type=body["type"], event=body.get("event", ""), user_id="u1", message_id=message_id,
        timestamp="2026-11-23T10:00:00Z", received_at="2026-11-23T10:00:00Z", intake_id=0, payload=body,
    )  # fmt: skip


def test_destination_types_catalog_lists_webhook_with_presets(alice_api):
    types = alice_api.get("/api/v1/destination-types/").json()
    webhook = next(t for t in types if t["key"] == "webhook")
    assert {s["key"] for s in webhook["settings"]} == {"url", "headers", "signing_secret", "batch"}
    assert webhook["presets"][0]["action"] == "send"
    assert alice_api.get("/api/v1/destination-types/webhook/").json()["name"] == "Webhook"
    assert alice_api.get("/api/v1/destination-types/nope/").status_code == 404


def test_destination_secret_is_never_returned(alice_api, destination):
    assert destination["settings"]["signing_secret"] == SECRET_MASK
    fetched = alice_api.get(f"/api/v1/destinations/{destination['id']}/")
    assert "very-secret-value" not in fetched.content.decode()
    listed = alice_api.get("/api/v1/destinations/")
    assert "very-secret-value" not in listed.content.decode()


def test_destination_update_keeps_secret_and_checks_settings(alice_api, destination):
    url = f"/api/v1/destinations/{destination['id']}/"
    response = alice_api.patch(url, {"settings": {"url": "https://hooks.example.com/v2"}}, format="json")
    assert response.status_code == 200, response.json()
    from cdp.core.models import Destination

    stored = Destination.objects.get(pk=destination["id"]).settings
    assert stored == {
        "url": "https://hooks.example.com/v2", "headers": {}, "signing_secret": "very-secret-value", "batch": False,
    }  # fmt: skip
    bad = alice_api.patch(url, {"settings": {"url": "not a url"}}, format="json")
    assert bad.status_code == 400
    assert bad.json()["fields"]["settings"]["url"] == "must be an http:// or https:// URL"


def test_destination_create_with_unknown_type_is_refused(alice_api, alice_workspace):
    response = alice_api.post(
        "/api/v1/destinations/", {"workspace": alice_workspace.pk, "name": "X", "type": "fax"}, format="json"
    )
    assert response.status_code == 400
    assert "Unknown destination type 'fax'" in str(response.json()["fields"]["type"])


def test_preview_runs_a_stored_event_through_each_subscription(alice_api, destination, subscription, source):
    store(source, "m-preview", properties={"total": 120})
    alice_api.patch(
        f"/api/v1/subscriptions/{subscription['id']}/",
        {"mapping": {"payload": {"order_total": {"@path": "$.properties.total"}, "who": {"@path": "$.userId"}}}},
        format="json",
    )
    response = alice_api.post(
        f"/api/v1/destinations/{destination['id']}/preview/", {"message_id": "m-preview"}, format="json"
    )
    assert response.status_code == 200, response.json()
    [result] = response.json()["subscriptions"]
    assert result["matched"] is True
    assert result["payload"] == {"payload": {"order_total": 120, "who": "u1"}}
    assert result["errors"] == []


def test_preview_reports_no_match_and_errors(alice_api, destination, subscription):
    changed = alice_api.patch(
        f"/api/v1/subscriptions/{subscription['id']}/",
        {
            "trigger": "properties.total > 100",
            "mapping": {"payload": {"n": {"@toNumber": {"@path": "$.properties.total"}}}},
        },
        format="json",
    )
    assert changed.status_code == 200, changed.json()
    url = f"/api/v1/destinations/{destination['id']}/preview/"
    low = alice_api.post(url, {"event": {"type": "track", "event": "X", "properties": {"total": 5}}}, format="json")
    assert low.json()["subscriptions"][0]["matched"] is False
    odd = alice_api.post(url, {"event": {"type": "track", "properties": {"total": "lots"}}}, format="json")
    assert odd.json()["subscriptions"][0]["matched"] is False
    high = alice_api.post(url, {"event": {"type": "track", "properties": {"total": 101.5}}}, format="json")
    assert high.json()["subscriptions"][0] | {"name": None} == {
        "subscription": subscription["id"], "name": None, "action": "send", "enabled": True, "matched": True,
        "payload": {"payload": {"n": 101.5}}, "errors": [],
    }  # fmt: skip
    sample = alice_api.post(url, {"sample": "identify"}, format="json")
    assert sample.status_code == 200
    assert alice_api.post(url, {"sample": "fax"}, format="json").status_code == 400
    assert alice_api.post(url, {"message_id": "never-stored"}, format="json").status_code == 400


def test_what_if_lists_field_level_differences_over_stored_events(alice_api, subscription, source):
    store(source, "m-1", properties={"total": 10})
    store(source, "m-2", properties={"total": 250})
    store(source, "m-3", type="identify", traits={"email": "a@example.com"})
    proposed = {"payload": {"total": {"@path": "$.properties.total"}}}
    response = alice_api.post(
        f"/api/v1/subscriptions/{subscription['id']}/what-if/",
        {"mapping": proposed, "trigger": 'type = "track"', "limit": 10},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["events"] == 3
    assert body["changed"] == 3
    by_id = {r["message_id"]: r for r in body["results"]}
    assert by_id["m-3"]["proposed"]["matched"] is False
    assert {"path": "matched", "before": True, "after": False} in by_id["m-3"]["differences"]
    paths = {d["path"] for d in by_id["m-2"]["differences"]}
    assert "payload.payload.total" in paths
    assert by_id["m-2"]["proposed"]["payload"] == {"payload": {"total": 250}}


def test_what_if_with_the_saved_mapping_changes_nothing(alice_api, subscription, source):
    store(source, "m-same")
    response = alice_api.post(f"/api/v1/subscriptions/{subscription['id']}/what-if/", {}, format="json")
    assert response.json() == {"events": 1, "changed": 0, "results": []}


def test_what_if_refuses_an_invalid_mapping(alice_api, subscription):
    response = alice_api.post(
        f"/api/v1/subscriptions/{subscription['id']}/what-if/", {"mapping": {"payload": {"@path": 3}}}, format="json"
    )
    assert response.status_code == 400
    assert "mapping" in response.json()["fields"]


def test_versions_save_diff_restore(alice_api, subscription):
    url = f"/api/v1/subscriptions/{subscription['id']}/"
    first_trigger = subscription["trigger"]
    assert alice_api.patch(url, {"trigger": 'event = "A"'}, format="json").json()["version"] == 2
    assert alice_api.patch(url, {"enabled": False}, format="json").json()["version"] == 3
    versions = alice_api.get(f"{url}versions/").json()
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert versions[0]["created_by"] == "alice"
    diff = alice_api.get(f"{url}diff/?from=1&to=3").json()
    assert diff["differences"] == [
        {"path": "enabled", "before": True, "after": False},
        {"path": "trigger", "before": first_trigger, "after": 'event = "A"'},
    ]
    restored = alice_api.post(f"{url}restore/", {"version": 1}, format="json").json()
    assert (restored["version"], restored["trigger"], restored["enabled"]) == (4, first_trigger, True)
    assert alice_api.get(f"{url}diff/?from=9").status_code == 400
    assert alice_api.post(f"{url}restore/", {"version": 42}, format="json").status_code == 400


def test_invalid_subscription_change_is_refused_with_field_errors(alice_api, subscription):
    response = alice_api.patch(f"/api/v1/subscriptions/{subscription['id']}/", {"trigger": "type = = 1"}, format="json")
    assert response.status_code == 400
    assert "trigger" in response.json()["fields"]


def test_read_only_member_can_preview_but_not_change(alice_workspace, destination, subscription, make_user):
    reader = make_user("rita")
    Membership.objects.create(workspace=alice_workspace, user=reader, role=Role.READ_ONLY)
    api = api_client_for(reader)
    url = f"/api/v1/subscriptions/{subscription['id']}/"
    assert api.get(url).status_code == 200
    assert api.patch(url, {"enabled": False}, format="json").status_code == 403
    assert api.post(f"{url}restore/", {"version": 1}, format="json").status_code == 403
    assert api.delete(f"/api/v1/destinations/{destination['id']}/").status_code == 403
    preview = api.post(f"/api/v1/destinations/{destination['id']}/preview/", {"sample": "track"}, format="json")
    assert preview.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/v1/destinations/{d}/", None),
        ("patch", "/api/v1/destinations/{d}/", {"name": "Mine"}),
        ("delete", "/api/v1/destinations/{d}/", None),
        ("post", "/api/v1/destinations/{d}/preview/", {"sample": "track"}),
        ("get", "/api/v1/subscriptions/{s}/", None),
        ("patch", "/api/v1/subscriptions/{s}/", {"enabled": False}),
        ("get", "/api/v1/subscriptions/{s}/versions/", None),
        ("get", "/api/v1/subscriptions/{s}/diff/?from=1", None),
        ("post", "/api/v1/subscriptions/{s}/restore/", {"version": 1}),
        ("post", "/api/v1/subscriptions/{s}/what-if/", {}),
    ],
)
def test_another_workspace_gets_404(bob_api, bob_workspace, destination, subscription, method, path, body):
    url = path.format(d=destination["id"], s=subscription["id"])
    response = getattr(bob_api, method)(url, body, format="json") if body is not None else getattr(bob_api, method)(url)
    assert response.status_code == 404


def test_another_workspace_cannot_add_subscriptions_to_my_destination(bob_api, bob_workspace, destination):
    response = bob_api.post(
        "/api/v1/subscriptions/",
        {"destination": destination["id"], "action": "send", "trigger": 'type = "track"', "mapping": {"payload": 1}},
        format="json",
    )
    assert response.status_code == 400
    assert "destination" in response.json()["fields"]


def test_lists_show_only_my_workspace(bob_api, bob_workspace, destination, subscription):
    assert bob_api.get("/api/v1/destinations/").json()["results"] == []
    assert bob_api.get("/api/v1/subscriptions/").json()["results"] == []


def test_subscription_create_adds_a_versioned_subscription(alice_api, destination):
    response = alice_api.post(
        "/api/v1/subscriptions/",
        {"destination": destination["id"], "name": "Orders", "action": "send", "trigger": 'event = "Order Completed"',
         "mapping": {"payload": {"id": {"@path": "$.properties.order_id"}}}},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.json()
    assert response.json()["version"] == 1
    assert alice_api.get(f"/api/v1/subscriptions/{response.json()['id']}/versions/").json()[0]["version"] == 1


def test_source_fixture_is_in_alice_workspace(source, alice_workspace):
    assert Source.objects.get(pk=source.pk).workspace == alice_workspace


def test_preview_reports_mapping_errors_by_field(alice_api, destination, subscription):
    changed = alice_api.patch(
        f"/api/v1/subscriptions/{subscription['id']}/",
        {"trigger": 'type = "track"', "mapping": {"payload": {"n": {"@toNumber": {"@path": "$.properties.total"}}}}},
        format="json",
    )
    assert changed.status_code == 200, changed.json()
    url = f"/api/v1/destinations/{destination['id']}/preview/"
    result = alice_api.post(url, {"event": {"type": "track", "properties": {"total": "lots"}}}, format="json").json()
    [outcome] = result["subscriptions"]
    assert outcome["matched"] is True
    assert len(outcome["errors"]) == 1
    assert outcome["errors"][0].startswith("payload.n:")


def test_destination_sources_and_delivery_options_are_configurable(alice_api, alice_workspace, source, bob_workspace):
    foreign = Source.objects.create(workspace=bob_workspace, name="Theirs")
    body = {
        "workspace": alice_workspace.pk, "name": "Batched", "type": "webhook", "sources": [source.pk],
        "settings": {"url": "https://hooks.example.com/in", "batch": True}, "batch_size": 250, "max_in_flight": 2,
    }  # fmt: skip
    created = alice_api.post("/api/v1/destinations/", body, format="json")
    assert created.status_code == 201, created.json()
    assert (created.json()["sources"], created.json()["batch_size"], created.json()["max_in_flight"]) == (
        [source.pk],
        250,
        2,
    )
    url = f"/api/v1/destinations/{created.json()['id']}/"
    refused = alice_api.patch(url, {"sources": [foreign.pk]}, format="json")
    assert refused.status_code == 400
    assert alice_api.patch(url, {"batch_size": 0}, format="json").status_code == 400
