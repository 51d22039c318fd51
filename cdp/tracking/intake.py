"""The intake log writer: group commit of accepted requests.

Requests hand their row to one writer thread per process and wait. The thread takes everything
that is waiting, inserts it in one transaction and only then releases the waiters, so a 200 is
always backed by a commit while one commit (one fsync) serves many concurrent requests.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections, connection, transaction

log = logging.getLogger(__name__)

_MAX_ROWS_PER_COMMIT = 500
_INSERT = (
    "INSERT INTO cdp_intake (source_id, received_at, endpoint, body, ip, attempts, error) "
    "VALUES (%s, %s, %s, %s, %s, 0, '')"
)


@dataclass(slots=True)
class IntakeRow:
    source_id: int
    received_at: datetime
    endpoint: str
    body: bytes
    ip: str


_Waiter = tuple[IntakeRow, asyncio.Future, asyncio.AbstractEventLoop]


def _resolve(future: asyncio.Future, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class IntakeWriter:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Waiter] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._waker = ProcessorWaker() if settings.CDP_WAKE_PROCESSOR else None

    async def write(self, row: IntakeRow) -> None:
        """Return once the row is committed; raise if it could not be."""
        self._ensure_thread()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((row, future, loop))
        await future

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < _MAX_ROWS_PER_COMMIT:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            error: BaseException | None = None
            try:
                self._commit([item[0] for item in batch])
            except Exception as exc:  # the waiters answer 503 and the client retries
                log.exception("intake commit of %d request(s) failed", len(batch))
                error = exc
                connection.close()
            for _row, future, loop in batch:
                loop.call_soon_threadsafe(_resolve, future, error)
            if error is None and self._waker is not None:
                self._waker.poke()

    @staticmethod
    def _commit(rows: list[IntakeRow]) -> None:
        close_old_connections()
        adapt = connection.ops.adapt_datetimefield_value
        params = [(r.source_id, adapt(r.received_at), r.endpoint, r.body, r.ip) for r in rows]
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.executemany(_INSERT, params)


class ProcessorWaker:
    """Tells the processor that new intake rows are waiting, at most every `interval` seconds.

    It runs in its own thread so that a slow or absent broker never holds up the intake writer;
    a lost wake-up only costs latency, because the beat sweeper finds the rows anyway."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._event = threading.Event()
        self._thread = threading.Thread(target=self._run, name="processor-waker", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._event.set()

    def _run(self) -> None:
        from cdp.processing.tasks import process_intake

        while True:
            self._event.wait()
            self._event.clear()
            try:
                process_intake.apply_async(retry=False)
            except Exception:
                log.warning("could not wake the processor; the sweeper will pick the requests up", exc_info=True)
                time.sleep(1.0)
            time.sleep(self.interval)
