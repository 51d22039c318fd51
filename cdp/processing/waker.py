"""Waking the delivery workers after a batch committed, from a thread of its own.

Queuing a drain task is a round trip to the broker per destination; done by the processing thread it
would hold up the next batch. Here the processing thread only notes the destinations and goes on. The
waker queues each noted destination once, after the commit that noted it: destinations noted again
while they wait to be queued are queued once (a drain queued after both commits finds both batches'
deliveries). A wake-up lost with the process (or a broker that is down) costs latency, not deliveries:
the delivery sweeper finds due deliveries within seconds.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable

log = logging.getLogger(__name__)


class DeliveryWaker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: set[int] = set()
        self._event = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def wake(self, destination_ids: Iterable[int]) -> None:
        """Queue a drain for each destination soon (call after the commit that gave them work)."""
        with self._lock:
            self._pending.update(destination_ids)
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()  # a forked child starts its own thread
                self._thread = threading.Thread(target=self._run, name="delivery-waker", daemon=True)
                self._thread.start()
        self._event.set()

    def _run(self) -> None:
        from cdp.delivery.tasks import poke

        while True:
            self._event.wait()
            self._event.clear()
            with self._lock:
                destination_ids, self._pending = self._pending, set()
            if destination_ids:
                try:
                    poke(destination_ids)
                except Exception:  # poke logs its own failures; this thread must not die of anything
                    log.exception("could not wake the delivery workers")


waker = DeliveryWaker()
