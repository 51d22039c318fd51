"""The delivery pages of a destination: metrics per window, recent deliveries and errors with the request and
the response, dead letters with filters and re-drive, replay, and the jobs pages that follow a re-drive or a
replay to the end. Deliveries are made by the real engine against a scripted loopback endpoint where the
evidence matters, and directly where only their status and times do."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cdp.core.models import AuditEntry, Membership, Role, Source
from cdp.delivery.engine import drain
from cdp.delivery.models import Delivery, FilteredCount, Job, JobStatus, Status
from tests.conftest import api_client_for, wait_for
from tests.support.data import make_events
from tests.support.delivery import ingest, make_due, track, webhook
from tests.support.jobs import make_dead_letter
from tests.support.processes import child_env
from tests.support.sink import OK, Reply, messages_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_lanes")]

SECRET_HEADER_VALUE = "key-0f9e8d7c-must-not-show"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def hook(source, sink):
    return webhook(
        source.workspace,
        sink.url,
        name="Hook",
        sources=[source],
        settings={"headers": {"X-Api-Key": SECRET_HEADER_VALUE}},
    )


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def url(name, destination=None, **kwargs):
    if destination is not None:
        kwargs.update(slug=destination.workspace.slug, destination_id=destination.pk)
    return reverse(f"dashboard:{name}", kwargs=kwargs)


def text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def row_numbers(page: str, testid: str) -> list[int]:
    """The numbers of a figures-table row, one per window (10 min, 1 hour, 24 hours, 7 days)."""
    row = re.search(rf'data-testid="{testid}">(.*?)</tr>', page, re.S)
    assert row, f"no row {testid}"
    return [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', row.group(1))]


def by_testid(page: str, testid: str) -> list[str]:
    return [html.unescape(t).strip() for t in re.findall(rf'data-testid="{testid}"[^>]*>([^<]*)<', page)]


def make_delivery(destination, status, *, finished_ago=None, latency_ms=100.0, **fields):
    now = timezone.now()
    finished = now - finished_ago if finished_ago is not None else None
    values = {
        "event_id": 0, "source_id": 0, "message_id": f"msg-{uuid.uuid4()}", "event_name": "Order Completed",
        "action": "send", "payload": {}, "status": status, "attempts": 1,
        "received_at": (finished or now) - timedelta(milliseconds=latency_ms), "finished_at": finished, **fields,
    }  # fmt: skip
    return Delivery.objects.create(destination=destination, **values)


def dead(source, destination, sink, *messages):
    """Dead letters made by the real engine: the endpoint answers 503 and there is no retry window left."""
    destination.retry_hours = 0
    destination.save(update_fields=["retry_hours"])
    sink.default = Reply(503, body=b'{"error":"down for maintenance"}')
    events = ingest(source, *messages)
    drain(destination.pk)
    sink.default = OK
    rows = Delivery.objects.filter(destination=destination, status=Status.DEAD, event_id__in=events).order_by("id")
    rows = list(rows)
    assert len(rows) == len(messages)
    return rows


# --- the delivery page ---------------------------------------------------------------------------------


def test_delivery_page_figures_match_the_delivery_records(alice_client, source, hook, sink):
    sink.default = Reply(503, body=b"try later")
    ingest(source, track())  # one real attempt that failed and waits for a retry
    drain(hook.pk)
    for latency in (100, 200, 300):
        make_delivery(hook, Status.DELIVERED, finished_ago=timedelta(minutes=5), latency_ms=latency)
    for _ in range(2):
        make_delivery(hook, Status.DELIVERED, finished_ago=timedelta(hours=2), latency_ms=1000)
    make_delivery(hook, Status.FAILED, finished_ago=timedelta(minutes=30), error_class="client_error")
    make_delivery(hook, Status.DEAD, finished_ago=timedelta(hours=20), error_class="timeout")
    for _ in range(2):
        make_delivery(hook, Status.DEAD, finished_ago=timedelta(days=3), error_class="server_error")
    make_delivery(hook, Status.PENDING)
    three_hours_ago = (timezone.now() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    FilteredCount.objects.create(destination=hook, hour=three_hours_ago, reason="no_trigger_matched", count=4)

    page = text(alice_client.get(url("destination-delivery", hook)))

    assert row_numbers(page, "figure-delivered") == [3, 3, 5, 5]
    assert row_numbers(page, "figure-retried") == [1, 1, 1, 1]
    assert row_numbers(page, "figure-failed") == [0, 1, 1, 1]
    assert row_numbers(page, "figure-failed-client_error") == [0, 1, 1, 1]
    assert row_numbers(page, "figure-dead") == [0, 0, 1, 3]
    assert row_numbers(page, "figure-dead-server_error") == [0, 0, 0, 2]
    assert row_numbers(page, "figure-dead-timeout") == [0, 0, 1, 1]
    assert row_numbers(page, "figure-filtered-no_trigger_matched") == [0, 0, 4, 4]
    assert by_testid(page, "p50-0") == ["200 ms"] and by_testid(page, "p95-0") == ["290 ms"]
    assert by_testid(page, "p50-2") == ["300 ms"] and by_testid(page, "p95-2") == ["1.0 s"]
    assert by_testid(page, "open-pending") == ["1"]
    assert by_testid(page, "open-retrying") == ["1"]
    assert by_testid(page, "dead-count") == ["3"]
    assert 'aria-label="24 hours: Delivered 5, Failed 1, Dead-lettered 1, Filtered 4"' in page


def test_delivery_page_shows_errors_with_the_request_sent_and_the_response(alice_client, source, hook, sink):
    sink.default = Reply(503, body=b'{"error":"down for maintenance"}')
    [event_id] = ingest(source, track(event="Signed Up"))
    drain(hook.pk)

    page = text(alice_client.get(url("destination-delivery", hook)))

    [error] = re.findall(r'data-testid="error">(.*?)</section>', page, re.S)
    assert "Signed Up" in error
    assert by_testid(error, "response-status") == ["503"]
    assert "down for maintenance" in html.unescape(error)
    assert f"POST {sink.url}" in error and "&quot;event&quot;: &quot;Signed Up&quot;" in error  # the request sent
    assert "X-Api-Key: ********" in error and SECRET_HEADER_VALUE not in page  # the extra header is masked
    assert url("event-xray", slug="acme", event_id=event_id) in error
    assert len(re.findall('data-testid="delivery-row"', page)) == 1


def test_delivery_page_of_a_destination_with_nothing_yet_says_what_to_do(alice_client, source, hook):
    page = text(alice_client.get(url("destination-delivery", hook)))
    assert 'data-testid="no-deliveries"' in page and 'data-testid="no-errors"' in page
    assert url("destination-replay", hook) in page


# --- dead letters --------------------------------------------------------------------------------------


def test_dead_letters_filter_by_time_error_class_and_event(alice_client, source, hook):
    now = timezone.now()
    make_dead_letter(hook, event_name="Signed Up", error_class="timeout", finished_at=now - timedelta(minutes=10))
    make_dead_letter(hook, event_name="Signed Up", error_class="server_error", finished_at=now - timedelta(hours=5))
    make_dead_letter(hook, event_name="Order Completed", error_class="timeout", finished_at=now - timedelta(days=2))
    make_delivery(hook, Status.DELIVERED, finished_ago=timedelta(minutes=1))  # never listed
    since = (now - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M")
    page_url = url("destination-dead-letters", hook)

    def matches(**query):
        page = text(alice_client.get(page_url, query))
        return len(re.findall('data-testid="dead-letter-row"', page))

    assert matches() == 3
    assert matches(error_class="timeout") == 2
    assert matches(event="Signed Up") == 2
    assert matches(since=since) == 2
    assert matches(since=since, error_class="timeout", event="Signed Up") == 1
    assert matches(until=since) == 1
    assert matches(event="Nothing Like It") == 0


def test_dead_letters_bad_filter_is_explained_next_to_its_field(alice_client, source, hook):
    make_dead_letter(hook)
    page = text(alice_client.get(url("destination-dead-letters", hook), {"since": "yesterday", "error_class": "nope"}))
    since_field = page[page.index('id="f-since"') : page.index('id="f-until"')]
    assert 'class="error"' in since_field and "Datetime has wrong format" in since_field
    assert "is not a valid choice" in page
    assert 'data-testid="dead-letter-row"' not in page


def test_dead_letters_empty_state(alice_client, source, hook):
    page = text(alice_client.get(url("destination-dead-letters", hook)))
    assert 'data-testid="no-dead-letters"' in page


def test_dead_letter_inspect_shows_payload_last_error_and_attempts(alice_client, source, hook, sink):
    [letter] = dead(source, hook, sink, track(event="Signed Up", properties={"plan": "pro"}))
    page = text(alice_client.get(url("dead-letter", hook, delivery_id=letter.pk)))
    payload = html.unescape(re.search(r'data-testid="payload">(.*?)</pre>', page, re.S).group(1))
    assert '"plan": "pro"' in payload
    assert "down for maintenance" in html.unescape(page)
    assert by_testid(page, "response-status") == ["503"]
    assert url("event-xray", slug="acme", event_id=letter.event_id) in page
    assert 'data-testid="redrive-one"' in page


def test_redrive_one_dead_letter_from_the_page_puts_it_back_to_work(alice_client, alice, source, hook, sink):
    [letter, other] = dead(source, hook, sink, track(), track())
    response = alice_client.post(url("dead-letter-redrive", hook), {"delivery": letter.pk})
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == url("job", slug="acme", job_id=job.pk)
    assert (job.status, job.done, job.total, job.result) == (JobStatus.DONE, 1, 1, {"redriven": 1})
    assert Delivery.objects.get(pk=letter.pk).status == Status.PENDING
    assert Delivery.objects.get(pk=other.pk).status == Status.DEAD
    entry = AuditEntry.objects.get(action="dead_letters.redriven")
    assert (entry.actor, entry.via, entry.target_id) == (alice, "dashboard", str(job.pk))
    drain(hook.pk)
    assert len(sink.requests) == 3  # two that failed, one re-driven that went through


def test_redrive_of_a_letter_no_longer_dead_says_so(alice_client, source, hook):
    delivery = make_delivery(hook, Status.DELIVERED, finished_ago=timedelta(minutes=1))
    response = alice_client.post(url("dead-letter-redrive", hook), {"delivery": delivery.pk}, follow=True)
    assert "is no longer dead-lettered" in text(response)
    assert not Job.objects.exists()


def test_redrive_matching_with_bad_filters_changes_nothing(alice_client, source, hook):
    letter = make_dead_letter(hook)
    response = alice_client.post(url("dead-letter-redrive", hook), {"error_class": "nope"}, follow=True)
    assert "fix the filters" in text(response) and "is not a valid choice" in text(response)
    assert not Job.objects.exists() and Delivery.objects.get(pk=letter.pk).status == Status.DEAD


# --- replay --------------------------------------------------------------------------------------------


def test_replay_form_explains_what_is_wrong_next_to_each_field(alice_client, source, hook, bob_workspace):
    theirs = Source.objects.create(workspace=bob_workspace, name="Bob's site")
    replay_url = url("destination-replay", hook)
    page = alice_client.post(replay_url, {"source": theirs.pk, "since": "2026-01-01T00:00"}).content.decode()
    assert f"This workspace has no source with id {theirs.pk}." in page
    page = alice_client.post(
        replay_url, {"source": source.pk, "since": "2026-01-02T00:00", "until": "2026-01-01T00:00"}
    ).content.decode()
    until_field = page[page.index('id="r-until"') :]
    assert "Give an `until` later than `since`." in html.unescape(until_field)
    hook.enabled = False
    hook.save()
    response = alice_client.post(replay_url, {"source": source.pk, "since": "2026-01-01T00:00"})
    assert response.status_code == 400 and "enable it before replaying" in response.content.decode()
    assert not Job.objects.exists()


def test_replay_from_the_page_makes_a_job_and_an_audit_entry(alice_client, alice, source, hook):
    make_events(source, 3, at=timezone.now() - timedelta(minutes=30))
    since = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = alice_client.post(url("destination-replay", hook), {"source": source.pk, "since": since})
    job = Job.objects.get()
    assert response["Location"] == url("job", slug="acme", job_id=job.pk)
    assert (job.kind, job.total, job.destination_id, job.created_by) == ("replay", 3, hook.pk, alice)
    entry = AuditEntry.objects.get(action="destination.replayed")
    assert entry.via == "dashboard" and entry.changes["total"] == [None, 3]


# --- jobs ----------------------------------------------------------------------------------------------


def test_job_page_without_script_refreshes_itself_until_the_job_is_finished(alice_client, alice, source, hook):
    job = Job.objects.create(
        workspace=source.workspace, destination=hook, kind="redrive", total=10, done=4, status=JobStatus.RUNNING,
        created_by=alice, result={"redriven": 3, "no_longer_dead": 1},
    )  # fmt: skip
    page = text(alice_client.get(url("job", slug="acme", job_id=job.pk)))
    assert '<noscript><meta http-equiv="refresh"' in page
    assert by_testid(page, "job-done") == ["4"] and by_testid(page, "job-percent") == ["40"]
    assert "Re-driven: pending again" in page and "No longer dead-lettered when reached" in page
    Job.objects.filter(pk=job.pk).update(status=JobStatus.DONE, done=10, finished_at=timezone.now())
    page = text(alice_client.get(url("job", slug="acme", job_id=job.pk)))
    assert "http-equiv" not in page and by_testid(page, "job-status") == ["Done"]


def test_job_progress_answers_what_the_page_shows(alice_client, source, hook):
    job = Job.objects.create(workspace=source.workspace, destination=hook, kind="replay", total=8, done=2,
                             status=JobStatus.RUNNING, result={"deliveries_created": 2})  # fmt: skip
    found = alice_client.get(url("job-progress", slug="acme", job_id=job.pk)).json()
    assert (found["status"], found["done"], found["total"], found["percent"], found["finished"]) == (
        "running", 2, 8, 25.0, False,
    )  # fmt: skip
    assert found["results"] == [{"key": "deliveries_created", "label": "Deliveries created", "count": 2}]


def test_jobs_list_and_its_empty_state(alice_client, alice, source, hook):
    assert 'data-testid="no-jobs"' in text(alice_client.get(url("jobs", slug="acme")))
    Job.objects.create(workspace=source.workspace, destination=hook, kind="replay", created_by=alice,
                       parameters={"source": source.pk, "since": "2026-01-01T00:00:00+00:00",
                                   "until": "2026-01-02T00:00:00+00:00"})  # fmt: skip
    page = text(alice_client.get(url("jobs", slug="acme")))
    assert "Events of Website from 2026-01-01 00:00:00 UTC to 2026-01-02 00:00:00 UTC" in page


# --- roles and audit through the API -------------------------------------------------------------------


@pytest.fixture
def reader(make_user, alice_workspace):
    carol = make_user("carol")
    Membership.objects.create(workspace=alice_workspace, user=carol, role=Role.READ_ONLY)
    return carol


def test_read_only_member_sees_no_redrive_or_replay_controls(client, reader, source, hook, sink):
    [letter] = dead(source, hook, sink, track())
    client.force_login(reader)
    delivery_page = text(client.get(url("destination-delivery", hook)))
    assert 'data-testid="replay-link"' not in delivery_page
    letters_page = text(client.get(url("destination-dead-letters", hook)))
    assert 'data-testid="dead-letter-row"' in letters_page
    assert "redrive-one" not in letters_page and "redrive-all" not in letters_page
    assert "redrive-one" not in text(client.get(url("dead-letter", hook, delivery_id=letter.pk)))
    replay_page = text(client.get(url("destination-replay", hook)))
    assert 'data-testid="read-only"' in replay_page and "replay-form" not in replay_page


def test_read_only_member_is_refused_redrive_and_replay(client, reader, source, hook, sink):
    [letter] = dead(source, hook, sink, track())
    client.force_login(reader)
    assert client.post(url("dead-letter-redrive", hook), {"delivery": letter.pk}).status_code == 403
    assert client.post(url("dead-letter-redrive", hook), {}).status_code == 403
    since = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert client.post(url("destination-replay", hook), {"source": source.pk, "since": since}).status_code == 403
    assert Delivery.objects.get(pk=letter.pk).status == Status.DEAD
    assert not Job.objects.exists() and not AuditEntry.objects.exists()


def test_api_redrive_and_replay_are_audited(alice, source, hook, sink):
    api = api_client_for(alice)
    [letter] = dead(source, hook, sink, track())
    assert api.post(f"/api/v1/dead-letters/{letter.pk}/redrive/").status_code == 200
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    assert api.post(f"/api/v1/destinations/{hook.pk}/replay/", {"source": source.pk, "since": since}).status_code == 202
    entries = AuditEntry.objects.order_by("id")
    assert [(e.action, e.via, e.actor) for e in entries] == [
        ("dead_letters.redriven", "api", alice), ("destination.replayed", "api", alice),
    ]  # fmt: skip


# --- queries do not grow with rows ---------------------------------------------------------------------


def queries(client, address) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(address).status_code == 200
    return len(captured)


def test_pages_make_as_many_queries_for_many_rows_as_for_one(alice_client, alice, source, hook, sink):
    def rows(count, failing):
        dead(source, hook, sink, *[track() for _ in range(failing)])  # with their attempts, for the errors
        for n in range(count):
            make_dead_letter(hook, message_id=f"msg-dead-{uuid.uuid4()}")
            make_delivery(hook, Status.DELIVERED, finished_ago=timedelta(minutes=n))
            Job.objects.create(workspace=source.workspace, destination=hook, kind=("replay", "redrive")[n % 2],
                               created_by=alice, parameters={"source": source.pk})  # fmt: skip

    pages = [url("destination-delivery", hook), url("destination-dead-letters", hook), url("jobs", slug="acme")]
    rows(1, failing=1)
    few = [queries(alice_client, page) for page in pages]
    rows(120, failing=15)
    assert [queries(alice_client, page) for page in pages] == few
    assert Delivery.objects.filter(status=Status.DEAD).count() == 137


def test_delivery_detail_reads_all_its_attempts_in_as_many_queries_as_one(alice_client, source, hook, sink):
    sink.default = Reply(503, body=b"busy")
    ingest(source, track())
    drain(hook.pk)
    delivery = Delivery.objects.get(destination=hook)
    page = url("dead-letter", hook, delivery_id=delivery.pk)
    one = queries(alice_client, page)
    for _ in range(5):
        make_due(hook)
        drain(hook.pk)
    assert delivery.attempts_made.count() == 6
    assert queries(alice_client, page) == one
    assert text(alice_client.get(page)).count('data-testid="attempt"') == 6


# --- through a real Celery worker ----------------------------------------------------------------------


@pytest.mark.slow
def test_redrive_from_the_page_goes_through_a_worker_to_the_endpoint(celery_worker, client, alice, source, sink):
    hook = webhook(source.workspace, sink.url, name="Hook", sources=[source])
    letters = dead(source, hook, sink, track(event="Signed Up"), track(event="Signed Up"), track(event="Other"))
    hook.retry_hours = 4
    hook.save(update_fields=["retry_hours"])
    celery_worker(env=child_env(CDP_SWEEP_SECONDS="1"))
    client.force_login(alice)
    before = len(sink.requests)

    response = client.post(url("dead-letter-redrive", hook), {"event": "Signed Up"})
    job = Job.objects.get()
    assert response["Location"] == url("job", slug="acme", job_id=job.pk)
    received = sink.wait_for(lambda got: len(got) >= before + 2)
    assert sorted(m["messageId"] for m in messages_in(received[before:])) == sorted(
        letter.message_id for letter in letters[:2]
    )
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.DONE)
    page = text(client.get(url("job", slug="acme", job_id=job.pk)))
    assert by_testid(page, "job-status") == ["Done"] and by_testid(page, "job-done") == ["2"]
    assert "Re-driven: pending again" in page
    wait_for(lambda: Delivery.objects.filter(destination=hook, status=Status.DELIVERED).count() == 2)
    assert Delivery.objects.get(pk=letters[2].pk).status == Status.DEAD


@pytest.mark.slow
def test_replay_from_the_page_goes_through_a_worker_to_the_endpoint(celery_worker, client, alice, source, sink):
    stored = ingest(source, track(), track(), track())  # before the destination existed: nobody got them
    hook = webhook(source.workspace, sink.url, name="Late hook", sources=[source])
    celery_worker(env=child_env(CDP_SWEEP_SECONDS="1"))
    client.force_login(alice)
    since = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")

    response = client.post(url("destination-replay", hook), {"source": source.pk, "since": since})
    job = Job.objects.get()
    assert response["Location"] == url("job", slug="acme", job_id=job.pk)
    received = sink.wait_for_requests(3)
    assert len(list(messages_in(received))) == 3
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.DONE)
    page = text(client.get(url("job", slug="acme", job_id=job.pk)))
    assert by_testid(page, "job-status") == ["Done"] and "Deliveries created" in page
    assert set(Delivery.objects.filter(destination=hook).values_list("event_id", flat=True)) == set(stored)
