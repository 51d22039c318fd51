"""The observed schema: events and their properties/traits recorded while processing, with types,
first and last seen, volume and caps; `field_paths` for the mapping editor; the schema page."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

import pytest
from django.urls import reverse

from cdp.core.models import Membership, Role, Source
from cdp.insights import schema
from cdp.insights.models import ObservedEvent, ObservedField
from tests.support.delivery import ingest

pytestmark = pytest.mark.django_db

T1 = datetime(2026, 11, 2, 9, 15, 30, tzinfo=UTC)
T2 = datetime(2026, 11, 3, 17, 40, 5, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def send(source: Source, *messages: dict[str, Any], at: datetime = T1) -> None:
    """Accept the messages as the Tracking API would, at `at`, and run the processor."""
    ingest(source, *messages, at=at)


def track(name: str = "Order Completed", user: str = "u1", **properties: Any) -> dict[str, Any]:
    return {"type": "track", "event": name, "userId": user, "properties": properties}


def fields(source: Source, name: str = "Order Completed") -> dict[tuple[str, str], ObservedField]:
    rows = ObservedField.objects.filter(observed_event__source=source, observed_event__event_name=name)
    return {(f.path, f.json_type): f for f in rows}


def test_schema_records_each_event_with_volume_and_first_and_last_seen(source):
    send(source, track(total=1), track(total=2), {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}})
    send(source, track(total=3), {"type": "page", "anonymousId": "a1", "name": "Pricing"}, at=T2)
    events = {(e.event_type, e.event_name): e for e in ObservedEvent.objects.filter(source=source)}
    assert set(events) == {("track", "Order Completed"), ("identify", ""), ("page", "Pricing")}
    order = events[("track", "Order Completed")]
    assert (order.count, order.first_seen, order.last_seen) == (3, T1, T2)
    assert (events[("page", "Pricing")].count, events[("page", "Pricing")].first_seen) == (1, T2)


def test_schema_records_property_and_trait_paths_with_their_json_types(source):
    send(
        source,
        track(total=42.5, currency="EUR", paid=True, coupon=None, items=[{"sku": "a"}], address={"city": "Paris"}),
        {"type": "identify", "userId": "u1", "traits": {"email": "ada@example.com", "age": 36}},
        {"type": "track", "event": "Odd Keys", "userId": "u1", "properties": {"a.b": 1, "with space": "x"}},
    )
    assert set(fields(source)) == {
        ("properties.total", "number"), ("properties.currency", "string"), ("properties.paid", "boolean"),
        ("properties.coupon", "null"), ("properties.items", "array"), ("properties.address", "object"),
        ("properties.address.city", "string"),
    }  # fmt: skip
    assert set(fields(source, "")) == {("traits.email", "string"), ("traits.age", "number")}
    # Keys the dotted spelling cannot express are quoted as the mapping language reads them.
    assert set(fields(source, "Odd Keys")) == {('properties["a.b"]', "number"), ('properties["with space"]', "string")}


def test_schema_counts_a_path_per_type_so_mixed_types_show(source):
    send(source, track(total=42.5), track(total=10))
    send(source, track(total="42.50"), at=T2)
    seen = fields(source)
    number, text = seen[("properties.total", "number")], seen[("properties.total", "string")]
    assert (number.count, number.first_seen, number.last_seen) == (2, T1, T1)
    assert (text.count, text.first_seen, text.last_seen) == (1, T2, T2)


def test_schema_follows_objects_three_levels_deep_only(source):
    send(source, track(a={"b": {"c": {"d": {"e": 1}}, "n": 1}}))
    assert set(fields(source)) == {
        ("properties.a", "object"), ("properties.a.b", "object"), ("properties.a.b.n", "number"),
        ("properties.a.b.c", "object"),
    }  # fmt: skip


def test_schema_does_not_count_duplicates(source):
    message = {**track(total=1), "messageId": "m-1"}
    send(source, message)
    send(source, message, at=T2)
    order = ObservedEvent.objects.get(source=source, event_name="Order Completed")
    assert (order.count, order.last_seen) == (1, T1)
    assert fields(source)[("properties.total", "number")].count == 1


def test_schema_keeps_at_most_max_fields_per_event_and_still_counts_known_ones(source):
    many = {f"p{n:03}": n for n in range(schema.MAX_FIELDS + 50)}
    send(source, track(**many))
    kept = fields(source)
    assert len(kept) == schema.MAX_FIELDS
    assert ("properties.p000", "number") in kept and (f"properties.p{schema.MAX_FIELDS:03}", "number") not in kept
    send(source, track(p000=1, brand_new="x"), at=T2)
    kept = fields(source)
    assert len(kept) == schema.MAX_FIELDS and ("properties.brand_new", "string") not in kept
    assert kept[("properties.p000", "number")].count == 2


def test_schema_keeps_at_most_max_events_per_source(source):
    send(source, *[track(f"Event {n:04}") for n in range(schema.MAX_EVENTS + 5)])
    assert ObservedEvent.objects.filter(source=source).count() == schema.MAX_EVENTS
    send(source, track("Event 0000"), track("Another new name"), at=T2)
    assert ObservedEvent.objects.filter(source=source).count() == schema.MAX_EVENTS
    assert ObservedEvent.objects.get(source=source, event_name="Event 0000").count == 2
    assert not ObservedEvent.objects.filter(event_name="Another new name").exists()
    # Other sources are not affected by one source's limit.
    other = Source.objects.create(workspace=source.workspace, name="Backend")
    send(other, track("Another new name"))
    assert ObservedEvent.objects.filter(source=other).count() == 1


def test_field_paths_lists_observed_paths_most_frequent_first(source):
    other = Source.objects.create(workspace=source.workspace, name="Backend")
    send(
        source, track(total=1, currency="EUR"), track(total=2), {"type": "identify", "userId": "u", "traits": {"x": 1}}
    )
    send(other, track("Signed Up", plan="pro"))
    assert schema.field_paths([source.pk]) == [
        ("properties.total", "number"), ("properties.currency", "string"), ("traits.x", "number"),
    ]  # fmt: skip
    assert schema.field_paths([source.pk], event_type="identify") == [("traits.x", "number")]
    assert schema.field_paths([source.pk, other.pk], event_name="Signed Up") == [("properties.plan", "string")]
    assert schema.field_paths([other.pk], event_type="track", event_name="Order Completed") == []


# --- The schema page -------------------------------------------------------------------------------


def schema_url(source: Source) -> str:
    return reverse("dashboard:source-schema", args=[source.workspace.slug, source.pk])


def page_text(response) -> str:
    return html.unescape(response.content.decode())


def test_schema_page_shows_events_fields_types_and_volume(client, alice, source):
    send(source, track(total=42.5), track(total="7"), {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}})
    client.force_login(alice)
    response = client.get(schema_url(source))
    assert response.status_code == 200
    page = page_text(response)
    assert "Order Completed" in page and "identify calls" in page
    order = next(e for e in response.context["events"] if e.event_name == "Order Completed")
    assert order.count == 2
    [total] = order.fields
    assert (total.path, sorted(total.types), total.count) == ("properties.total", ["number", "string"], 2)
    assert "mixed" in page  # a field sent with two types is pointed out
    assert f"{schema.MAX_FIELDS} fields per event" in page  # the caps are stated on the page


def test_schema_page_search_keeps_matching_events_and_fields(client, alice, source):
    send(source, track(total=1), track("Signed Up", plan="pro"))
    client.force_login(alice)
    by_field = client.get(schema_url(source), {"q": "PLAN"})
    assert [e.event_name for e in by_field.context["events"]] == ["Signed Up"]
    by_name = client.get(schema_url(source), {"q": "order"})
    assert [e.event_name for e in by_name.context["events"]] == ["Order Completed"]
    nothing = page_text(client.get(schema_url(source), {"q": "zzz"}))
    assert "No event or field matches “zzz”" in nothing


def test_schema_page_of_a_new_source_says_what_to_do(client, alice, source):
    client.force_login(alice)
    page = page_text(client.get(schema_url(source)))
    assert "No events yet" in page and "Install the snippet" in page


def test_schema_page_is_readable_by_read_only_members(client, make_user, source):
    reader = make_user("reader")
    Membership.objects.create(workspace=source.workspace, user=reader, role=Role.READ_ONLY)
    send(source, track(total=1))
    client.force_login(reader)
    assert "properties.total" in page_text(client.get(schema_url(source)))


def test_schema_page_queries_do_not_grow_with_events(client, alice, source, django_assert_max_num_queries):
    send(source, *[track(f"Event {n:03}", total=n, currency="EUR") for n in range(200)])
    client.force_login(alice)
    with django_assert_max_num_queries(6):
        response = client.get(schema_url(source))
    assert len(response.context["events"]) == 200
