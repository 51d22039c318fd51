#!/usr/bin/env python
"""Debugger benchmark: Tracking API throughput with 0 and with 10 connected debugger clients, and the
lag from ingest to screen, in one run. See README.md.

    python bench/debugger/run.py [--duration 8] [--warmup 2] [--rounds 2] [--viewers 10] [--json out.json]

Exit status: 0 every goal met, 1 a goal missed, 2 the run is not valid (wrk missing, a server did not
start, non-2xx answers or socket errors, viewers that received nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson
import websockets

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
UVICORN_OPTIONS = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cdp_bench_debugger"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
GOAL_RATIO = 0.9
GOAL_P95_LAG = 1.0
PUBLISHERS_LEARN = 1.0  # web processes re-read who is watching twice a second
SHAPES = {"track": ("/v1/track", 1), "batch": ("/v1/batch", 20)}


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


# --- load ----------------------------------------------------------------------------------------------
@dataclass
class Phase:
    shape: str
    viewers: int
    round: int
    requests: int = 0
    seconds: float = 0.0
    errors: int = 0
    server_cpu: float = 0.0  # share of one core
    others_cpu: float = 0.0  # share of the machine busy with anything but the server, wrk and this script
    items_per_viewer_s: float = 0.0
    skipped_per_viewer_s: float = 0.0
    lags: list[float] = field(default_factory=list, repr=False)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def events_per_s(self) -> float:
        return self.requests_per_s * SHAPES[self.shape][1]

    @property
    def cpu_us_per_event(self) -> float:
        events = self.requests * SHAPES[self.shape][1]
        return self.server_cpu * self.seconds / events * 1e6 if events else 0.0


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


def measure(args, phase: Phase, server: Server, session: str, ws_path: str, body: Path, auth: str, cpus) -> Phase:
    viewers = None
    if phase.viewers:
        viewers = Viewers(f"ws://127.0.0.1:{server.port}{ws_path}", server.url, session, phase.viewers)
    time.sleep(PUBLISHERS_LEARN)
    url = server.url + SHAPES[phase.shape][0]
    run_wrk(args.wrk, cpus[1], url, body, auth, args.warmup)
    started, ticks, box, ours = time.time(), proc_ticks(server.popen.pid), box_ticks(), own_seconds()
    summary = run_wrk(args.wrk, cpus[1], url, body, auth, args.duration)
    ended = time.time()
    hz = os.sysconf("SC_CLK_TCK")
    server_seconds = (proc_ticks(server.popen.pid) - ticks) / hz
    phase.server_cpu = server_seconds / (ended - started)
    busy, total = box_ticks()
    machine_seconds = (total - box[1]) / hz
    others = (busy - box[0]) / hz - server_seconds - (own_seconds() - ours)
    phase.others_cpu = max(0.0, others / machine_seconds) if machine_seconds else 0.0
    phase.requests, phase.seconds, phase.errors = summary["requests"], summary["duration_us"] / 1e6, summary["errors"]
    if viewers is not None:
        time.sleep(0.5)  # the last flush of the phase
        viewers.stop()
        window = [lag for at, lag in viewers.arrivals if started <= at <= ended + 0.5]
        for problem in sorted(set(viewers.problems)):
            say(f"  a debugger client stopped reading: {problem}")
        phase.lags = window
        phase.items_per_viewer_s = len(window) / phase.viewers / (ended - started)
        dropped = sum(n for at, n in viewers.dropped if started <= at <= ended + 0.5)
        phase.skipped_per_viewer_s = dropped / phase.viewers / (ended - started)
    return phase


# --- report --------------------------------------------------------------------------------------------
def report(phases: list[Phase], viewers: int) -> tuple[list[str], bool]:
    lines = [
        "| shape | round | viewers | requests/s | events/s | web CPU | web CPU µs/event | others' CPU "
        "| items shown/s per viewer | skipped/s per viewer | lag p50 | lag p95 | lag p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in phases:
        lags = [f"{percentile(p.lags, q) * 1000:.0f} ms" if p.lags else "—" for q in (0.5, 0.95, 0.99)]
        lines.append(
            f"| {p.shape} | {p.round} | {p.viewers} | {p.requests_per_s:,.0f} | {p.events_per_s:,.0f} "
            f"| {p.server_cpu:.0%} | {p.cpu_us_per_event:.1f} | {p.others_cpu:.0%} | {p.items_per_viewer_s:,.0f} "
            f"| {p.skipped_per_viewer_s:,.0f} | {' | '.join(lags)} |"
        )
    lines += [
        "",
        f"| shape | events/s with {viewers} viewers ÷ with 0, per round | median (goal ≥ {GOAL_RATIO}) "
        f"| web CPU per event, 0 ÷ {viewers} viewers | lag p95 (goal ≤ {GOAL_P95_LAG:.0f} s) | met |",
        "|---|---|---:|---:|---:|---|",
    ]
    met_all = True
    for shape in dict.fromkeys(p.shape for p in phases):
        rounds = sorted({p.round for p in phases if p.shape == shape})
        pairs = [
            [p for p in phases if p.shape == shape and p.round == number and p.viewers == count][0]
            for number in rounds
            for count in (0, viewers)
        ]
        alone_phases, watched_phases = pairs[::2], pairs[1::2]
        ratios = [w.events_per_s / a.events_per_s for a, w in zip(alone_phases, watched_phases, strict=True)]
        cpu = statistics.median(p.cpu_us_per_event for p in alone_phases) / statistics.median(
            p.cpu_us_per_event for p in watched_phases
        )
        p95 = percentile([lag for p in watched_phases for lag in p.lags], 0.95)
        ratio = statistics.median(ratios)
        met = ratio >= GOAL_RATIO and p95 <= GOAL_P95_LAG
        met_all &= met
        lines.append(
            f"| {shape} | {', '.join(f'{r:.2f}' for r in ratios)} | {ratio:.2f} | {cpu:.2f} | {p95 * 1000:.0f} ms "
            f"| {'yes' if met else 'NO'} |"
        )
    return lines, met_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=4, help="0-viewer and N-viewer phases alternate this often")
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument("--shapes", default="track,batch")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server and wrk to CPUs")
    parser.add_argument("--json", type=Path, help="write every figure here too")
    args = parser.parse_args()
    args.wrk = shutil.which("wrk")
    if not args.wrk:
        say("wrk is missing: sudo apt-get install -y wrk (macOS: brew install wrk)")
        return 2
    cpus = (0, 1) if os.cpu_count() and os.cpu_count() >= 2 and not args.no_pin else (None, None)
    var = ROOT / "var" / "bench-debugger"
    var.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DATABASE_URL=args.database_url, REDIS_URL=args.redis_url, CDP_VAR_DIR=str(var),
               CDP_WAKE_PROCESSOR="0", CDP_CHANNEL_LAYER="redis", CDP_LOG_LEVEL="WARNING")  # fmt: skip
    say("preparing the database…")
    source_id, write_key, session = prepare_database(args.database_url, env)
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    server = Server(env, cpus[0], var / "server.log")
    phases: list[Phase] = []
    try:
        with tempfile.TemporaryDirectory() as work:
            for shape in args.shapes.split(","):
                body = Path(work) / f"{shape}.json"
                body.write_bytes(body_for(shape, write_key))
                for number in range(1, args.rounds + 1):
                    for count in (0, args.viewers):
                        truncate_intake(args.database_url)
                        phase = Phase(shape, count, number)
                        say(f"{shape}: {count} viewers, round {number}…")
                        phases.append(
                            measure(args, phase, server, session, f"/ws/debug/sources/{source_id}/", body, auth, cpus)
                        )
    finally:
        server.stop()
    lines, met = report(phases, args.viewers)
    print("\n".join(lines))
    if args.json:
        rows = [asdict(p) | {"lag_p95": percentile(p.lags, 0.95), "lags": len(p.lags)} for p in phases]
        args.json.write_text(json.dumps(rows, indent=2))
    if any(p.errors for p in phases) or any(p.viewers and not p.lags for p in phases):
        say("NOT VALID: errors from wrk, or viewers that received nothing")
        return 2
    if statistics.fmean(p.others_cpu for p in phases) > 0.15:
        say("note: other programs kept the machine busy during the run; the figures are noisy")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
