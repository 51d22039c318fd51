"""Per-destination lanes in Redis: one draining task at a time, and a circuit breaker.

Redis holds only soft state here. If it is flushed or down, a lane is simply free and its
breaker closed: deliveries still live in the database and nothing is lost."""

from __future__ import annotations

import logging
import uuid

import redis
from django.conf import settings

log = logging.getLogger(__name__)
_client: redis.Redis | None = None
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    return _client


class Lane:
    def __init__(self, destination_id: int) -> None:
        self.destination_id = destination_id
        self.key = f"cdp:lane:{destination_id}"
        self.token = uuid.uuid4().hex

    def acquire(self, lease_seconds: float) -> bool:
        try:
            return bool(client().set(self.key, self.token, nx=True, px=int(lease_seconds * 1000)))
        except redis.RedisError:
            log.warning("Redis unavailable; draining %s without a lane lock", self.key)
            return True

    def extend(self, lease_seconds: float) -> None:
        try:
            if client().get(self.key) == self.token.encode():
                client().pexpire(self.key, int(lease_seconds * 1000))
        except redis.RedisError:
            pass

    def release(self) -> None:
        try:
            client().eval(_RELEASE, 1, self.key, self.token)
        except redis.RedisError:
            pass

    # A wake-up that finds the lane busy must not be lost: the holder may be past its last look for due
    # rows. The waker leaves a mark and tries the lane once more; the holder takes the mark after
    # releasing. Either the waker gets the lane, or the holder sees the mark and drains again.
    def mark_again(self) -> None:
        try:
            client().set(f"{self.key}:again", 1, ex=600)
        except redis.RedisError:
            pass

    def held(self) -> bool:
        """Whether a task drains the destination now (False when Redis cannot tell)."""
        try:
            return bool(client().exists(self.key))
        except redis.RedisError:
            return False

    def look(self) -> tuple[bool, bool]:
        """Whether a task drains the destination now, and whether its circuit breaker is open (a task
        could send nothing then), in one call; (False, False) when Redis cannot tell."""
        try:
            held, resting = client().mget([self.key, _open_key(self.destination_id)])
        except redis.RedisError:
            return False, False
        return held is not None, resting is not None

    def take_again(self) -> bool:
        try:
            return bool(client().getdel(f"{self.key}:again"))
        except redis.RedisError:
            return False


def _open_key(destination_id: int) -> str:
    return f"cdp:breaker:{destination_id}:open"


class Breaker:
    """Opens after `threshold` consecutive retryable failures, for `cooldown` seconds; one probe
    request then decides whether it closes again (a success) or opens at once (a failure).

    Only the holder of the destination's lane changes its breaker, so an instance made after the lane
    is taken keeps the failure count it read and wrote, instead of asking Redis before every request."""

    def __init__(self, destination_id: int) -> None:
        self.failures_key = f"cdp:breaker:{destination_id}:failures"
        self.open_key = _open_key(destination_id)
        self._failures: int | None = None
        self.opened = False  # opened by this instance's record()

    def is_open(self) -> bool:
        if self.opened:
            return True
        try:
            return bool(client().exists(self.open_key))
        except redis.RedisError:
            return False

    def failures(self) -> int:
        if self._failures is None:
            try:
                self._failures = int(client().get(self.failures_key) or 0)
            except redis.RedisError:
                return 0
        return self._failures

    def probing(self) -> bool:
        """Whether one more failure opens it: the next request is a probe."""
        failures = self.failures()
        return 0 < failures >= settings.CDP_BREAKER_THRESHOLD - 1

    def record(self, successes: int, failures: int) -> None:
        try:
            if successes:
                if self.failures():
                    client().delete(self.failures_key)
                self._failures = 0
                return
            if failures:
                count = client().incrby(self.failures_key, failures)
                client().expire(self.failures_key, 3600)
                self._failures = count
                if count >= settings.CDP_BREAKER_THRESHOLD:
                    client().set(self.open_key, 1, ex=max(1, int(settings.CDP_BREAKER_COOLDOWN_SECONDS)))
                    self.opened = True
                    # After the cooldown one more failure is enough to open it again.
                    client().set(self.failures_key, settings.CDP_BREAKER_THRESHOLD - 1, ex=3600)
                    self._failures = settings.CDP_BREAKER_THRESHOLD - 1
        except redis.RedisError:
            self._failures = None
