"""Load now: a batching destination's waiting events go at once, as a job that can be followed to the end."""

from __future__ import annotations

import pytest
from django.urls import reverse

from cdp.core.models import AuditEntry, Membership, Role, Source
from cdp.delivery.engine import drain
from cdp.delivery.jobs import run_job, start_load
from cdp.delivery.models import Delivery, Job, JobKind, JobStatus, Status
from tests.support.delivery import ingest, track, webhook
from tests.support.sink import Sink, messages_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_lanes")]


@pytest.fixture
def hook(source: Source, sink: Sink):
    """Batches of up to 100 that wait five minutes to fill up, like a warehouse between loads."""
    return webhook(source.workspace, sink.url, settings={"batch": True}, batch_size=100, batch_wait_seconds=300)


def test_waiting_partial_batch_goes_out_with_load_now_and_the_job_shows_it(alice, source, hook, sink):
    ingest(source, *[track() for _ in range(5)])
    assert drain(hook.pk).sent == 0, "a partial batch waits for more events"
    assert sink.requests == []

    job = start_load(hook, user=alice, via="api")
    assert (job.kind, job.total, job.status) == (JobKind.LOAD, 5, JobStatus.QUEUED)
    assert run_job.run(job.pk) == JobStatus.DONE

    job.refresh_from_db()
    assert (job.status, job.done, job.total) == (JobStatus.DONE, 5, 5)
    assert job.result == {"delivered": 5}
    assert len(sink.requests) == 1, "the five events went as one batch"
    assert len(list(messages_in(sink.requests))) == 5
    assert set(Delivery.objects.filter(destination=hook).values_list("status", flat=True)) == {Status.DELIVERED}
    entry = AuditEntry.objects.get(action="destination.loaded")
    assert (entry.actor, entry.via, entry.changes["total"]) == (alice, "api", [None, 5])


def test_load_with_nothing_waiting_is_done_at_once(alice, hook):
    job = start_load(hook, user=alice, via="dashboard")
    assert (job.status, job.total) == (JobStatus.DONE, 0)


def test_api_load_answers_with_the_job_to_poll(alice_api, source, hook, sink):
    ingest(source, track(), track())
    response = alice_api.post(f"/api/v1/destinations/{hook.pk}/load/")
    assert response.status_code == 202
    body = response.json()
    assert (body["kind"], body["total"], body["destination"]) == ("load", 2, hook.pk)
    run_job.run(body["id"])
    assert alice_api.get(f"/api/v1/jobs/{body['id']}/").json()["status"] == "done"
    assert len(list(messages_in(sink.requests))) == 2


def test_api_load_of_a_disabled_destination_is_refused(alice_api, hook):
    hook.enabled = False
    hook.save()
    response = alice_api.post(f"/api/v1/destinations/{hook.pk}/load/")
    assert response.status_code == 400
    assert "enable it first" in str(response.json()["fields"]["destination"])
    assert not Job.objects.exists()


def test_delivery_page_offers_load_now_for_waiting_batches_only(client, alice, source, hook, sink):
    client.force_login(alice)
    slug = source.workspace.slug
    page = client.get(reverse("dashboard:destination-delivery", args=[slug, hook.pk]))
    assert b'data-testid="load-now"' in page.content
    single = webhook(source.workspace, sink.url, name="Single")
    page = client.get(reverse("dashboard:destination-delivery", args=[slug, single.pk]))
    assert b'data-testid="load-now"' not in page.content


def test_load_now_from_the_page_leads_to_its_job(client, alice, source, hook):
    ingest(source, track())
    client.force_login(alice)
    response = client.post(reverse("dashboard:destination-load", args=[source.workspace.slug, hook.pk]))
    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:job", args=[source.workspace.slug, job.pk])
    page = client.get(response["Location"])
    assert b"Events waiting for the next batch, sent now" in page.content


def test_read_only_member_sees_no_load_button(client, make_user, source, hook):
    reader = make_user("reader")
    Membership.objects.create(workspace=source.workspace, user=reader, role=Role.READ_ONLY)
    client.force_login(reader)
    page = client.get(reverse("dashboard:destination-delivery", args=[source.workspace.slug, hook.pk]))
    assert b'data-testid="load-now"' not in page.content
    response = client.post(reverse("dashboard:destination-load", args=[source.workspace.slug, hook.pk]))
    assert response.status_code == 403
    assert not Job.objects.exists()
