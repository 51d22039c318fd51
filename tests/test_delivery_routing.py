"""Routing: which destinations get a delivery of an event, with what payload, and how the events
a destination does not get are counted (never silently dropped).

Events go through the real processor, which routes them in its transaction."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest
from django.utils import timezone

from cdp.core.models import Destination, Source
from cdp.delivery.engine import drain
from cdp.delivery.models import Delivery, FilteredCount
from cdp.delivery.routing import route_stored
from cdp.destinations.models import Subscription
from cdp.destinations.services import save_subscription
from cdp.processing.processor import process_pending
from cdp.tracking.models import IntakeRequest
from tests.support.delivery import ingest, make_due, track, webhook
from tests.support.sink import Sink

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_lanes")]

NOWHERE = "http://127.0.0.1:9/hook"  # routing never sends; the discard port is never reached


@pytest.fixture
def web(make_workspace) -> Source:
    return Source.objects.create(workspace=make_workspace("acme"), name="Website", kind="website")


@pytest.fixture
def app(web: Source) -> Source:
    return Source.objects.create(workspace=web.workspace, name="Mobile app", kind="mobile")


@pytest.fixture
def destinations(web: Source, app: Source, make_workspace) -> dict[str, Destination]:
    elsewhere = Source.objects.create(workspace=make_workspace("globex"), name="Theirs", kind="website")
    return {
        "All Sources": webhook(web.workspace, NOWHERE, name="All Sources"),
        "Web Only": webhook(web.workspace, NOWHERE, name="Web Only", sources=[web]),
        "App Only": webhook(web.workspace, NOWHERE, name="App Only", sources=[app]),
        "Paused": webhook(web.workspace, NOWHERE, name="Paused", enabled=False),
        "Elsewhere": webhook(elsewhere.workspace, NOWHERE, name="Elsewhere"),
    }


def delivered_to() -> Counter[str]:
    return Counter(Delivery.objects.values_list("destination__name", flat=True))


def filtered() -> dict[tuple[str, str], int]:
    counts: Counter[tuple[str, str]] = Counter()
    for name, reason, count in FilteredCount.objects.values_list("destination__name", "reason", "count"):
        counts[(name, reason)] += count
    return dict(counts)


def only_subscription(destination: Destination) -> Subscription:
    [subscription] = destination.subscriptions.all()
    return subscription


# --- who gets an event -----------------------------------------------------------------------------


def test_route_delivers_to_enabled_destinations_connected_to_the_source(web, app, destinations):
    ingest(web, track())
    ingest(app, track(), track())

    assert delivered_to() == {"All Sources": 3, "Web Only": 1, "App Only": 2}
    # The paused destination would have got all three: each is counted with its reason. The others
    # were never meant to get them (another source, another workspace), so nothing is counted.
    assert filtered() == {("Paused", "destination_disabled"): 3}


def test_route_counts_disabled_destination_until_it_is_enabled(web, destinations):
    ingest(web, track())
    Destination.objects.filter(pk=destinations["Paused"].pk).update(enabled=True)
    ingest(web, track())

    assert delivered_to()["Paused"] == 1
    assert filtered() == {("Paused", "destination_disabled"): 1}


@pytest.mark.parametrize(
    ("integrations", "receivers"),
    [
        ({"All": False}, set()),
        ({"Webhook": False}, set()),  # by the destination type's name
        ({"webhook": False}, set()),  # by the destination type's key
        ({"Web Only": False}, {"All Sources"}),  # by the destination's own name
        ({"All": False, "Web Only": True}, {"Web Only"}),  # its own entry wins over All
        ({"All": True, "Webhook": False}, set()),
        ({"Amplitude": False}, {"All Sources", "Web Only"}),  # another tool's entry changes nothing here
        ({"Web Only": {"apiKey": "x"}}, {"All Sources", "Web Only"}),  # settings for a tool mean yes
    ],
)
def test_route_respects_the_integrations_object(web, destinations, integrations: dict[str, Any], receivers):
    ingest(web, track(integrations=integrations), track(integrations=integrations))

    assert set(delivered_to()) == receivers
    turned_off = {"All Sources", "Web Only"} - receivers
    assert filtered() == {
        ("Paused", "destination_disabled"): 2,
        **{(name, "integrations_off"): 2 for name in turned_off},
    }


def test_route_takes_integrations_from_the_batch_envelope(web, destinations):
    """Segment libraries may put `integrations` on the batch; every message of it inherits them."""
    body = {"integrations": {"All": False, "All Sources": True}, "batch": [track(), track()]}
    IntakeRequest.objects.create(source=web, received_at=timezone.now(), endpoint="batch", body=orjson.dumps(body))

    process_pending()

    assert delivered_to() == {"All Sources": 2}
    assert filtered()[("Web Only", "integrations_off")] == 2


def test_route_counts_events_no_trigger_matched(web, destinations):
    save_subscription(only_subscription(destinations["Web Only"]), {"trigger": 'type = "track"'})

    ingest(
        web, track(), {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}}, {"type": "page", "userId": "u1"}
    )

    assert delivered_to() == {"All Sources": 3, "Web Only": 1}
    assert filtered() == {("Paused", "destination_disabled"): 3, ("Web Only", "no_trigger_matched"): 2}


def test_route_makes_one_delivery_per_matching_subscription(web, destinations):
    hook = destinations["Web Only"]
    save_subscription(only_subscription(hook), {"trigger": 'type = "track"'})
    Subscription.objects.create(
        destination=hook, name="Big orders", action="send", trigger="properties.total > 100",
        mapping={"payload": {"big": True}},
    )  # fmt: skip

    ingest(web, track(properties={"total": 500}), track(properties={"total": 5}))

    payloads = sorted(
        (d.event_name, d.payload == {"payload": {"big": True}}) for d in Delivery.objects.filter(destination=hook)
    )
    assert payloads == [("Order Completed", False), ("Order Completed", False), ("Order Completed", True)]


# --- what the deliveries carry ---------------------------------------------------------------------


def test_route_delivery_carries_the_mapped_payload(web, destinations):
    hook = destinations["Web Only"]
    mapping = {"payload": {"order": {"@path": "$.properties.order_id"}, "user": {"@path": "$.userId"}, "v": 2}}
    save_subscription(only_subscription(hook), {"mapping": mapping})

    [event_id] = ingest(web, track(messageId="m-42", userId="ada", properties={"order_id": "o-7"}))

    delivery = Delivery.objects.get(destination=hook)
    assert delivery.payload == {"payload": {"order": "o-7", "user": "ada", "v": 2}}
    assert (delivery.status, delivery.action, delivery.event_name) == ("pending", "send", "Order Completed")
    assert (delivery.event_id, delivery.source_id, delivery.message_id) == (event_id, web.pk, "m-42")
    assert delivery.received_at is not None
    everything = Delivery.objects.get(destination=destinations["All Sources"]).payload["payload"]
    assert (everything["messageId"], everything["userId"], everything["properties"]) == (
        "m-42",
        "ada",
        {"order_id": "o-7"},
    )


def test_route_mapping_error_makes_a_failed_delivery_that_is_never_sent(web):
    with Sink() as sink:
        hook = webhook(web.workspace, sink.url)
        mapping = {"payload": {"total": {"@toNumber": {"@path": "$.properties.total"}}}}
        save_subscription(only_subscription(hook), {"mapping": mapping})

        ingest(web, track(messageId="bad", properties={"total": "lots"}), track(messageId="good"))
        make_due(hook)
        drain(hook.pk)

        assert [r.json() for r in sink.requests] == [{"total": 42.5}]
    bad = Delivery.objects.get(message_id="bad")
    assert (bad.status, bad.error_class, bad.attempts) == ("failed", "payload", 0)
    assert "payload.total" in bad.last_error
    assert Delivery.objects.get(message_id="good").status == "delivered"


# --- idempotence -----------------------------------------------------------------------------------


def test_route_twice_creates_nothing_new(web, app, destinations):
    event_ids = ingest(web, track(), track()) + ingest(app, track())
    before = sorted(Delivery.objects.values_list("pk", "destination_id", "event_id", "status"))
    assert len(before) == 2 * 2 + 2  # web events: All Sources, Web Only; app event: All Sources, App Only

    route_stored(event_ids)
    route_stored(event_ids)

    assert sorted(Delivery.objects.values_list("pk", "destination_id", "event_id", "status")) == before


def test_route_same_message_sent_again_creates_nothing_new(web, destinations):
    ingest(web, track(messageId="again"))
    ingest(web, track(messageId="again"))

    assert delivered_to() == {"All Sources": 1, "Web Only": 1}
