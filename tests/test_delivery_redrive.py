"""Dead letters: listing and inspecting them, and re-driving them (all or by filter) through the current
mapping at a capped rate, as jobs that record who asked and can be polled.

Dead letters are made by the real engine: events go through the processor to a webhook whose endpoint
(a scripted loopback server) answers 503, with no retry window left."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cdp.core.models import Destination, Membership, Role, Source
from cdp.delivery import jobs
from cdp.delivery.engine import drain
from cdp.delivery.models import Delivery, Job, Status
from cdp.destinations.services import save_subscription
from tests.conftest import api_client_for
from tests.support.api import assert_error
from tests.support.delivery import ingest, track, webhook
from tests.support.jobs import FakeClock, run
from tests.support.sink import OK, Reply

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_lanes")]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def hook(source, sink):
    return webhook(source.workspace, sink.url, name="Hook", retry_hours=0, sources=[source])


@pytest.fixture
def elsewhere(source, sink):
    """A dead letter of another destination of the workspace, fed by another source."""
    app = Source.objects.create(workspace=source.workspace, name="App", kind="mobile")
    other = webhook(source.workspace, sink.url, name="Other", retry_hours=0, sources=[app])
    [letter] = dead(app, other, sink, track())
    return letter


def subscription_of(destination):
    [subscription] = destination.subscriptions.all()
    return subscription


def dead(source, destination, sink, *messages):
    """Ingest the messages and drain while the endpoint answers 503: with no retry window, each delivery
    is dead-lettered after its first attempt."""
    sink.default = Reply(503, body=b'{"error":"down for maintenance"}')
    ingest(source, *messages)
    drain(destination.pk)
    sink.default = OK
    rows = list(Delivery.objects.filter(destination=destination, status=Status.DEAD).order_by("id"))
    assert len(rows) == len(messages)
    return rows


def ids(response):
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# --- listing and inspecting --------------------------------------------------------------------------


def test_dead_letters_list_shows_each_with_its_attempts(alice_api, source, hook, sink):
    first, second = dead(source, hook, sink, track(event="Signed Up"), track(messageId="m-dead"))
    ingest(source, track())
    drain(hook.pk)  # delivered: not a dead letter

    response = alice_api.get("/api/v1/dead-letters/")

    assert ids(response) == [second.pk, first.pk]  # newest first
    row = response.json()["results"][0]
    assert (row["destination"], row["source"], row["message_id"], row["event_name"]) == (
        hook.pk, source.pk, "m-dead", "Order Completed",
    )  # fmt: skip
    assert row["error_class"] == "server_error" and row["dead_lettered_at"]
    [attempt] = row["attempts"]
    assert (attempt["number"], attempt["response_status"], attempt["outcome"]) == (1, 503, "dead")
    assert "down for maintenance" in attempt["response_body"]
    assert attempt["request"]["url"] == sink.url


def test_dead_letter_detail_shows_its_attempts(alice_api, source, hook, sink):
    [letter] = dead(source, hook, sink, track())
    response = alice_api.get(f"/api/v1/dead-letters/{letter.pk}/")
    assert response.status_code == 200
    assert response.json()["id"] == letter.pk
    assert [a["outcome"] for a in response.json()["attempts"]] == ["dead"]


def test_dead_letters_list_filters_by_destination_time_error_class_and_event(alice_api, source, hook, sink, elsewhere):
    signup, order, old = dead(source, hook, sink, track(event="Signed Up"), track(), track())
    Delivery.objects.filter(pk=order.pk).update(error_class="timeout")
    Delivery.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=2))
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()

    assert set(ids(alice_api.get("/api/v1/dead-letters/", {"destination": hook.pk}))) == {signup.pk, order.pk, old.pk}
    assert ids(alice_api.get("/api/v1/dead-letters/", {"destination": elsewhere.destination_id})) == [elsewhere.pk]
    assert ids(alice_api.get("/api/v1/dead-letters/", {"error_class": "timeout"})) == [order.pk]
    assert ids(alice_api.get("/api/v1/dead-letters/", {"event": "Signed Up"})) == [signup.pk]
    assert ids(alice_api.get("/api/v1/dead-letters/", {"until": yesterday})) == [old.pk]
    assert old.pk not in ids(alice_api.get("/api/v1/dead-letters/", {"since": yesterday}))


def test_dead_letters_list_pages_with_a_cursor(alice_api, source, hook, sink):
    letters = dead(source, hook, sink, *(track() for _ in range(5)))
    seen, url = [], "/api/v1/dead-letters/?page_size=2"
    while url:
        page = alice_api.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert seen == sorted((d.pk for d in letters), reverse=True)


@pytest.mark.parametrize(
    ("query", "field"), [({"error_class": "nope"}, "error_class"), ({"since": "yesterday"}, "since")]
)
def test_dead_letters_list_refuses_bad_filters(alice_api, query, field):
    body = assert_error(alice_api.get("/api/v1/dead-letters/", query), 400, "invalid")
    assert field in body["fields"]


# --- re-driving --------------------------------------------------------------------------------------


def test_redrive_sends_dead_letters_again_through_the_current_mapping(alice_api, source, hook, sink):
    [letter] = dead(source, hook, sink, track(messageId="m-1", properties={"order_id": "o-1"}))
    new_mapping = {"payload": {"order": {"@path": "$.properties.order_id"}, "v": 2}}
    save_subscription(subscription_of(hook), {"mapping": new_mapping})

    response = alice_api.post("/api/v1/dead-letters/redrive/", {"destination": hook.pk}, format="json")

    assert response.status_code == 202, response.content
    job = response.json()
    assert (job["kind"], job["status"], job["total"], job["done"]) == ("redrive", "queued", 1, 0)
    assert (job["created_by"], job["parameters"]) == ("alice", {"destination": hook.pk})
    run(job["id"])
    polled = alice_api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert (polled["status"], polled["done"], polled["result"]) == ("done", 1, {"redriven": 1})

    letter.refresh_from_db()
    assert (letter.status, letter.attempts, letter.error_class) == ("pending", 0, "")
    assert letter.payload == {"payload": {"order": "o-1", "v": 2}}
    drain(hook.pk)
    assert sink.wait_for_requests(2)[-1].json() == {"order": "o-1", "v": 2}
    letter.refresh_from_db()
    assert letter.status == "delivered"
    assert [a.outcome for a in letter.attempts_made.order_by("id")] == ["dead", "delivered"]


def test_redrive_starts_a_new_retry_window(alice_api, source, hook, sink):
    [letter] = dead(source, hook, sink, track())
    Delivery.objects.filter(pk=letter.pk).update(created_at=timezone.now() - timedelta(hours=3))
    Destination.objects.filter(pk=hook.pk).update(retry_hours=1)

    run(alice_api.post(f"/api/v1/dead-letters/{letter.pk}/redrive/").json()["id"])
    sink.default = Reply(503)
    drain(hook.pk)

    letter.refresh_from_db()
    assert letter.status == "retrying"  # not dead again at once: its hour of retries starts now
    assert letter.attempts == 1


def test_redrive_one_dead_letter_answers_with_the_finished_job(alice_api, source, hook, sink):
    first, second = dead(source, hook, sink, track(), track())
    response = alice_api.post(f"/api/v1/dead-letters/{first.pk}/redrive/")
    assert response.status_code == 200, response.content
    job = response.json()
    assert (job["status"], job["total"], job["done"], job["result"]) == ("done", 1, 1, {"redriven": 1})
    assert job["parameters"] == {"delivery": first.pk}
    statuses = dict(Delivery.objects.filter(destination=hook).values_list("pk", "status"))
    assert statuses == {first.pk: "pending", second.pk: "dead"}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, {"signup", "order", "old", "elsewhere"}),
        ({"destination": "hook"}, {"signup", "order", "old"}),
        ({"error_class": "timeout"}, {"order"}),
        ({"event": "Signed Up"}, {"signup"}),
        ({"until": "yesterday"}, {"old"}),
        ({"since": "yesterday", "destination": "hook", "error_class": "server_error"}, {"signup"}),
    ],
    ids=["all", "destination", "error class", "event", "until", "combined"],
)
def test_redrive_by_filter_leaves_the_rest_dead(alice_api, source, hook, sink, elsewhere, filters, expected):
    signup, order, old = dead(source, hook, sink, track(event="Signed Up"), track(), track())
    Delivery.objects.filter(pk=order.pk).update(error_class="timeout")
    Delivery.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=2))
    names = {"signup": signup.pk, "order": order.pk, "old": old.pk, "elsewhere": elsewhere.pk}
    values = {"hook": hook.pk, "yesterday": (timezone.now() - timedelta(days=1)).isoformat()}
    body = {key: values.get(value, value) for key, value in filters.items()}

    response = alice_api.post("/api/v1/dead-letters/redrive/", body, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["total"] == len(expected)
    job = run(response.json()["id"])

    redriven = set(Delivery.objects.filter(status=Status.PENDING).values_list("pk", flat=True))
    assert redriven == {names[name] for name in expected}
    assert job.result == {"redriven": len(expected)}


def test_redrive_asks_which_workspace_when_the_caller_has_several(alice_api, alice, make_workspace, hook):
    make_workspace("second", owner=alice)
    body = assert_error(alice_api.post("/api/v1/dead-letters/redrive/", {}, format="json"), 400, "invalid")
    assert "workspace" in body["fields"]


def test_redrive_keeps_dead_what_the_current_subscription_no_longer_takes(alice_api, source, hook, sink):
    gone = webhook(source.workspace, sink.url, name="Gone", retry_hours=0, sources=[source])
    dead(source, hook, sink, track())
    sink.default = Reply(503)
    drain(gone.pk)
    save_subscription(subscription_of(hook), {"trigger": 'type = "identify"'})
    subscription_of(gone).delete()

    job = run(alice_api.post("/api/v1/dead-letters/redrive/", {}, format="json").json()["id"])

    assert job.result == {"trigger_no_longer_matches": 1, "subscription_deleted": 1}
    assert set(Delivery.objects.values_list("status", flat=True)) == {"dead"}


def test_redrive_needs_a_role_that_may_change_things(make_user, alice_workspace, source, hook, sink):
    [letter] = dead(source, hook, sink, track())
    reader = make_user("reader")
    Membership.objects.create(workspace=alice_workspace, user=reader, role=Role.READ_ONLY)
    client = api_client_for(reader)

    assert client.get("/api/v1/dead-letters/").status_code == 200
    refused = assert_error(client.post(f"/api/v1/dead-letters/{letter.pk}/redrive/"), 403, "permission_denied")
    assert "re-drive dead letters" in refused["message"]
    assert_error(client.post("/api/v1/dead-letters/redrive/", {}, format="json"), 403, "permission_denied")
    assert not Job.objects.exists()
    letter.refresh_from_db()
    assert letter.status == "dead"

    Membership.objects.filter(user=reader).update(role=Role.MEMBER)
    assert client.post("/api/v1/dead-letters/redrive/", {}, format="json").status_code == 202


# --- rate cap and resumption ---------------------------------------------------------------------------


@pytest.fixture
def many_dead(source, hook):
    """25 dead letters, made in bulk (the engine's way of making them is tested above)."""
    ingest(source, *(track() for _ in range(25)))
    Delivery.objects.filter(destination=hook).update(
        status=Status.DEAD, error_class="server_error", finished_at=timezone.now()
    )
    return hook


def pending() -> int:
    return Delivery.objects.filter(status=Status.PENDING).count()


def test_redrive_goes_no_faster_than_the_rate_cap(alice_api, settings, monkeypatch, many_dead):
    settings.CDP_REDRIVE_RATE = 10
    clock = FakeClock(at_sleep=pending).install(monkeypatch)
    job_id = alice_api.post("/api/v1/dead-letters/redrive/", {}, format="json").json()["id"]

    job = run(job_id)

    assert (job.status, job.done, job.result) == ("done", 25, {"redriven": 25})
    assert clock.seen == [10, 20]  # 10 re-driven in the first second, 20 by the end of the second
    assert clock.now == pytest.approx(2.0)


def test_redrive_job_hands_over_and_resumes_where_it_stopped(alice_api, settings, monkeypatch, many_dead):
    settings.CDP_REDRIVE_RATE = 10
    FakeClock().install(monkeypatch)
    queued: list[int] = []
    monkeypatch.setattr(jobs, "queue", queued.append)
    job_id = alice_api.post("/api/v1/dead-letters/redrive/", {}, format="json").json()["id"]

    job = run(job_id, slice_seconds=1.5)  # two chunks fit in the slice, then the next task takes over
    assert (job.status, job.done, queued, pending()) == ("running", 20, [job_id], 20)
    polled = alice_api.get(f"/api/v1/jobs/{job_id}/").json()
    assert (polled["status"], polled["done"], polled["total"]) == ("running", 20, 25)

    job = run(job_id)
    assert (job.status, job.done, job.result, pending()) == ("done", 25, {"redriven": 25}, 25)


def test_resume_jobs_queues_again_only_jobs_whose_task_was_lost(monkeypatch, alice_workspace):
    queued: list[int] = []
    monkeypatch.setattr(jobs, "queue", queued.append)
    now = timezone.now()
    long_ago = now - timedelta(minutes=10)

    def job(**fields):
        return Job.objects.create(workspace=alice_workspace, kind="redrive", total=5, **fields)

    lost_running = job(status="running", claimed_until=long_ago)
    lost_queued = job(status="queued", created_at=long_ago)
    job(status="running", claimed_until=now + timedelta(minutes=1))  # a worker holds it
    job(status="queued")  # its task is on its way
    job(status="done", claimed_until=long_ago)

    assert jobs.resume_jobs.run() == 2
    assert sorted(queued) == sorted([lost_running.pk, lost_queued.pk])


def test_overlapping_redrives_send_each_dead_letter_once(alice_api, many_dead):
    first = alice_api.post("/api/v1/dead-letters/redrive/", {}, format="json").json()["id"]
    second = alice_api.post("/api/v1/dead-letters/redrive/", {}, format="json").json()["id"]
    assert run(first).result == {"redriven": 25}
    later = run(second)
    assert (later.status, later.done) == ("done", 25)
    assert later.result == {"left_the_selection": 25}
    assert pending() == 25
