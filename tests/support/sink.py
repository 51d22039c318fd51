"""A scripted HTTP server on loopback, standing in for a destination's endpoint.

Each request takes the next scripted `Reply` (status, delay, headers, body) or, once the script is
used up, the default reply: a plain fast 200 unless told otherwise. A reply with `hang=True`
accepts the request and never answers until the sink stops. Every complete request is recorded
(method, path, headers, raw body, arrival time) the moment it arrives, before any delay, so a
request that the sender gave up on still counts as an attempt.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

# Every wait of the sink ends by itself: no test can hang on it.
_LONGEST_WAIT = 120.0


@dataclass(frozen=True)
class Reply:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"ok":true}'
    hang: bool = False


OK = Reply()
HANG = Reply(hang=True)


def retry_after_date(seconds_from_now: float) -> str:
    """A Retry-After value in the HTTP-date form."""
    return formatdate(time.time() + seconds_from_now, usegmt=True)


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float  # time.time() on arrival

    def json(self) -> Any:
        return orjson.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real endpoints
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm meets the
        # client's delayed ACK and every answer on a kept-alive connection waits ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self._answer()

    def do_GET(self) -> None:  # noqa: N802
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client went away mid-request (killed): nothing was received
            self.close_connection = True
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.sink.record(Received(self.command, self.path, headers, body, time.time()))
        stopping = self.server.sink.stopping
        if reply.hang:
            stopping.wait(_LONGEST_WAIT)
            self.close_connection = True
            return
        if reply.delay and stopping.wait(reply.delay):
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the test reads `sink.requests`, not a log


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, sink: Sink, port: int) -> None:
        self.sink = sink
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def close_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout) leaves a broken pipe behind; that is expected


class Sink:
    """`with Sink(Reply(503), Reply(200)) as sink:` serves on `sink.url` until the block ends."""

    def __init__(self, *script: Reply, default: Reply = OK, port: int = 0) -> None:
        self._script: deque[Reply] = deque(script)
        self.default = default
        self._received: list[Received] = []
        self._lock = threading.RLock()  # predicates of wait_for may read `requests`
        self._arrived = threading.Condition(self._lock)
        self.stopping = threading.Event()
        self._server = _Server(self, port)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order."""
        with self._lock:
            self._script.extend(replies)

    def record(self, received: Received) -> Reply:
        with self._arrived:
            self._received.append(received)
            self._arrived.notify_all()
            return self._script.popleft() if self._script else self.default

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def count(self) -> int:
        with self._lock:
            return len(self._received)

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 20.0) -> list[Received]:
        """Block until predicate(requests so far) is true; fail with what arrived otherwise."""
        deadline = time.monotonic() + min(timeout, _LONGEST_WAIT)
        with self._arrived:
            while not predicate(self._received):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"sink: condition not met within {timeout}s ({len(self._received)} requests)")
                self._arrived.wait(min(remaining, 0.5))
            return list(self._received)

    def wait_for_requests(self, count: int, timeout: float = 20.0) -> list[Received]:
        return self.wait_for(lambda received: len(received) >= count, timeout)

    def stop(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()  # ends every delay and hang
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=10)


def messages_in(received: list[Received]) -> Iterator[dict[str, Any]]:
    """The events of these requests, whether each carried one event or a {"batch": [...]}."""
    for request in received:
        body = request.json()
        if isinstance(body, dict) and isinstance(body.get("batch"), list):
            yield from body["batch"]
        else:
            yield body
