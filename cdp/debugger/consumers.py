"""Websocket consumers of the live debugger: one stream per source, one per destination.

A viewer must be logged in (the session, through AuthMiddlewareStack) and a member of the workspace
the source or destination belongs to; anybody else is refused before the handshake completes.
Membership is checked again each time the watch mark is refreshed, so a removed member is cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
import redis.asyncio
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from cdp.core.models import Destination, Source
from cdp.debugger import watch
from cdp.debugger.backlog import destination_backlog, source_backlog
from cdp.debugger.items import Item
from cdp.debugger.taps import destination_group, source_group, taps

log = logging.getLogger(__name__)

CLOSE_NOT_LOGGED_IN = 4401
CLOSE_NOT_ALLOWED = 4403


class DebugConsumer(AsyncWebsocketConsumer):
    """Subclasses say which object is watched (`url_kwarg`), who may watch it and what it shows first."""

    url_kwarg = ""
    group_name: str = ""
    _keepalive: asyncio.Task | None = None
    _redis: redis.asyncio.Redis | None = None

    def group_for(self, object_id: int) -> str:
        raise NotImplementedError

    def may_watch(self, user: Any, object_id: int) -> bool:
        raise NotImplementedError

    def backlog(self, object_id: int) -> list[Item]:
        raise NotImplementedError

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_LOGGED_IN)
            return
        object_id = int(self.scope["url_route"]["kwargs"][self.url_kwarg])
        if not await database_sync_to_async(self.may_watch)(user, object_id):
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        self.user, self.object_id = user, object_id
        taps.attach_loop(asyncio.get_running_loop())
        self.group_name = self.group_for(object_id)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        # Marked before the backlog is read, so nothing falls between the two (an item may show twice;
        # the page merges by key).
        self._redis = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_timeout=2.0)
        await self._mark()
        self._keepalive = asyncio.create_task(self._keep_watching())
        items = await database_sync_to_async(self.backlog)(object_id)
        await self.send(text_data=orjson.dumps({"kind": "backlog", "items": items}, default=str).decode())

    async def disconnect(self, code: int) -> None:
        if self.group_name:
            if self._keepalive is not None:
                self._keepalive.cancel()
            await self.channel_layer.group_discard(self.group_name, self.channel_name)
            if self._redis is not None:
                with contextlib.suppress(Exception):
                    await watch.unmark(self._redis, self.group_name, self.channel_name)
                await self._redis.aclose()
        # Refused or not, the consumer waits on the channel layer. channels_redis waits with a blocking pop
        # that redis-py may not let go of when the wait is cancelled (redis/redis-py#2028): the consumer
        # would never end, and a server with viewers would never finish a graceful shutdown. A message of
        # our own ends that wait.
        with contextlib.suppress(Exception):
            await self.channel_layer.send(self.channel_name, {"type": "debug.closed"})

    async def debug_event(self, message: dict[str, Any]) -> None:
        """Items from the taps, already encoded once for every viewer."""
        await self.send(text_data=message["text"])

    async def debug_closed(self, message: dict[str, Any]) -> None:
        """The wake-up sent to ourselves on disconnect (see disconnect())."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page sends nothing that matters (pause and filters are done in the browser)."""

    async def _mark(self) -> None:
        try:
            await watch.mark(self._redis, self.group_name, self.channel_name)
        except Exception:
            log.warning("debugger: cannot mark %s as watched; live items will not arrive", self.group_name)

    async def _keep_watching(self) -> None:
        while True:
            await asyncio.sleep(watch.WATCH_REFRESH_SECONDS)
            if not await database_sync_to_async(self.may_watch)(self.user, self.object_id):
                await self.close(code=CLOSE_NOT_ALLOWED)
                return
            await self._mark()
            with contextlib.suppress(Exception):  # a flushed Redis forgets groups as well
                await self.channel_layer.group_add(self.group_name, self.channel_name)


class SourceDebugConsumer(DebugConsumer):
    url_kwarg = "source_id"

    def group_for(self, object_id: int) -> str:
        return source_group(object_id)

    def may_watch(self, user: Any, object_id: int) -> bool:
        return Source.objects.filter(pk=object_id, workspace__memberships__user=user).exists()

    def backlog(self, object_id: int) -> list[Item]:
        return source_backlog(object_id)


class DestinationDebugConsumer(DebugConsumer):
    url_kwarg = "destination_id"

    def group_for(self, object_id: int) -> str:
        return destination_group(object_id)

    def may_watch(self, user: Any, object_id: int) -> bool:
        return Destination.objects.filter(pk=object_id, workspace__memberships__user=user).exists()

    def backlog(self, object_id: int) -> list[Item]:
        return destination_backlog(object_id)
