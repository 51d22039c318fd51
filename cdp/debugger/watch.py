"""Who is watching: one Redis sorted set of "<group>|<viewer>" members scored by when they expire.

A consumer adds its member on connect, refreshes it while connected and removes it on disconnect; a
crashed server's members run out by themselves. Publishers read the live groups with one query, no
matter how many groups or viewers there are.
"""

from __future__ import annotations

import time

import redis
import redis.asyncio

WATCH_KEY = "cdp:debug:watched"
# Refreshed often enough that a Redis flush costs a viewer at most a couple of seconds of live items.
WATCH_TTL_SECONDS = 10.0
WATCH_REFRESH_SECONDS = 2.0


def _member(group: str, viewer: str) -> str:
    return f"{group}|{viewer}"


async def mark(client: redis.asyncio.Redis, group: str, viewer: str) -> None:
    await client.zadd(WATCH_KEY, {_member(group, viewer): time.time() + WATCH_TTL_SECONDS})


async def unmark(client: redis.asyncio.Redis, group: str, viewer: str) -> None:
    await client.zrem(WATCH_KEY, _member(group, viewer))


def watched_groups(client: redis.Redis) -> frozenset[str]:
    """The groups somebody watches now; expired members are cleaned up on the way."""
    now = time.time()
    pipe = client.pipeline(transaction=False)
    pipe.zremrangebyscore(WATCH_KEY, "-inf", now)
    pipe.zrangebyscore(WATCH_KEY, now, "+inf")
    _, members = pipe.execute()
    return frozenset(member.decode().rsplit("|", 1)[0] for member in members)
