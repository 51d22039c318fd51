"""The insights hook under committed batches, as in production: a field row is rewritten at most once a
minute per process, the sightings in between are held and added later (with the field's next write, or
by the sweep when it is not seen again); event counts stay exact, and a held field whose rows went away
does not fail the batch that would add to it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

from cdp.core.models import Source
from cdp.insights import observe
from cdp.insights.models import MonthlyUsers, ObservedEvent, ObservedField
from cdp.processing.models import Event
from tests.support.delivery import ingest

T1 = datetime(2026, 11, 2, 9, 15, 30, tzinfo=UTC)
T2 = datetime(2026, 11, 2, 9, 16, 10, tzinfo=UTC)
T3 = datetime(2026, 11, 2, 9, 17, 45, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _committed(transactional_db: None) -> Iterator[None]:
    """Every batch commits (so the hook learns what it wrote), and no process memory leaks between tests."""
    observe.forget()
    yield
    observe.forget()


def send(source: Source, *messages: dict[str, Any], at: datetime) -> None:
    ingest(source, *messages, at=at)


def track(name: str = "Order Completed", **properties: Any) -> dict[str, Any]:
    return {"type": "track", "event": name, "userId": "u1", "properties": properties}


def total_field(source: Source, name: str = "Order Completed") -> ObservedField:
    fields = ObservedField.objects.filter(observed_event__source=source, observed_event__event_name=name)
    return fields.get(path="properties.total", json_type="number")


def test_hook_holds_known_fields_within_the_minute_and_adds_them_with_the_next_write(source, monkeypatch):
    send(source, track(total=1), at=T1)
    send(source, track(total=2), track(total=3), at=T2)
    # The event is exact at once; its known field is not rewritten within the minute.
    assert ObservedEvent.objects.get(source=source, event_name="Order Completed").count == 3
    assert (total_field(source).count, total_field(source).last_seen) == (1, T1)
    # A field new in the batch is written at once even so.
    send(source, track(total=4, coupon="WELCOME"), at=T2)
    assert ObservedField.objects.get(path="properties.coupon").count == 1

    monkeypatch.setattr(observe, "FIELD_WRITE_SECONDS", 0.0)  # the minute has passed
    send(source, track(total=5), at=T3)
    field = total_field(source)
    assert (field.count, field.first_seen, field.last_seen) == (5, T1, T3)


def test_hook_sweep_adds_held_sightings_of_a_field_not_seen_again(source, monkeypatch):
    send(source, track(total=1), at=T1)
    send(source, track(total=2), at=T2)
    assert total_field(source).count == 1
    monkeypatch.setattr(observe, "FIELD_WRITE_SECONDS", 0.0)
    send(source, track("Signed Up", plan="pro"), at=T3)  # another event: "total" only from the held sightings
    field = total_field(source)
    assert (field.count, field.last_seen) == (2, T2)


def test_hook_held_sightings_of_a_deleted_event_do_not_fail_later_batches(source, alice_workspace, monkeypatch):
    send(source, track(total=1), at=T1)
    send(source, track(total=2), at=T2)  # held for a row about to go away
    ObservedEvent.objects.filter(source=source).delete()
    monkeypatch.setattr(observe, "FIELD_WRITE_SECONDS", 0.0)
    other = Source.objects.create(workspace=alice_workspace, name="App", kind="server")
    send(other, track("Signed Up", plan="pro"), at=T3)
    assert Event.objects.filter(source=other).count() == 1
    assert ObservedField.objects.filter(observed_event__source=other, path="properties.plan").get().count == 1
    assert not ObservedField.objects.filter(observed_event__source=source).exists()


def test_rebuild_insights_counts_every_field_sighting_exactly(source):
    send(source, track(total=1), at=T1)
    send(source, track(total=2), track(total="3"), at=T2)
    assert total_field(source).count == 1  # one sighting held
    call_command("rebuild_insights", verbosity=0)
    assert total_field(source).count == 2
    assert ObservedField.objects.get(path="properties.total", json_type="string").count == 1
    assert ObservedEvent.objects.get(source=source, event_name="Order Completed").count == 3


def test_hook_counts_each_person_once_a_month_across_committed_batches_and_restarts(source, alice_workspace):
    def monthly(month: datetime) -> tuple[int, int]:
        row = MonthlyUsers.objects.filter(workspace=alice_workspace, month=month.date().replace(day=1)).first()
        return (row.users, row.anonymous) if row else (0, 0)

    visit = {"type": "page", "name": "Home", "anonymousId": "a1"}
    send(source, visit, at=T1)
    send(source, visit, at=T2)  # known to this process: skipped
    assert monthly(T1) == (0, 1)
    send(source, {"type": "identify", "userId": "u1", "anonymousId": "a1"}, at=T2)
    assert monthly(T1) == (1, 0)  # the visitor turned out to be u1
    december = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    send(source, track(total=1), at=december)
    observe.forget()  # a restarted worker knows nobody: the database still counts u1 once
    send(source, track(total=2), track(total=3), at=december)
    send(source, visit, at=december)  # a1 is tied to u1 for good
    assert (monthly(T1), monthly(december)) == ((1, 0), (1, 0))


def test_schema_page_says_field_counts_may_lag(client, alice, source, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    send(source, track(total=1), at=T1)
    client.force_login(alice)
    url = reverse("dashboard:source-schema", args=[source.workspace.slug, source.pk])
    page = client.get(url).content.decode()
    assert "Event counts are exact; a field's count and last seen can lag about a minute behind." in page
