#!/usr/bin/env python
"""Delivery benchmark: the delivery engine against a plain HTTP client, in one run. See README.md.

    python bench/delivery/run.py [--events 20000] [--latency-seconds 15] [--json out.json]

Exit status: 0 every goal met, 1 a goal missed, 2 the run is not valid (a process did not start, an
event was lost, duplicated or not marked delivered, an answer was not 200).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import fcntl
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "bench" / "ingest"))
sys.path.insert(0, str(ROOT))

import events as sample_events  # noqa: E402  (bench/ingest/events.py: realistic Segment track calls)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cdp_bench_delivery"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
UVICORN_OPTIONS = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

GOAL_SINGLE_VS_BASELINE = 0.35
GOAL_BATCH_VS_SINGLE = 20.0
GOAL_P95_MS = 250.0
GOAL_P99_MS = 1000.0
GOAL_ISOLATION_THROUGHPUT = 0.9
GOAL_ISOLATION_P95 = 2.0


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def placement(cpu: int | None):
    def apply() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return apply


def proc_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return 0


def box_ticks() -> tuple[int, int]:
    with open("/proc/stat") as file:
        values = [int(v) for v in file.readline().split()[1:]]
    return sum(values[:8]) - values[3] - values[4], sum(values[:8])


def machine_state() -> str:
    """Load average and how busy the machine is in the second before a phase (other people's work)."""
    busy, total = box_ticks()
    time.sleep(1.0)
    busy2, total2 = box_ticks()
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}, busy {(busy2 - busy) / max(1, total2 - total):.0%}"


# --- processes ----------------------------------------------------------------------------------
class Proc:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path, cpu: int | None = None):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=placement(cpu),
        )
        self.pid = self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()[-3000:]}")
            if re.search(pattern, self.log()):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f}s; see {self.log_path}")

    def wait_port(self, port: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not listen within {timeout:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=20)
            except ProcessLookupError:
                pass
        self._log.close()


class SinkProc(Proc):
    def __init__(self, name: str, mode: str, log_dir: Path, cpu: int | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            name, [sys.executable, str(HERE / "sink.py"), str(self.port), mode], dict(os.environ), log_dir, cpu
        )
        self.wait_port(self.port, 20)

    def get(self, path: str):
        # One kept client: the drains poll the sink ten times a second, and a new client per call (TLS
        # context included) took a sixth of a core away from the processes being measured.
        import httpx

        if getattr(self, "_client", None) is None:
            self._client = httpx.Client(timeout=30)
        return self._client.get(self.url + path).json()

    def stats(self) -> dict:
        return self.get("/__stats")

    def reset(self) -> None:
        self.get("/__reset")


def celery_worker(name: str, queues: str, concurrency: int, env, log_dir, cpu=None, beat=False) -> Proc:
    args = [sys.executable, "-m", "celery", "-A", "cdp", "worker", "-Q", queues, "--pool", "threads",
            "--concurrency", str(concurrency), "--loglevel", "INFO", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "--hostname", f"{name}-{free_port()}@%h"]  # fmt: skip
    if beat:
        args += ["--beat", "--schedule", str(log_dir / f"beat-{free_port()}")]
    proc = Proc(name, args, env, log_dir, cpu)
    proc.wait_log(r"\bready\.", 90)
    return proc


# --- the data -----------------------------------------------------------------------------------
def stored_payload(rng: random.Random, tag: str, index: int) -> dict:
    """An event as the processor stores it (normalised: receivedAt, originalTimestamp ...)."""
    event = sample_events.track_event(rng, index, tag)
    event["messageId"] = f"{tag}-{index}"
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event.update(receivedAt=now, originalTimestamp=event["timestamp"], sentAt=event["timestamp"])
    return {k: v for k, v in event.items() if v is not None}


def preload(source, tag: str, count: int, rng: random.Random) -> tuple[set[int], float]:
    """Store `count` events of `source` and route them (the product's routing makes the deliveries)."""
    from django.utils import timezone

    from cdp.delivery.routing import route_stored
    from cdp.processing.models import Event

    started = time.monotonic()
    destinations: set[int] = set()
    chunk = 2000
    for start in range(0, count, chunk):
        now = timezone.now()
        rows = []
        for index in range(start, min(count, start + chunk)):
            payload = stored_payload(rng, tag, index)
            rows.append(
                Event(
                    source=source,
                    type="track",
                    event=payload["event"],
                    user_id=payload.get("userId", ""),
                    anonymous_id=payload.get("anonymousId", ""),
                    message_id=payload["messageId"],
                    timestamp=now,
                    received_at=now,
                    intake_id=0,
                    payload=payload,
                )  # fmt: skip
            )
        created = Event.objects.bulk_create(rows, batch_size=1000)
        destinations |= route_stored([event.pk for event in created])
    return destinations, time.monotonic() - started


# --- measuring ----------------------------------------------------------------------------------
@dataclass
class Drain:
    name: str
    events: int
    seconds: float = 0.0
    worker_cpu: float = 0.0  # CPU seconds of the worker process during the drain
    state: str = ""
    sink: dict = field(default_factory=dict)
    delivered_db: int = 0
    other_status: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def keep_statistics() -> None:
    """What autovacuum does on a production database (on by default; off on some development and CI
    servers): vacuum and analyze the benchmark's database before a phase, so that it runs with the plans a deployed
    product gets, not those of a table the planner believes empty."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_settings WHERE name = 'autovacuum' AND setting = 'off'")
        if not cursor.fetchone()[0]:
            return
        cursor.execute("VACUUM (ANALYZE)")  # the benchmark's own database: a few seconds


def drain_phase(
    name: str, destination_ids: list[int], healthy_id: int, count: int, sink: SinkProc, worker: Proc, limit: float
) -> Drain:
    """Queue one drain task per destination (as routing does) and time until the healthy destination's
    `count` events are all at the sink and marked delivered."""
    from django.db.models import Count

    from cdp.delivery.models import Delivery
    from cdp.delivery.tasks import deliver_destination

    keep_statistics()
    result = Drain(name, count, state=machine_state())
    say(f"{name}: {count} deliveries pre-loaded; {result.state}")
    sink.reset()
    ticks = proc_ticks(worker.pid)
    started = time.time()
    for destination_id in destination_ids:
        deliver_destination.apply_async(args=[destination_id])
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        stats = sink.stats()
        if stats["events"] >= count:
            break
        if worker.popen.poll() is not None:
            raise RuntimeError(f"the worker died:\n{worker.log()[-3000:]}")
        time.sleep(0.1)
    stats = sink.stats()
    result.seconds = (stats["last"] - started) if stats["events"] else 0.0
    result.worker_cpu = (proc_ticks(worker.pid) - ticks) / os.sysconf("SC_CLK_TCK")
    # The last wave is recorded just after the sink answered it.
    for _ in range(100):
        statuses = dict(
            Delivery.objects.filter(destination_id=healthy_id).values_list("status").annotate(n=Count("id"))
        )
        if statuses.get("delivered", 0) >= count:
            break
        time.sleep(0.1)
    result.delivered_db = statuses.get("delivered", 0)
    result.other_status = {k: v for k, v in statuses.items() if k != "delivered"}
    result.sink = sink.stats()
    say(f"{name}: {result.rate:,.0f} events/s ({result.seconds:.2f} s), sink {result.sink['events']} events")
    return result


def baseline(url: str, seconds: float, rng: random.Random, cpu: int | None) -> tuple[float, int]:
    """One process, sequential keep-alive POSTs of a mapped event with the HTTP client the product's
    transport uses (urllib3's connection pool, the same options): requests/s, and how many."""
    import urllib3

    saved = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        templates = [stored_payload(rng, "tmpl", i) for i in range(64)]
        headers = {"Content-Type": "application/json", "User-Agent": "cdp-bench/1"}
        parsed = urllib3.util.parse_url(url)
        sent = 0
        with urllib3.HTTPConnectionPool(parsed.host, parsed.port, maxsize=1, retries=False) as pool:

            def post(body: bytes) -> int:
                response = pool.urlopen(
                    "POST", parsed.request_uri, body=body, headers=headers, timeout=urllib3.Timeout(10, 10),
                    retries=False, redirect=False, preload_content=True,
                )  # fmt: skip
                response.data.decode()
                return response.status

            for i in range(200):  # warm-up
                post(orjson.dumps(templates[i % 64] | {"messageId": f"warm-{i}"}))
            started = time.perf_counter()
            deadline = started + seconds
            for i in range(10_000_000):  # bounded; the deadline ends it long before
                status = post(orjson.dumps(templates[i % 64] | {"messageId": f"base-{i}"}))
                if status != 200:
                    raise RuntimeError(f"the sink answered {status}")
                sent += 1
                if time.perf_counter() >= deadline:
                    break
            elapsed = time.perf_counter() - started
        return sent / elapsed, sent + 200
    finally:
        os.sched_setaffinity(0, saved)


@dataclass
class Stream:
    """Single /v1/track events sent at a fixed rate (open loop), and when each reached the sink."""

    name: str
    rate: float
    sent: int = 0
    non_200: int = 0
    errors: int = 0
    arrived: int = 0
    duplicates: int = 0
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    throughput: float = 0.0  # events/s at the sink, from the first send to the last arrival
    state: str = ""
    send_lag_ms: float = 0.0  # worst delay between a send's schedule and the moment it went out


async def _send_stream(
    port: int, auth: str, write_key: str, tag: str, count: int, rate: float, connections: int
) -> tuple[dict[str, float], int, int, float]:
    """Open-loop sender: message i is due at t0 + i/rate whether or not earlier answers came back; its
    latency is counted from that moment (so a slow server cannot hide queueing in the sender)."""
    rng = random.Random(7)
    queue: asyncio.Queue = asyncio.Queue()
    scheduled: dict[str, float] = {}
    counts = {"non_200": 0, "errors": 0, "lag": 0.0}

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while True:
            item = await queue.get()
            if item is None:
                writer.close()
                return
            body, due = item
            counts["lag"] = max(counts["lag"], time.time() - due)
            writer.write(
                b"POST /v1/track HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Authorization: %s\r\nContent-Length: %d\r\n\r\n%s" % (auth.encode(), len(body), body)
            )
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                await reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 200"):
                    counts["non_200"] += 1
            except (TimeoutError, OSError, asyncio.IncompleteReadError, AttributeError):
                counts["errors"] += 1
                return

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    start = time.time() + 0.2
    for index in range(count):
        due = start + index / rate if rate else time.time()
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        message = sample_events.track_event(rng, index, tag) | {"writeKey": write_key}
        message["messageId"] = f"{tag}-{index}"
        message["timestamp"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        scheduled[message["messageId"]] = due
        queue.put_nowait((orjson.dumps(message), due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.wait_for(asyncio.gather(*workers), 120)
    return scheduled, counts["non_200"], counts["errors"], counts["lag"]


def stream_phase(
    name: str, api_port: int, auth: str, write_key: str, sink: SinkProc, count: int, rate: float, limit: float
) -> Stream:
    keep_statistics()
    stream = Stream(name, rate, state=machine_state())
    say(f"{name}: {count} single /v1/track events at {rate:,.0f}/s" if rate else f"{name}: {count} events at once")
    say(f"  {stream.state}")
    sink.reset()
    tag = f"{name}-{random.randrange(16**6):06x}"
    scheduled, stream.non_200, stream.errors, lag = asyncio.run(
        _send_stream(api_port, auth, write_key, tag, count, rate, 16 if rate else 32)
    )
    stream.sent, stream.send_lag_ms = len(scheduled), lag * 1000
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and sink.stats()["events"] < count:
        time.sleep(0.1)
    stats = sink.stats()
    arrivals = {k: v for k, v in sink.get("/__arrivals").items() if k in scheduled}
    stream.arrived, stream.duplicates = len(arrivals), stats["duplicates"]
    latencies = sorted((arrivals[k] - scheduled[k]) * 1000 for k in arrivals)
    if latencies:
        stream.p50, stream.p95, stream.p99 = (percentile(latencies, q) for q in (0.50, 0.95, 0.99))
        stream.max = latencies[-1]
        stream.throughput = len(arrivals) / (max(arrivals.values()) - min(scheduled.values()))
    say(
        f"{name}: {stream.arrived}/{stream.sent} arrived, {stream.throughput:,.0f} events/s, p50 {stream.p50:.0f} ms, "
        f"p95 {stream.p95:.0f} ms, p99 {stream.p99:.0f} ms, max {stream.max:.0f} ms"
    )
    return stream


def percentile(values: list[float], q: float) -> float:
    position = q * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


# --- the report ---------------------------------------------------------------------------------
@dataclass
class Row:
    figure: str
    value: float
    unit: str
    baseline: str = ""
    base: float | None = None
    goal: str = ""
    passed: bool | None = None
    ratio: float | None = None


def print_report(rows: list[Row], notes: list[str], invalid: list[str]) -> None:
    print()
    header = f"{'figure':<58} {'value':>10}  {'unit':<9} {'baseline':<34} {'ratio':>7}  {'goal':<12} result"
    print(header)
    print("-" * len(header))
    for row in rows:
        base = f"{row.baseline} {row.base:,.0f}" if row.base is not None else row.baseline
        ratio = f"{row.ratio:.3f}" if row.ratio is not None else ""
        result = "" if row.passed is None else ("PASS" if row.passed else "FAIL")
        print(f"{row.figure:<58} {row.value:>10,.0f}  {row.unit:<9} {base:<34} {ratio:>7}  {row.goal:<12} {result}")
    print()
    for note in notes:
        print(note)
    print()
    if invalid:
        print("NOT VALID:")
        for problem in invalid:
            print(f"  - {problem}")
    else:
        print("validity: every event reached the sink exactly once, every delivery is marked delivered, all 200s")


# --- the run ------------------------------------------------------------------------------------
def main() -> int:  # noqa: C901, PLR0915 - one linear script, phase after phase
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=0, help="deliveries pre-loaded per drain (default: ~8 s)")
    parser.add_argument("--batch-events", type=int, default=0, help="pre-loaded for the batching drain")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8, help="threads of the delivery worker (default 8)")
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    parser.add_argument("--latency-seconds", type=float, default=15.0, help="length of each fixed-rate stream")
    parser.add_argument("--rate", type=float, default=0.0, help="fixed send rate (default: half the sustainable)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument(
        "--only", default="", help="comma-separated: drain,e2e (default both); drain is single,batch,isolation"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    options = parser.parse_args()
    phases = set(options.only.split(",")) if options.only else {"drain", "e2e"}
    if "drain" in phases:
        phases |= {"single", "batch", "isolation"}

    parts = urlsplit(options.database_url)
    if parts.hostname not in LOOPBACK or urlsplit(options.redis_url).hostname not in LOOPBACK:
        raise SystemExit("the benchmark only talks to PostgreSQL and Redis on this machine")
    db_name = parts.path.lstrip("/")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", db_name):
        raise SystemExit(f"unexpected database name {db_name!r}")

    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    lock = open(ROOT / "var" / "bench" / "delivery.lock", "w")  # noqa: SIM115 - held until exit
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say("another bench/delivery run is going on (it empties the same tables); try again later")
        return 2

    # A SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the workers and sinks we started are stopped:
    # a stray worker left behind would take this benchmark's tasks in the next run.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    env = {k: v for k, v in os.environ.items() if not k.startswith("CDP_") and k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DATABASE_URL=options.database_url,
        REDIS_URL=options.redis_url,
        CDP_DEBUG="0",
        CDP_VAR_DIR="var/bench",
        CDP_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="cdp.settings",
    )
    os.environ.update(env)
    for key in [k for k in os.environ if k.startswith("CDP_") and k not in env]:
        del os.environ[key]

    import psycopg

    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name]).fetchone():
            conn.execute(f'CREATE DATABASE "{db_name}"')
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if migrate.returncode:
        say(migrate.stdout + migrate.stderr)
        return 2

    import django

    django.setup()
    import redis
    from django.db import connection

    from cdp.celery import app as celery_app  # noqa: F401 - the tasks below are queued through it
    from cdp.core.models import Destination, Source, Workspace
    from cdp.destinations.services import create_destination

    redis.Redis.from_url(options.redis_url).flushdb()  # our own index: lanes, breakers, queues
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE cdp_delivery, cdp_delivery_attempt, cdp_delivery_filtered, cdp_event, cdp_intake CASCADE"
        )
    Destination.objects.filter(workspace__slug="bench-delivery").delete()
    workspace, _ = Workspace.objects.get_or_create(slug="bench-delivery", defaults={"name": "Bench delivery"})

    def source(name: str) -> Source:
        found, _ = Source.objects.get_or_create(workspace=workspace, name=name, defaults={"kind": "server"})
        Source.objects.filter(pk=found.pk).update(enabled=True, rate_limit=None)
        return found

    def webhook(name: str, url: str, feeds: Source, **options) -> Destination:
        batch = options.pop("batch", False)
        destination = create_destination(
            workspace, name=name, type_key="webhook", settings={"url": url, "batch": batch}, enabled=True
        )
        Destination.objects.filter(pk=destination.pk).update(**options)
        destination.sources.set([feeds])
        return destination

    cpus = sorted(os.sched_getaffinity(0))
    worker_cpu, sink_cpu = (cpus[0], cpus[-1]) if len(cpus) >= 2 else (None, None)
    log_dir = ROOT / "var" / "bench" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261124)
    procs: list[Proc] = []
    rows: list[Row] = []
    notes: list[str] = []
    invalid: list[str] = []
    results: dict = {}
    try:
        sink = SinkProc("sink", "ok", log_dir, sink_cpu)
        dead = SinkProc("sink-dead", "hang", log_dir, sink_cpu)
        procs += [sink, dead]
        body_bytes = len(orjson.dumps(stored_payload(rng, "size", 0)))
        notes.append(f"mapped event (webhook default mapping: the whole stored event): ~{body_bytes} B of JSON")

        # --- baseline: one process, sequential POSTs ---
        state = machine_state()
        say(f"baseline: sequential POSTs; {state}")
        sink.reset()
        base_rate, base_sent = baseline(sink.url + "/hook", options.baseline_seconds, rng, worker_cpu)
        base_sink = sink.stats()
        if base_sink["events"] != base_sent or base_sink["distinct"] != base_sent:
            invalid.append(f"baseline: sent {base_sent}, the sink counted {base_sink['events']}")
        notes.append(f"baseline: {base_sent} POSTs, {base_rate:,.0f} req/s; before: {state}")
        say(f"baseline: {base_rate:,.0f} req/s")

        single = batched = isolated = None
        if phases & {"single", "batch", "isolation"}:
            worker = celery_worker("worker-delivery", "delivery", options.concurrency, env, log_dir, worker_cpu)
            procs.append(worker)
            count = options.events or int(min(40_000, max(4_000, base_rate * GOAL_SINGLE_VS_BASELINE * 8)))

            if "single" in phases:
                src = source("drain-single")
                hook = webhook("bench single", sink.url + "/single", src)
                _, load_s = preload(src, "single", count, rng)
                say(f"pre-loaded {count} deliveries in {load_s:.1f} s")
                single = drain_phase("non-batching drain", [hook.pk], hook.pk, count, sink, worker, 300)
                check_drain(single, invalid)

            if "batch" in phases:
                batch_count = options.batch_events or int(
                    min(200_000, max(20_000, (single.rate if single else 500) * GOAL_BATCH_VS_SINGLE * 4)
                        // options.batch_size) * options.batch_size
                )  # fmt: skip
                src = source("drain-batch")
                hook = webhook("bench batch", sink.url + "/batch", src, batch=True, batch_size=options.batch_size)
                _, load_s = preload(src, "batch", batch_count, rng)
                say(f"pre-loaded {batch_count} deliveries in {load_s:.1f} s")
                batched = drain_phase("batching drain", [hook.pk], hook.pk, batch_count, sink, worker, 300)
                check_drain(batched, invalid)

            if "isolation" in phases:
                src = source("drain-isolation")
                hang = webhook("bench never answers", dead.url + "/dead", src, timeout_seconds=5.0)
                hook = webhook("bench healthy", sink.url + "/healthy", src)
                _, load_s = preload(src, "iso", count, rng)
                say(f"pre-loaded {count} deliveries for each of 2 destinations in {load_s:.1f} s")
                isolated = drain_phase(
                    "non-batching drain beside a dead destination", [hang.pk, hook.pk], hook.pk, count, sink, worker,
                    300,
                )  # fmt: skip
                check_drain(isolated, invalid)
                Destination.objects.filter(pk=hang.pk).update(enabled=False)
            worker.stop()
            procs.remove(worker)
            for drained in (single, batched, isolated):
                if drained is None:
                    continue
                notes.append(
                    f"{drained.name}: {drained.events} events in {drained.seconds:.2f} s, worker CPU "
                    f"{drained.worker_cpu:.1f} s ({drained.worker_cpu / drained.events * 1e6:.0f} µs/event), "
                    f"{drained.sink['requests']} requests; before: {drained.state}"
                )

        plain = with_dead = burst = None
        if "e2e" in phases:
            src = source("e2e")
            Source.objects.filter(pk=src.pk).update(rate_limit=None)
            write_key = Source.objects.get(pk=src.pk).write_key
            auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
            hook = webhook("bench e2e", sink.url + "/e2e", src)
            hang = webhook("bench e2e never answers", dead.url + "/dead", src, timeout_seconds=5.0, enabled=False)
            api_port = free_port()
            web = Proc(
                "web",
                [sys.executable, "-m", "uvicorn", "cdp.asgi:application", "--host", "127.0.0.1", "--port",
                 str(api_port), *UVICORN_OPTIONS],
                env, log_dir,
            )  # fmt: skip
            procs.append(web)
            web.wait_port(api_port)
            procs.append(celery_worker("worker-processing", "cdp", 4, env, log_dir, beat=True))
            procs.append(celery_worker("worker-delivery-e2e", "delivery", options.concurrency, env, log_dir))

            # The sustainable end-to-end rate: a burst as fast as the API takes it, until all reach the sink.
            burst_count = int(min(20_000, max(2_000, (single.rate if single else 1000) * 6)))
            burst = stream_phase("e2e burst", api_port, auth, write_key, sink, burst_count, 0.0, 180)
            check_stream(burst, invalid)
            rate = options.rate or max(10.0, round(burst.throughput / 2))
            count = int(rate * options.latency_seconds)
            plain = stream_phase("e2e at a fixed rate", api_port, auth, write_key, sink, count, rate, 60)
            check_stream(plain, invalid)

            Destination.objects.filter(pk=hang.pk).update(enabled=True)
            with_dead = stream_phase(
                "e2e at a fixed rate, beside a dead destination", api_port, auth, write_key, sink, count, rate, 60
            )
            check_stream(with_dead, invalid)
            dead_stats = dead.stats()
            notes.append(
                f"dead destination (timeout 5 s): {dead_stats['connections']} connections opened to it, "
                f"{dead_stats['bytes']:,} bytes sent to it, no answer ever"
            )
            for stream in (burst, plain, with_dead):
                notes.append(
                    f"{stream.name}: {stream.arrived}/{stream.sent} arrived, {stream.throughput:,.0f} events/s, "
                    f"p50 {stream.p50:.0f} ms, max {stream.max:.0f} ms, sender lag max {stream.send_lag_ms:.0f} ms; "
                    f"before: {stream.state}"
                )
    except RuntimeError as exc:
        say(f"the run failed: {exc}")
        invalid.append(str(exc)[:500])
    finally:
        for proc in reversed(procs):
            proc.stop()

    # --- the table ---
    rows.append(Row("baseline: 1 process, sequential keep-alive POSTs", base_rate, "req/s"))
    if single:
        ratio = single.rate / base_rate
        rows.append(
            Row("delivered/s, 1 worker process, non-batching webhook", single.rate, "events/s", "baseline", base_rate,
                f">= {GOAL_SINGLE_VS_BASELINE:.2f} x", ratio >= GOAL_SINGLE_VS_BASELINE, ratio)
        )  # fmt: skip
    if batched and single:
        ratio = batched.rate / single.rate
        rows.append(
            Row(f"delivered/s, 1 worker process, batching webhook ({options.batch_size})", batched.rate, "events/s",
                "non-batching", single.rate, f">= {GOAL_BATCH_VS_SINGLE:.0f} x", ratio >= GOAL_BATCH_VS_SINGLE, ratio)
        )  # fmt: skip
    if isolated and single:
        ratio = isolated.rate / single.rate
        rows.append(
            Row("isolation: non-batching delivered/s beside a dead dest.", isolated.rate, "events/s", "non-batching",
                single.rate, f">= {GOAL_ISOLATION_THROUGHPUT:.1f} x", ratio >= GOAL_ISOLATION_THROUGHPUT, ratio)
        )  # fmt: skip
    if burst:
        rows.append(Row("sustainable end-to-end rate (burst, ingest to sink)", burst.throughput, "events/s"))
    if plain:
        rows.append(Row(f"e2e p50 at {plain.rate:,.0f} events/s", plain.p50, "ms"))
        rows.append(Row("e2e p95", plain.p95, "ms", goal=f"<= {GOAL_P95_MS:.0f} ms", passed=plain.p95 <= GOAL_P95_MS))
        rows.append(Row("e2e p99", plain.p99, "ms", goal=f"<= {GOAL_P99_MS:.0f} ms", passed=plain.p99 <= GOAL_P99_MS))
    if plain and with_dead:
        ratio = with_dead.p95 / plain.p95 if plain.p95 else None
        rows.append(Row("isolation: e2e p50 beside a dead destination", with_dead.p50, "ms"))
        rows.append(
            Row("isolation: e2e p95 beside a dead destination", with_dead.p95, "ms", "e2e p95", plain.p95,
                f"<= {GOAL_ISOLATION_P95:.0f} x", ratio is not None and ratio <= GOAL_ISOLATION_P95, ratio)
        )  # fmt: skip
        rows.append(Row("isolation: e2e p99 beside a dead destination", with_dead.p99, "ms"))
        ratio = with_dead.throughput / plain.throughput if plain.throughput else None
        rows.append(
            Row("isolation: e2e delivered/s beside a dead destination", with_dead.throughput, "events/s",
                "e2e delivered/s", plain.throughput, f">= {GOAL_ISOLATION_THROUGHPUT:.1f} x",
                ratio is not None and ratio >= GOAL_ISOLATION_THROUGHPUT, ratio)
        )  # fmt: skip
    print(
        f"Delivery benchmark — one Celery delivery worker process (--pool threads --concurrency "
        f"{options.concurrency}, pinned to CPU {worker_cpu}), sink on CPU {sink_cpu}, webhook max_in_flight 4"
    )
    print_report(rows, notes, invalid)
    results = {"rows": [r.__dict__ for r in rows], "notes": notes, "invalid": invalid}
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))
    if invalid:
        return 2
    return 0 if all(r.passed is not False for r in rows) else 1


def check_drain(drained: Drain, invalid: list[str]) -> None:
    sink = drained.sink
    if sink["events"] != drained.events or sink["distinct"] != drained.events:
        invalid.append(
            f"{drained.name}: {drained.events} deliveries, the sink got {sink['events']} events "
            f"({sink['distinct']} distinct, {sink['duplicates']} duplicates)"
        )
    if sink["bad"]:
        invalid.append(f"{drained.name}: {sink['bad']} events without a messageId at the sink")
    if drained.worker_cpu * 1e6 / max(1, drained.events) < 10:
        # Under 10 µs of CPU per event: our worker did not do the work (a stray worker on the queue did).
        invalid.append(f"{drained.name}: the benchmark's worker used {drained.worker_cpu:.2f} s of CPU for it")
    if drained.delivered_db != drained.events or drained.other_status:
        invalid.append(
            f"{drained.name}: {drained.delivered_db} delivered in the database of {drained.events}, "
            f"others {drained.other_status}"
        )


def check_stream(stream: Stream, invalid: list[str]) -> None:
    if stream.non_200 or stream.errors:
        invalid.append(f"{stream.name}: {stream.non_200} answers not 200, {stream.errors} connection errors")
    if stream.arrived != stream.sent or stream.duplicates:
        invalid.append(f"{stream.name}: {stream.arrived} of {stream.sent} arrived, {stream.duplicates} duplicates")


if __name__ == "__main__":
    sys.exit(main())
