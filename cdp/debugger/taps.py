"""Debugger taps: what a stage saw, published to a Channels group per source and per destination.

Watching must never slow ingestion, hence:
- With no viewer, `publish()` is a set lookup: the set of watched groups is read from Redis by a
  background thread twice a second (`watch.py`), never on the caller's path.
- With a viewer, it appends to a bounded in-memory buffer and returns. Items may be given as a
  builder (a callable returning the newest items, at most as many as asked for), so parsing and
  shaping happen on the background thread, and only for what is shown.
- The same thread flushes each group a few times a second (every FLUSH_SECONDS; twice that while the
  group has more than a message carries) as ONE message of at most MAX_ITEMS items, the newest,
  encoded to JSON once for every viewer. What does not fit (a full buffer, more items than a message
  carries) is dropped and counted; the count travels with the next message as `dropped`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
import redis
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

from cdp.debugger import watch
from cdp.env import env_float, env_int

log = logging.getLogger(__name__)

Item = dict[str, Any]
Builder = Callable[[int], list[Item]]  # called with how many items are wanted at most (the newest)
MESSAGE_TYPE = "debug.event"
SOURCE_PREFIX = "debug.source."
DESTINATION_PREFIX = "debug.destination."


def source_group(source_id: int) -> str:
    return f"{SOURCE_PREFIX}{source_id}"


def destination_group(destination_id: int) -> str:
    return f"{DESTINATION_PREFIX}{destination_id}"


class _Buffer:
    __slots__ = ("entries", "dropped")

    def __init__(self) -> None:
        self.entries: deque[tuple[Item | Builder, int]] = deque()
        self.dropped = 0


# How often each watched group gets a message, and how many items one message carries at most: together
# they bound what watching costs the web process, however many events arrive.
FLUSH_SECONDS = env_float("CDP_DEBUGGER_FLUSH_SECONDS", 0.25, 0.05)
MAX_ITEMS = env_int("CDP_DEBUGGER_MAX_ITEMS", 50, 1)
SEND_TIMEOUT_SECONDS = 2.0  # a stuck Redis costs the viewers items, never the thread


class Taps:
    """One per process (`taps` below); safe to call from any thread and from event loops."""

    def __init__(
        self,
        flush_seconds: float = FLUSH_SECONDS,
        refresh_seconds: float = 0.5,
        max_entries: int = 500,
        max_items: int = MAX_ITEMS,
    ) -> None:
        self.flush_seconds = flush_seconds
        self.refresh_seconds = refresh_seconds
        self.max_entries = max_entries  # buffered publish() calls per group between two flushes
        self.max_items = max_items  # items per message (the newest are kept)
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._buffers: dict[str, _Buffer] = {}
        self._due: dict[str, float] = {}  # group -> when its next message may go (monotonic clock)
        self._unresolved: deque[tuple[Callable[[], str | None], Item | Builder, int]] = deque(maxlen=200)
        # None until the first read from Redis: meanwhile everything is buffered and the flush sorts it out.
        self._watched: frozenset[str] | None = None
        self._thread: threading.Thread | None = None
        self._redis: redis.Redis | None = None
        self._consumers_loop: asyncio.AbstractEventLoop | None = None
        self._warned_at = -60.0

    # --- the callers' side: cheap, never blocking ----------------------------------------------
    def watching(self, group: str) -> bool:
        watched = self._watched
        if watched is None or self._thread is None:
            self._start()
            return True
        return group in watched

    def watching_any(self, prefix: str) -> bool:
        watched = self._watched
        if watched is None or self._thread is None:
            self._start()
            return True
        return any(group.startswith(prefix) for group in watched)

    def publish(self, group: str, item: Item | Builder, count: int = 1) -> None:
        """Queue `item` (or a builder of `count` items) for the group's viewers, if it has any."""
        if not self.watching(group):
            return
        with self._lock:
            buffer = self._buffers.get(group)
            if buffer is None:
                buffer = self._buffers[group] = _Buffer()
            if len(buffer.entries) >= self.max_entries:
                buffer.dropped += buffer.entries.popleft()[1]
            buffer.entries.append((item, count))

    def publish_resolved(self, resolve: Callable[[], str | None], item: Item | Builder, count: int = 1) -> None:
        """Like publish() when the group is only known after a lookup (`resolve`, run on the background
        thread; None drops the item)."""
        self._start()
        self._unresolved.append((resolve, item, count))

    # --- the background thread ------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="debugger-taps", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        next_refresh = 0.0
        while True:
            try:
                if time.monotonic() >= next_refresh:
                    self.refresh()
                    next_refresh = time.monotonic() + self.refresh_seconds
                messages = self.take()
                if messages:
                    self._deliver(loop, messages)
            except Exception as exc:  # the taps must outlive any bug or outage; the viewers only miss items
                self._warn(f"debugger taps: flush failed: {exc!r}")
            time.sleep(self.flush_seconds)

    def refresh(self) -> None:
        """Read the watched groups from Redis; when Redis cannot answer, nobody is watching."""
        try:
            if self._redis is None:
                self._redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0)
            self._watched = watch.watched_groups(self._redis)
        except Exception:
            log.debug("debugger taps: cannot read the watched groups", exc_info=True)
            self._watched = frozenset()

    def take(self) -> dict[str, dict[str, Any]]:
        """Empty the buffers of the groups due into one channel-layer message per watched group. A group
        whose last message was full (more going on than is shown) is due half as often: under pressure
        the cost of watching halves, while a quiet stream stays as quick as it can be."""
        resolved = self._resolve()
        now = time.monotonic()
        with self._lock:
            for group, entry in resolved:
                self._buffers.setdefault(group, _Buffer()).entries.append(entry)
            due = {group: buffer for group, buffer in self._buffers.items() if self._due.get(group, 0.0) <= now}
            for group in due:
                del self._buffers[group]
        watched = self._watched or frozenset()
        messages = {}
        for group, buffer in due.items():
            if group in watched:
                messages[group], full = self._message(buffer)
                # a little early, so that the tick that comes at the interval is not missed by a hair
                self._due[group] = now + self.flush_seconds * (2 if full else 1) - self.flush_seconds / 4
            else:
                self._due.pop(group, None)
        return messages

    def _resolve(self) -> list[tuple[str, tuple[Item | Builder, int]]]:
        resolved = []
        while self._unresolved:
            resolve, item, count = self._unresolved.popleft()
            try:
                group = resolve()
            except Exception:
                log.debug("debugger taps: lookup failed", exc_info=True)
                continue
            if group is not None:
                resolved.append((group, (item, count)))
        return resolved

    def _message(self, buffer: _Buffer) -> tuple[dict[str, Any], bool]:
        """Newest items first until the message is full (said by the second value); everything older is
        counted as dropped."""
        dropped = buffer.dropped
        chunks: list[list[Item]] = []
        room = self.max_items
        for item, count in reversed(buffer.entries):
            if room <= 0:
                dropped += count
                continue
            try:
                items = item(room)[-room:] if callable(item) else [item]
            except Exception as exc:
                self._warn(f"debugger taps: an item builder failed: {exc!r}")
                dropped += count
                continue
            dropped += max(0, count - len(items))
            chunks.append(items)
            room -= len(items)
        items = [item for chunk in reversed(chunks) for item in chunk]
        text = orjson.dumps({"kind": "live", "items": items, "dropped": dropped}, default=str).decode()
        return {"type": MESSAGE_TYPE, "text": text}, room <= 0

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop of this process's consumers: the in-memory channel layer (CDP_CHANNEL_LAYER=memory,
        one process) only works from the loop its consumers wait on."""
        self._consumers_loop = loop

    def _deliver(self, loop: asyncio.AbstractEventLoop, messages: dict[str, dict[str, Any]]) -> None:
        consumers_loop = self._consumers_loop
        if isinstance(get_channel_layer(), InMemoryChannelLayer):
            if consumers_loop is not None and consumers_loop.is_running():
                future = asyncio.run_coroutine_threadsafe(self.send(messages), consumers_loop)
                future.result(timeout=SEND_TIMEOUT_SECONDS * len(messages) + 1)
            return
        loop.run_until_complete(self.send(messages))

    async def send(self, messages: dict[str, dict[str, Any]]) -> None:
        layer = get_channel_layer()
        for group, message in messages.items():
            try:
                await asyncio.wait_for(layer.group_send(group, message), SEND_TIMEOUT_SECONDS)
            except Exception as exc:
                self._warn(f"debugger taps: cannot send to {group}: {exc!r}")

    def _warn(self, text: str) -> None:
        """At most one warning a minute: an outage must not flood the log four times a second."""
        now = time.monotonic()
        if now - self._warned_at >= 60:
            self._warned_at = now
            log.warning(text)

    async def flush(self) -> None:
        """Flush now, on the caller's event loop (tests)."""
        await self.send(self.take())


taps = Taps()
os.register_at_fork(after_in_child=taps._reset)  # a forked worker starts its own thread and buffers
