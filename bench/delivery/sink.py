"""A fast loopback HTTP sink for the delivery benchmark (one process, asyncio + uvloop).

    python bench/delivery/sink.py PORT ok     # answers 200 to every POST, counts requests and events
    python bench/delivery/sink.py PORT hang   # accepts connections, reads, never answers

Counting (mode ok): every POST body is parsed; a body {"batch": [...]} counts each element as an event,
any other body counts as one event. Each event's messageId and the arrival time (time.time(), taken
once per request) are kept. Control endpoints (GET): /__stats (counts), /__arrivals (messageId ->
first arrival), /__reset (clears everything).
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class State:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.events = 0
        self.duplicates = 0
        self.bad = 0
        self.connections = 0
        self.bytes = 0
        self.first = 0.0
        self.last = 0.0
        self.arrivals: dict[str, float] = {}

    def stats(self) -> dict:
        return {
            "requests": self.requests,
            "events": self.events,
            "distinct": len(self.arrivals),
            "duplicates": self.duplicates,
            "bad": self.bad,
            "connections": self.connections,
            "bytes": self.bytes,
            "first": self.first,
            "last": self.last,
        }


STATE = State()


def respond_json(payload) -> bytes:
    body = orjson.dumps(payload)
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class Sink(asyncio.Protocol):
    hang = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buffer = b""
        STATE.connections += 1

    def data_received(self, data: bytes) -> None:
        STATE.bytes += len(data)
        if self.hang and not (self.buffer or data.startswith(b"GET /__")):
            return  # read and forget: the client waits for an answer that never comes
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.handle(head.split(b" ", 2), body)

    def handle(self, request_line: list[bytes], body: bytes) -> None:
        method, path = request_line[0], request_line[1]
        if method == b"GET":
            if path == b"/__stats":
                self.transport.write(respond_json(STATE.stats()))
            elif path == b"/__arrivals":
                self.transport.write(respond_json(STATE.arrivals))
            elif path == b"/__reset":
                STATE.reset()
                self.transport.write(respond_json({"reset": True}))
            else:
                self.transport.write(OK)
            return
        now = time.time()
        STATE.requests += 1
        if not STATE.first:
            STATE.first = now
        STATE.last = now
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            STATE.bad += 1
            self.transport.write(OK)
            return
        events = payload["batch"] if isinstance(payload, dict) and isinstance(payload.get("batch"), list) else [payload]
        arrivals = STATE.arrivals
        for event in events:
            STATE.events += 1
            message_id = event.get("messageId") if isinstance(event, dict) else None
            if not isinstance(message_id, str):
                STATE.bad += 1
            elif message_id in arrivals:
                STATE.duplicates += 1
            else:
                arrivals[message_id] = now
        self.transport.write(OK)


def main() -> None:
    port, mode = int(sys.argv[1]), sys.argv[2]
    Sink.hang = mode == "hang"
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Sink, "127.0.0.1", port, backlog=1024)
        print(f"sink ({mode}) listening on 127.0.0.1:{port}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
