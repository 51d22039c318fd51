"""Replay: a source's stored events over a time range, sent to one destination (a newly added tool) by a
job that goes at a capped rate, creates no duplicates and can be polled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cdp.core.models import Destination, Membership, Role, Source
from cdp.delivery.engine import drain
from cdp.delivery.models import Delivery, Job, Status
from cdp.destinations.services import save_subscription
from cdp.processing.models import Event
from tests.conftest import api_client_for
from tests.support.api import assert_error
from tests.support.delivery import ingest, track, webhook
from tests.support.jobs import FakeClock, run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_lanes")]

DAY = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def at(hour: float) -> str:
    return (DAY + timedelta(hours=hour)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def history(source):
    """Events of the website on DAY: three between 09:00 and 12:00, one before, one after; and one of
    another source inside the range."""
    app = Source.objects.create(workspace=source.workspace, name="App", kind="mobile")
    inside = [track(messageId=f"in-{n}", timestamp=at(9 + n)) for n in range(3)]
    ingest(source, *inside, track(messageId="before", timestamp=at(8)), track(messageId="after", timestamp=at(12)))
    ingest(app, track(messageId="other-source", timestamp=at(10)))
    return {"inside": ["in-0", "in-1", "in-2"]}


@pytest.fixture
def new_tool(source, sink, history):
    """A destination added after the events came in."""
    return webhook(source.workspace, sink.url, name="New tool")


NINE, NOON = at(9), at(12)


def replay(client, destination, source, since=NINE, until=NOON):
    return client.post(
        f"/api/v1/destinations/{destination.pk}/replay/", {"source": source.pk, "since": since, "until": until},
        format="json",
    )  # fmt: skip


def delivered_messages(destination):
    return sorted(Delivery.objects.filter(destination=destination).values_list("message_id", flat=True))


def test_replay_sends_a_source_time_range_to_the_new_destination(alice_api, source, sink, new_tool, history):
    assert delivered_messages(new_tool) == []

    response = replay(alice_api, new_tool, source)

    assert response.status_code == 202, response.content
    job = response.json()
    assert (job["kind"], job["status"], job["destination"], job["total"], job["done"]) == (
        "replay", "queued", new_tool.pk, 3, 0,
    )  # fmt: skip
    assert job["parameters"] == {
        "source": source.pk, "since": "2026-03-02T09:00:00+00:00", "until": "2026-03-02T12:00:00+00:00",
    }  # fmt: skip
    run(job["id"])
    polled = alice_api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert (polled["status"], polled["done"], polled["total"]) == ("done", 3, 3)
    assert polled["result"] == {"deliveries_created": 3, "deliveries_existing": 0}
    assert delivered_messages(new_tool) == history["inside"]

    drain(new_tool.pk)
    received = sorted(request.json()["messageId"] for request in sink.wait_for_requests(3))
    assert received == history["inside"]


def test_replay_only_feeds_the_chosen_destination(alice_api, source, sink, history):
    existing = webhook(source.workspace, sink.url, name="Existing")
    new_tool = webhook(source.workspace, sink.url, name="New tool")
    run(replay(alice_api, new_tool, source).json()["id"])
    assert delivered_messages(existing) == []
    assert delivered_messages(new_tool) == history["inside"]


def test_replay_twice_creates_no_duplicate_deliveries(alice_api, source, sink, new_tool, history):
    run(replay(alice_api, new_tool, source).json()["id"])
    drain(new_tool.pk)
    sink.wait_for_requests(3)

    again = run(replay(alice_api, new_tool, source, since=at(0), until=at(24)).json()["id"])

    assert again.result == {"deliveries_created": 2, "deliveries_existing": 3}  # only "before" and "after" are new
    assert delivered_messages(new_tool) == sorted(["after", "before", *history["inside"]])
    drain(new_tool.pk)
    sink.wait_for_requests(5)
    assert sorted(r.json()["messageId"] for r in sink.requests) == sorted(["after", "before", *history["inside"]])


def test_replay_reports_the_events_the_destination_does_not_take(alice_api, source, sink, new_tool):
    save_subscription(new_tool.subscriptions.get(), {"trigger": 'messageId = "in-1"'})
    job = run(replay(alice_api, new_tool, source).json()["id"])
    assert job.result == {"deliveries_created": 1, "deliveries_existing": 0, "no_trigger_matched": 2}
    assert delivered_messages(new_tool) == ["in-1"]


def test_replay_goes_no_faster_than_the_rate_cap(alice_api, settings, monkeypatch, source, new_tool):
    settings.CDP_REDRIVE_RATE = 1
    clock = FakeClock(at_sleep=lambda: len(delivered_messages(new_tool))).install(monkeypatch)
    job = run(replay(alice_api, new_tool, source).json()["id"])
    assert job.status == "done"
    assert clock.seen == [1, 2]  # one event a second
    assert clock.now == pytest.approx(2.0)


def test_replay_job_fails_visibly_when_its_destination_is_deleted(alice_api, source, new_tool):
    job_id = replay(alice_api, new_tool, source).json()["id"]
    Destination.objects.filter(pk=new_tool.pk).delete()
    job = run(job_id)
    assert (job.status, job.error) == ("failed", "The destination was deleted.")


def test_replay_of_an_empty_range_is_done_at_once(alice_api, source, new_tool):
    job = replay(alice_api, new_tool, source, since=at(20), until=at(22)).json()
    assert (job["status"], job["total"], job["done"]) == ("done", 0, 0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"since": at(9)}, "source"),
        ({"source": "website", "since": at(9)}, "source"),
        ({"source": "{missing}", "since": at(9)}, "source"),
        ({"source": "{theirs}", "since": at(9)}, "source"),
        ({"source": "{source}"}, "since"),
        ({"source": "{source}", "since": at(12), "until": at(9)}, "until"),
        ({"source": "{source}", "since": "last tuesday"}, "since"),
    ],
    ids=["no source", "source not an id", "unknown source", "source of another workspace", "no since",
         "until before since", "since not a time"],
)  # fmt: skip
def test_replay_refuses_bad_input(alice_api, source, new_tool, make_workspace, body, field):
    theirs = Source.objects.create(workspace=make_workspace("globex"), name="Theirs")
    values = {"{source}": source.pk, "{theirs}": theirs.pk, "{missing}": 987654}
    body = {key: values.get(value, value) for key, value in body.items()}
    response = alice_api.post(f"/api/v1/destinations/{new_tool.pk}/replay/", body, format="json")
    assert field in assert_error(response, 400, "invalid")["fields"]
    assert not Job.objects.exists()


def test_replay_refuses_a_source_the_destination_is_not_connected_to(alice_api, source, sink):
    app = Source.objects.create(workspace=source.workspace, name="App")
    only_app = webhook(source.workspace, sink.url, name="App only", sources=[app])
    body = assert_error(replay(alice_api, only_app, source), 400, "invalid")
    assert "not connected" in body["message"]


def test_replay_refuses_a_disabled_destination(alice_api, source, sink):
    paused = webhook(source.workspace, sink.url, name="Paused", enabled=False)
    body = assert_error(replay(alice_api, paused, source), 400, "invalid")
    assert "enable it" in body["message"]


def test_replay_needs_a_role_that_may_change_things(make_user, alice_workspace, source, new_tool):
    reader = make_user("reader")
    Membership.objects.create(workspace=alice_workspace, user=reader, role=Role.READ_ONLY)
    body = assert_error(replay(api_client_for(reader), new_tool, source), 403, "permission_denied")
    assert "replay events" in body["message"]
    assert not Job.objects.exists()


def test_jobs_list_shows_who_asked_for_what_newest_first(alice_api, source, new_tool):
    replayed = replay(alice_api, new_tool, source).json()["id"]
    redriven = alice_api.post("/api/v1/dead-letters/redrive/", {}, format="json").json()["id"]

    listed = alice_api.get("/api/v1/jobs/").json()["results"]
    assert [(j["id"], j["kind"], j["created_by"]) for j in listed] == [
        (redriven, "redrive", "alice"), (replayed, "replay", "alice"),
    ]  # fmt: skip
    assert [j["id"] for j in alice_api.get("/api/v1/jobs/", {"kind": "replay"}).json()["results"]] == [replayed]
    assert [j["id"] for j in alice_api.get("/api/v1/jobs/", {"destination": new_tool.pk}).json()["results"]] == [
        replayed
    ]
    assert_error(alice_api.get("/api/v1/jobs/", {"kind": "rebuild"}), 400, "invalid")


def test_replay_events_are_the_ones_the_events_api_lists(alice_api, source, new_tool):
    listed = alice_api.get("/api/v1/events/", {"source": source.pk, "since": at(9), "until": at(12)}).json()
    run(replay(alice_api, new_tool, source).json()["id"])
    assert sorted(e["message_id"] for e in listed["results"]) == delivered_messages(new_tool)
    assert Event.objects.filter(source=source).count() == 5
    assert Delivery.objects.filter(destination=new_tool, status=Status.PENDING).count() == 3
