"""The benchmark's moving parts: the web server, its database, wrk, and debugger clients (see run.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson
import websockets

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
UVICORN_OPTIONS = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
SHAPES = {"track": ("/v1/track", 1), "batch": ("/v1/batch", 20)}  # endpoint, events per request


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned(cpu: int | None, niceness: int = 0):
    def apply() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        if niceness:
            os.nice(niceness)

    return apply


def proc_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def box_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine."""
    with open("/proc/stat") as file:
        values = [int(v) for v in file.readline().split()[1:]]
    return sum(values[:8]) - values[3] - values[4], sum(values[:8])


def own_seconds() -> float:
    """CPU seconds of this script and of its finished children (wrk)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- events -----------------------------------------------------------------------------------------
def track_event(number: int) -> dict:
    """A server-library track call as analytics-python sends it (~600 bytes)."""
    return {
        "type": "track", "event": "Order Completed", "userId": f"user-{number % 5000}",
        "anonymousId": str(uuid.uuid4()), "messageId": str(uuid.uuid4()), "timestamp": "2026-01-31T12:00:00.000Z",
        "properties": {"order_id": f"order-{number}", "total": 42.5, "currency": "EUR", "coupon": None,
                       "products": [{"sku": "sku-1", "name": "Tea", "price": 12.5, "quantity": 2}]},
        "context": {"library": {"name": "analytics-python", "version": "2.4.0"}, "ip": "203.0.113.9",
                    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"},
    }  # fmt: skip


def body_for(shape: str, write_key: str) -> bytes:
    _, events = SHAPES[shape]
    if events == 1:
        return orjson.dumps(track_event(0) | {"writeKey": write_key})
    return orjson.dumps({"batch": [track_event(n) for n in range(events)], "writeKey": write_key})


# --- the server and its database ------------------------------------------------------------------------
_SETUP = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from cdp.core.models import Membership, Source, Workspace
workspace, _ = Workspace.objects.get_or_create(slug="bench-debugger", defaults={"name": "Bench debugger"})
source, _ = Source.objects.get_or_create(workspace=workspace, name="bench", defaults={"kind": "server"})
Source.objects.filter(pk=source.pk).update(enabled=True, rate_limit=None)
user, created = get_user_model().objects.get_or_create(username="bench-viewer")
if created:
    user.set_unusable_password()
    user.save()
Membership.objects.get_or_create(workspace=workspace, user=user, defaults={"role": "read_only"})
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(f"SETUP {source.pk} {source.write_key} {session.session_key}")
"""


def prepare_database(url: str, env: dict[str, str]) -> tuple[int, str, str]:
    import psycopg

    parts = urlsplit(url)
    loopback = (parts.hostname or "") in ("127.0.0.1", "localhost", "::1")
    if parts.scheme not in ("postgres", "postgresql") or not loopback:
        raise SystemExit("--database-url must be a postgres:// URL on this machine")
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"unexpected database name {name!r}")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    for args in (["migrate", "--noinput"], ["shell", "-c", _SETUP]):
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}")
    source_id, write_key, session = re.search(r"^SETUP (\d+) (\S+) (\S+)$", result.stdout, re.M).groups()
    return int(source_id), write_key, session


def truncate_intake(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE cdp_intake")


class Server:
    def __init__(self, env: dict[str, str], cpu: int | None, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.log_path = log_path
        args = [sys.executable, "-m", "uvicorn", "cdp.asgi:application", "--host", "127.0.0.1",
                "--port", str(self.port), *UVICORN_OPTIONS]  # fmt: skip
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=pinned(cpu),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{log_path.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the server did not start; see {log_path}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=15)
        self._log.close()


# --- debugger clients ----------------------------------------------------------------------------------
class Viewers:
    """`count` debugger websockets, as a browser opens them (session cookie, Origin, permessage-deflate),
    in a thread of their own; each item's lag is its arrival time minus when the server received it."""

    def __init__(self, ws_url: str, origin: str, session: str, count: int) -> None:
        self.ws_url, self.origin, self.session, self.count = ws_url, origin, session, count
        self.arrivals: list[tuple[float, float]] = []  # (arrival time, lag)
        self.dropped: list[tuple[float, int]] = []
        self.problems: list[str] = []
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        if not self.ready.wait(30) or self.error:
            raise RuntimeError(f"debugger clients could not connect: {self.error!r}")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        headers = {"Cookie": f"sessionid={self.session}", "Origin": self.origin}
        try:
            sockets = [
                await websockets.connect(self.ws_url, additional_headers=headers, max_size=None)
                for _ in range(self.count)
            ]
            for ws in sockets:
                assert orjson.loads(await ws.recv())["kind"] == "backlog"
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            return
        readers = [asyncio.create_task(self._read(ws)) for ws in sockets]
        self.ready.set()
        await self._stop.wait()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)

    async def _read(self, ws) -> None:
        try:
            async for text in ws:
                now = time.time()
                message = orjson.loads(text)
                self.dropped.append((now, message.get("dropped", 0)))
                for item in message["items"]:
                    self.arrivals.append((now, now - datetime.fromisoformat(item["at"]).timestamp()))
            self.problems.append(f"closed by the server: {ws.close_code} {ws.close_reason}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.problems.append(repr(exc))

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


def run_wrk(wrk: str, cpu: int | None, url: str, body: Path, auth: str, seconds: float) -> dict:
    args = [wrk, "-t1", "-c64", "-d", f"{seconds:g}s", "--timeout", "10s", "-s", str(HERE / "post.lua"), url,
            "--", str(body), auth]  # fmt: skip
    result = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, preexec_fn=pinned(cpu, 5))
    match = re.search(r"^BENCH_JSON (\{.*\})$", result.stdout, re.M)
    if result.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed:\n{result.stdout}\n{result.stderr}")
    summary = json.loads(match.group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    summary["errors"] = (int(non_2xx.group(1)) if non_2xx else 0) + sum(
        summary[k] for k in ("connect", "read", "write", "timeout")
    )
    return summary
