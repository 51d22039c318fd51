"""The intake log writer: group commit of accepted requests.

Requests hand their row to one writer thread per process and wait. The thread takes everything
that is waiting, inserts it in one transaction and only then releases the waiters, so a 200 is
always backed by a commit while one commit (one fsync) serves many concurrent requests.

On PostgreSQL the transaction is one binary COPY in autocommit mode: a single statement, so it
commits (and is flushed, synchronous_commit permitting) before COPY returns; bodies travel as raw
bytes rather than escaped text, and there are two round trips per group instead of one per row
plus BEGIN/COMMIT. Other databases (SQLite) get executemany inside a transaction.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction

log = logging.getLogger(__name__)

_MAX_ROWS_PER_COMMIT = 500
_INSERT = (
    "INSERT INTO cdp_intake (source_id, received_at, endpoint, body, ip, attempts, error) "
    "VALUES (%s, %s, %s, %s, %s, 0, '')"
)
_COPY = "COPY cdp_intake (source_id, received_at, endpoint, body, ip, attempts, error) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = ["int8", "timestamptz", "text", "bytea", "text", "int2", "text"]
# Django's connection checks (CONN_MAX_AGE, the health-check query: a round trip) run before a commit
# at most once per this many seconds, and always before the first commit after a failed one.
_CHECK_INTERVAL = 1.0


@dataclass(slots=True)
class IntakeRow:
    source_id: int
    received_at: datetime
    endpoint: str
    body: bytes
    ip: str


_Waiter = tuple[IntakeRow, asyncio.Future, asyncio.AbstractEventLoop]


def _resolve(futures: list[asyncio.Future], error: BaseException | None) -> None:
    for future in futures:
        if future.cancelled():
            continue
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
        self._checked_at = -math.inf  # when Django last checked the writer's connection
        self._session: object = None  # the PostgreSQL connection _set_up_session() last ran on

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
                self._checked_at = -math.inf
            # One wake-up per event loop for the whole group, not one per request.
            waiting: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
            for _row, future, loop in batch:
                waiting.setdefault(loop, []).append(future)
            for loop, futures in waiting.items():
                try:
                    loop.call_soon_threadsafe(_resolve, futures, error)
                except RuntimeError:  # that loop is closed: nobody is waiting there any more
                    pass
            if error is None and self._waker is not None:
                self._waker.poke()

    def _commit(self, rows: list[IntakeRow]) -> None:
        now = time.monotonic()
        if now - self._checked_at >= _CHECK_INTERVAL:
            close_old_connections()  # recycles the connection past CONN_MAX_AGE or after errors
            connection.close_if_health_check_failed()
            self._checked_at = now
        if connection.vendor == "postgresql":
            connection.ensure_connection()
            raw = connection.connection
            if self._session is not raw:
                self._set_up_session(raw)
            with raw.cursor() as cursor, cursor.copy(_COPY) as copy:
                copy.set_types(_COPY_TYPES)
                for r in rows:
                    copy.write_row((r.source_id, r.received_at, r.endpoint, r.body, r.ip, 0, ""))
            if not raw.autocommit:  # only with DATABASES AUTOCOMMIT=False; otherwise COPY committed itself
                raw.commit()
        else:
            adapt = connection.ops.adapt_datetimefield_value
            params = [(r.source_id, adapt(r.received_at), r.endpoint, r.body, r.ip) for r in rows]
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.executemany(_INSERT, params)

    def _set_up_session(self, raw: Any) -> None:
        """Compress bodies with lz4 rather than PostgreSQL's default pglz: several times cheaper for the
        database's CPU at ingest (and to read back), for somewhat larger rows. Only this session's new
        values are affected and readers decompress either transparently. Servers built without lz4
        refuse the setting; then the default stays."""
        try:
            raw.execute("SET default_toast_compression = 'lz4'")
        except Exception:
            log.info("PostgreSQL has no lz4 here; intake bodies keep the default compression")
            if not raw.autocommit:  # only with DATABASES AUTOCOMMIT=False: leave no failed transaction behind
                raw.rollback()
        self._session = raw


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
