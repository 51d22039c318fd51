"""Event X-ray through the API: the whole path of one event, scoped to the caller's workspaces."""

from __future__ import annotations

import pytest

from cdp.core.models import Source
from cdp.delivery.engine import drain
from cdp.destinations.services import save_subscription
from cdp.processing.models import Event
from cdp.tracking.models import IntakeRequest
from tests.support.delivery import ingest, track, webhook
from tests.support.sink import Reply, Sink

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_lanes")]


@pytest.fixture
def failing_sink():
    with Sink(default=Reply(500, body=b'{"error":"boom"}')) as sink:
        yield sink


def xray_of(client, event_id: int) -> dict:
    response = client.get(f"/api/v1/events/{event_id}/xray/")
    assert response.status_code == 200, response.content
    return response.json()


def test_xray_shows_request_event_duplicates_and_a_failing_delivery(alice_api, source, failing_sink):
    hook = webhook(source.workspace, failing_sink.url, name="Hook")
    message = track(messageId="xray-1", userId="ada", properties={"total": 42.5})
    [event_id] = ingest(source, message)
    ingest(source, message)  # the same messageId again: dropped as a duplicate
    drain(hook.pk)

    report = xray_of(alice_api, event_id)

    assert report["event"]["messageId"] == "xray-1"
    assert report["event"]["source"] == {"id": source.pk, "name": "Website"}
    request = report["request"]
    assert request["endpoint"] == "batch" and request["index"] == 0
    assert request["message"] == message
    assert '"xray-1"' in request["body"]
    assert report["normalised"]["messageId"] == "xray-1" and "receivedAt" in report["normalised"]
    duplicates = report["duplicates"]
    assert duplicates["count"] == 1 and duplicates["complete"] is True
    assert duplicates["requests"][0]["id"] != report["event"]["intakeId"]
    [destination] = report["destinations"]
    assert destination["name"] == "Hook" and destination["outcome"] == "retrying"
    assert [s["matched"] for s in destination["subscriptions"]] == [True]
    [delivery] = destination["deliveries"]
    assert delivery["status"] == "retrying" and delivery["nextAttemptAt"]
    assert delivery["payload"]["payload"]["messageId"] == "xray-1"  # the mapped fields of the action
    [attempt] = delivery["attemptsMade"]
    assert attempt["responseStatus"] == 500 and attempt["outcome"] == "retry"
    assert attempt["request"]["url"] == failing_sink.url
    assert "boom" in attempt["responseBody"]


def test_xray_explains_why_a_destination_got_nothing(alice_api, source, failing_sink):
    other_source = Source.objects.create(workspace=source.workspace, name="App")
    unmatched = webhook(source.workspace, failing_sink.url, name="Only identifies")
    save_subscription(unmatched.subscriptions.get(), {"trigger": "type = 'identify'"})
    webhook(source.workspace, failing_sink.url, name="App only", sources=[other_source])
    webhook(source.workspace, failing_sink.url, name="Switched off", enabled=False)
    [event_id] = ingest(source, track())

    outcomes = {d["name"]: d["outcome"] for d in xray_of(alice_api, event_id)["destinations"]}

    assert outcomes == {
        "Only identifies": "no_trigger_matched",
        "App only": "not_connected",
        "Switched off": "destination_disabled",
    }


def test_xray_without_the_retained_request_still_shows_the_event(alice_api, source):
    [event_id] = ingest(source, track(messageId="old-1"))
    IntakeRequest.objects.all().delete()  # purged after the retention period

    report = xray_of(alice_api, event_id)

    assert report["request"] is None
    assert report["normalised"]["messageId"] == "old-1"
    assert report["duplicates"]["count"] == 0


def test_xray_by_message_id_finds_the_event(alice_api, source):
    [event_id] = ingest(source, track(messageId="by-id-1"))

    response = alice_api.get("/api/v1/events/xray/", {"message_id": "by-id-1"})

    assert response.status_code == 200
    assert response.json()["event"]["id"] == event_id


def test_xray_by_message_id_asks_for_the_source_when_several_have_it(alice_api, source):
    app = Source.objects.create(workspace=source.workspace, name="App")
    ingest(source, track(messageId="shared-1"))
    [app_event] = ingest(app, track(messageId="shared-1"))

    ambiguous = alice_api.get("/api/v1/events/xray/", {"message_id": "shared-1"})
    chosen = alice_api.get("/api/v1/events/xray/", {"message_id": "shared-1", "source": app.pk})

    assert ambiguous.status_code == 400 and "source" in ambiguous.json()["fields"]
    assert chosen.json()["event"]["id"] == app_event


def test_xray_by_message_id_needs_a_message_id(alice_api, source):
    response = alice_api.get("/api/v1/events/xray/")
    assert response.status_code == 400
    assert "message_id" in response.json()["fields"]


def test_xray_of_another_workspace_reads_like_a_missing_event(bob_api, bob_workspace, source):
    [event_id] = ingest(source, track(messageId="alice-only"))

    by_id = bob_api.get(f"/api/v1/events/{event_id}/xray/")
    by_message = bob_api.get("/api/v1/events/xray/", {"message_id": "alice-only"})
    missing = bob_api.get("/api/v1/events/xray/", {"message_id": "never-sent"})

    assert by_id.status_code == by_message.status_code == 404
    assert by_message.json() == missing.json()
    assert Event.objects.filter(message_id="alice-only").exists()


def test_xray_does_not_shadow_the_event_routes(alice_api, source):
    [event_id] = ingest(source, track())
    assert alice_api.get(f"/api/v1/events/{event_id}/").status_code == 200
    assert alice_api.get("/api/v1/events/", {"source": source.pk}).json()["results"][0]["id"] == event_id
