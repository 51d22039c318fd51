"""Write-key lookups from an in-process cache, and per-source rate limits."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from django.db import close_old_connections

from cdp.core.models import Source

_MAX_CACHED_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class SourceInfo:
    id: int
    workspace_id: int
    enabled: bool
    rate_limit: int


def load_source(write_key: str, default_rate_limit: int) -> SourceInfo | None:
    close_old_connections()
    row = Source.objects.filter(write_key=write_key).values_list("id", "workspace_id", "enabled", "rate_limit").first()
    if row is None:
        return None
    rate_limit = row[3] if row[3] is not None else default_rate_limit
    return SourceInfo(id=row[0], workspace_id=row[1], enabled=row[2], rate_limit=rate_limit)


class SourceCache:
    """Maps write keys to sources; entries (unknown keys too) live for `ttl` seconds, so a rotated or
    disabled key stops working within that time in every web process."""

    def __init__(self, ttl: float, default_rate_limit: int) -> None:
        self.ttl = ttl
        self.default_rate_limit = default_rate_limit
        self._entries: dict[str, tuple[float, SourceInfo | None]] = {}
        # Lookups in flight: when an entry expires under load, the requests that arrive meanwhile share
        # one database query instead of each starting their own (and queueing for the thread pool).
        self._loading: dict[str, asyncio.Future[SourceInfo | None]] = {}

    async def get(self, write_key: str) -> SourceInfo | None:
        # No key has a NUL, and PostgreSQL refuses one in a query parameter (a 500 instead of a 401).
        if not write_key or len(write_key) > 64 or "\x00" in write_key:
            return None
        now = time.monotonic()
        hit = self._entries.get(write_key)
        if hit is not None and hit[0] > now:
            return hit[1]
        loop = asyncio.get_running_loop()
        loading = self._loading.get(write_key)
        if loading is None or loading.done() or loading.get_loop() is not loop:
            loading = self._loading[write_key] = loop.create_task(self._load(write_key, now))
        return await asyncio.shield(loading)

    async def _load(self, write_key: str, now: float) -> SourceInfo | None:
        try:
            info = await asyncio.to_thread(load_source, write_key, self.default_rate_limit)
        finally:
            if self._loading.get(write_key) is asyncio.current_task():
                del self._loading[write_key]
        if len(self._entries) >= _MAX_CACHED_KEYS:
            self._entries.clear()
        self._entries[write_key] = (now + self.ttl, info)
        return info


class RateLimiter:
    """A token bucket per source holding one second of its rate. A request may overdraw the bucket
    (so a batch larger than the rate still passes once); later requests wait until it refills."""

    def __init__(self) -> None:
        self._buckets: dict[int, tuple[float, float]] = {}

    def take(self, source_id: int, rate: int, count: int) -> int:
        """0 when allowed, otherwise the seconds to wait before retrying."""
        if rate <= 0:
            return 0
        now = time.monotonic()
        tokens, last = self._buckets.get(source_id, (float(rate), now))
        tokens = min(float(rate), tokens + (now - last) * rate)
        if tokens <= 0:
            self._buckets[source_id] = (tokens, now)
            return max(1, math.ceil(-tokens / rate))
        self._buckets[source_id] = (tokens - count, now)
        return 0
