"""The debugger's websocket consumers with Channels' WebsocketCommunicator: who may watch, what a
viewer gets on connect, and the live items the taps publish (through the Redis channel layer)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from cdp.core.models import Membership, Role, Source
from cdp.debugger import stages, watch
from cdp.debugger.taps import source_group, taps
from cdp.delivery.engine import drain
from cdp.routing import websocket_urlpatterns
from tests.support.data import make_event, make_rejected
from tests.support.delivery import forget_lanes_and_breakers, ingest, track, webhook
from tests.support.sink import Reply, Sink

pytestmark = pytest.mark.django_db(transaction=True)
TIMEOUT = 5


@pytest.fixture(autouse=True)
def _fresh_breakers() -> None:
    forget_lanes_and_breakers()


def run(scenario):
    """Run an async scenario in the test's thread, so the consumers' ORM calls share its connection."""
    return async_to_sync(scenario)()


async def open_stream(user, path: str) -> tuple[WebsocketCommunicator, bool, int | None]:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    connected, code = await communicator.connect(timeout=TIMEOUT)
    if not connected:  # as the server does after a refused handshake: the consumer must then end
        await communicator.disconnect(timeout=TIMEOUT)
    return communicator, connected, code


async def next_message(communicator: WebsocketCommunicator) -> dict:
    return orjson.loads(await communicator.receive_from(timeout=TIMEOUT))


async def live_items(communicator: WebsocketCommunicator, wanted: int) -> tuple[list[dict], int]:
    """Live items until `wanted` have arrived (they may come in several messages)."""
    items, dropped = [], 0
    while len(items) < wanted:
        message = await next_message(communicator)
        assert message["kind"] == "live"
        items += message["items"]
        dropped += message["dropped"]
    return items, dropped


def test_source_consumer_member_gets_the_backlog_then_live_items(alice, source):
    stored = make_event(source, message_id="old-1")
    make_rejected(source, code="invalid_type")

    async def scenario():
        communicator, connected, _ = await open_stream(alice, f"/ws/debug/sources/{source.pk}/")
        assert connected
        backlog = await next_message(communicator)
        assert backlog["kind"] == "backlog"
        assert [(i["kind"], i.get("eventId")) for i in backlog["items"]] == [("stored", stored.pk), ("rejected", None)]
        assert backlog["items"][1]["code"] == "invalid_type"

        taps.refresh()  # as the taps' thread does twice a second
        batch = {"batch": [track(messageId="new-1", event="Signed Up"), {"type": "track"}]}
        rejected = [{"index": 1, "code": "invalid_message", "message": "userId or anonymousId is required"}]
        stages.accepted(source.pk, "batch", orjson.dumps(batch), datetime.now(UTC), 1, rejected)
        items, dropped = await live_items(communicator, 2)
        assert [(i["kind"], i["messageId"], i["event"]) for i in items] == [
            ("accepted", "new-1", "Signed Up"),
            ("rejected", "", ""),
        ]
        assert items[1]["reason"] == "userId or anonymousId is required" and dropped == 0
        assert items[0]["message"]["properties"] == batch["batch"][0]["properties"]
        await communicator.disconnect()

    run(scenario)


def test_source_consumer_streams_stored_and_duplicate_from_the_processor(alice, source):
    async def scenario():
        communicator, connected, _ = await open_stream(alice, f"/ws/debug/sources/{source.pk}/")
        assert connected and (await next_message(communicator))["items"] == []
        taps.refresh()
        await sync_to_async(ingest)(source, track(messageId="p-1"), track(messageId="p-1"))
        items, _ = await live_items(communicator, 2)
        assert [(i["kind"], i["messageId"]) for i in items] == [("stored", "p-1"), ("duplicate", "p-1")]
        assert items[0]["eventId"] and items[1]["eventId"] is None
        await communicator.disconnect()

    run(scenario)


def test_destination_consumer_member_sees_the_failed_attempt_and_its_retry(alice, source):
    with Sink(default=Reply(500, body=b"upstream broke")) as sink:
        hook = webhook(source.workspace, sink.url)
        ingest(source, track(messageId="d-1", event="Order Completed"))

        async def scenario():
            communicator, connected, _ = await open_stream(alice, f"/ws/debug/destinations/{hook.pk}/")
            assert connected
            [pending] = (await next_message(communicator))["items"]
            assert (pending["kind"], pending["status"], pending["messageId"]) == ("delivery", "pending", "d-1")
            taps.refresh()
            await sync_to_async(drain)(hook.pk)
            [attempt], _ = await live_items(communicator, 1)
            assert (attempt["kind"], attempt["deliveryId"], attempt["attempt"]) == ("attempt", pending["deliveryId"], 1)
            assert (attempt["status"], attempt["responseStatus"], attempt["outcome"]) == ("retrying", 500, "retry")
            assert attempt["retryAt"] and not attempt["deadLettered"]
            assert attempt["payload"]["payload"]["messageId"] == "d-1"
            assert "upstream broke" in attempt["responseBody"]
            await communicator.disconnect()

        run(scenario)


def test_destination_consumer_shows_a_dead_letter(alice, source):
    with Sink(default=Reply(503)) as sink:
        hook = webhook(source.workspace, sink.url, retry_hours=0.0)  # no time left to retry
        ingest(source, track(messageId="dead-1"))

        async def scenario():
            communicator, connected, _ = await open_stream(alice, f"/ws/debug/destinations/{hook.pk}/")
            assert connected
            await next_message(communicator)
            taps.refresh()
            await sync_to_async(drain)(hook.pk)
            [attempt], _ = await live_items(communicator, 1)
            assert (attempt["status"], attempt["deadLettered"], attempt["retryAt"]) == ("dead", True, None)
            assert attempt["responseStatus"] == 503
            await communicator.disconnect()

        run(scenario)


def test_source_consumer_with_the_in_memory_layer_gets_live_items(alice, source, settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

    async def scenario():
        communicator, connected, _ = await open_stream(alice, f"/ws/debug/sources/{source.pk}/")
        assert connected
        await next_message(communicator)
        taps.refresh()
        body = orjson.dumps({"userId": "ada", "event": "Signed Up", "messageId": "mem-1"})
        stages.accepted(source.pk, "track", body, datetime.now(UTC), 1, [])
        [item], _ = await live_items(communicator, 1)
        assert (item["kind"], item["messageId"]) == ("accepted", "mem-1")
        await communicator.disconnect()

    run(scenario)


@pytest.mark.parametrize("kind", ["sources", "destinations"])
def test_consumer_refuses_anonymous_users(source, kind):
    hook = webhook(source.workspace, "http://127.0.0.1:9/hook")
    target = source.pk if kind == "sources" else hook.pk

    async def scenario():
        communicator, connected, code = await open_stream(AnonymousUser(), f"/ws/debug/{kind}/{target}/")
        assert (connected, code) == (False, 4401)

    run(scenario)


@pytest.mark.parametrize("kind", ["sources", "destinations"])
def test_consumer_refuses_a_user_of_another_workspace(bob, bob_workspace, source, kind):
    hook = webhook(source.workspace, "http://127.0.0.1:9/hook")
    target = source.pk if kind == "sources" else hook.pk

    async def scenario():
        communicator, connected, code = await open_stream(bob, f"/ws/debug/{kind}/{target}/")
        assert (connected, code) == (False, 4403)

    run(scenario)


def test_consumer_refuses_a_user_without_any_workspace(make_user, source):
    carol = make_user("carol")

    async def scenario():
        _, connected, code = await open_stream(carol, f"/ws/debug/sources/{source.pk}/")
        assert (connected, code) == (False, 4403)
        _, connected, code = await open_stream(carol, "/ws/debug/sources/987654321/")
        assert (connected, code) == (False, 4403)

    run(scenario)


def test_consumer_cuts_off_a_member_who_is_removed(alice, source, make_user, monkeypatch):
    monkeypatch.setattr(watch, "WATCH_REFRESH_SECONDS", 0.1)
    carol = make_user("carol")
    membership = Membership.objects.create(workspace=source.workspace, user=carol, role=Role.READ_ONLY)

    async def scenario():
        communicator, connected, _ = await open_stream(carol, f"/ws/debug/sources/{source.pk}/")
        assert connected
        await next_message(communicator)
        await sync_to_async(membership.delete)()
        assert await communicator.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4403}
        await communicator.disconnect(timeout=TIMEOUT)

    run(scenario)


def test_consumer_marks_its_group_watched_only_while_connected(alice, source):
    async def scenario():
        communicator, connected, _ = await open_stream(alice, f"/ws/debug/sources/{source.pk}/")
        assert connected
        await next_message(communicator)
        taps.refresh()
        assert taps.watching(source_group(source.pk))
        await communicator.disconnect()
        await asyncio.sleep(0.05)
        taps.refresh()
        assert not taps.watching(source_group(source.pk))

    run(scenario)


def test_consumer_through_the_asgi_app_takes_the_session_cookie(alice, source):
    from cdp.asgi import application

    browser = Client()
    browser.force_login(alice)
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    other = Source.objects.create(workspace=source.workspace, name="App")

    async def scenario():
        headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
        logged_in = WebsocketCommunicator(
            application, f"/ws/debug/sources/{other.pk}/", [*headers, (b"cookie", cookie)]
        )
        assert (await logged_in.connect(timeout=TIMEOUT))[0]
        assert (await next_message(logged_in))["kind"] == "backlog"
        await logged_in.disconnect()
        anonymous = WebsocketCommunicator(application, f"/ws/debug/sources/{other.pk}/", headers)
        assert (await anonymous.connect(timeout=TIMEOUT)) == (False, 4401)
        await anonymous.disconnect(timeout=TIMEOUT)
        foreign = WebsocketCommunicator(
            application, f"/ws/debug/sources/{other.pk}/", [(b"origin", b"http://evil.example")]
        )
        assert not (await foreign.connect(timeout=TIMEOUT))[0]

    run(scenario)
