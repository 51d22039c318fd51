#!/usr/bin/env python
"""Ingestion benchmark: the Tracking API against its baselines, in one run. See README.md.

    python bench/ingest/run.py [--duration 10] [--warmup 2] [--connections 64] [--json out.json]

Exit status: 0 every goal met, 1 a goal missed, 2 the run is not valid (wrk missing, a server did not
start, non-2xx answers, socket errors, or fewer intake rows than 200s).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import events  # noqa: E402

# How we recommend serving the product (one process per core behind a load balancer); the bare-ASGI
# baseline is served with exactly the same options.
UVICORN_OPTIONS = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cdp_bench"
LOOPBACK = {"127.0.0.1", "localhost", "::1", ""}
BIG_BATCH_BYTES = 500_000  # "~500 KB"; the default request limit is 500 KiB = 512,000 bytes

GOAL_TRACK_VS_HELLO = 0.10
GOAL_BATCH_VS_PARSE = 0.30
GOAL_RSS_MB = 300.0


# --- small helpers ------------------------------------------------------------------------------
def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def placement(cpu: int | None, niceness: int = 0):
    """preexec_fn pinning a child to one CPU (and renicing it)."""

    def apply() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        if niceness:
            os.nice(niceness)

    return apply


def proc_ticks(pid: int) -> int:
    """utime + stime of a live process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def box_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine."""
    with open("/proc/stat") as file:
        values = [int(v) for v in file.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


def background_cpu(seconds: float = 1.0) -> float:
    """How busy the machine is without our load (other people's tests skew every figure)."""
    busy, total = box_ticks()
    time.sleep(seconds)
    busy2, total2 = box_ticks()
    return (busy2 - busy) / max(1, total2 - total)


def status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


# --- servers ------------------------------------------------------------------------------------
class Server:
    def __init__(self, app: str, env: dict[str, str], cpu: int | None, log_dir: Path, name: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        args = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(self.port), *UVICORN_OPTIONS]
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

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"the server exited early; see {self.log_path}:\n{self.log_path.read_text()[-3000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                    sock.sendall(request)
                    if sock.recv(64).startswith(b"HTTP/1.1 "):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not answer within {timeout:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=15)
            except ProcessLookupError:
                pass
        self._log.close()


# --- load ---------------------------------------------------------------------------------------
@dataclass
class Load:
    """What one wrk run measured."""

    requests: int = 0
    seconds: float = 0.0
    status_errors: int = 0  # answers >= 400, as wrk counts them
    non_2xx: int = 0  # wrk's own "Non-2xx or 3xx responses" line
    socket_errors: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    wrk_cpu: float = 0.0  # share of one core
    server_cpu: float = 0.0
    box_cpu: float = 0.0  # share of the whole machine
    peak_rss_mb: float = 0.0
    background_cpu: float = 0.0  # share of the machine busy just before the phase, with no load on
    commits: int = 0  # intake transactions in the phase
    raw: str = ""

    @property
    def ok(self) -> int:
        return self.requests - max(self.status_errors, self.non_2xx)

    @property
    def ok_per_second(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        """Web-process CPU time per answered request: what the process would need from a core of its own."""
        return self.server_cpu * self.seconds / self.requests * 1000 if self.requests else 0.0


@dataclass
class Wrk:
    binary: str
    cpu: int | None
    threads: int
    connections: int
    nonce: str
    niceness: int = 5

    def run(
        self,
        url: str,
        template: Path,
        path: str,
        auth: str,
        seconds: float,
        timeout: float,
        server_pid: int | None = None,
        sample_rss: bool = False,
    ) -> Load:
        args = [
            self.binary,
            "-t",
            str(self.threads),
            "-c",
            str(self.connections),
            "-d",
            f"{seconds:g}s",
            "--timeout",
            f"{timeout:g}s",
            "-s",
            str(HERE / "post.lua"),
            url + path,
            "--",
            str(template),
            path,
            auth,
            self.nonce,
        ]
        background = background_cpu()
        before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        before_server = proc_ticks(server_pid) if server_pid else 0
        before_box = box_ticks()
        started = time.monotonic()
        with tempfile.TemporaryFile() as out:
            popen = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, preexec_fn=placement(self.cpu, self.niceness)
            )
            peak_kb = 0
            hard_deadline = started + seconds + timeout + 30
            while popen.poll() is None:
                if sample_rss and server_pid:
                    peak_kb = max(peak_kb, status_kb(server_pid, "VmRSS"))
                if time.monotonic() > hard_deadline:
                    popen.kill()
                    popen.wait()
                    raise RuntimeError("wrk did not finish in time")
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            out.seek(0)
            text = out.read().decode(errors="replace")
        after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        load = Load(raw=text, background_cpu=background)
        load.wrk_cpu = (
            after_children.ru_utime + after_children.ru_stime - before_children.ru_utime - before_children.ru_stime
        ) / elapsed
        if server_pid:
            load.server_cpu = (proc_ticks(server_pid) - before_server) / os.sysconf("SC_CLK_TCK") / elapsed
            if sample_rss:
                load.peak_rss_mb = max(peak_kb, status_kb(server_pid, "VmHWM")) / 1024
        busy, total = box_ticks()
        load.box_cpu = (busy - before_box[0]) / max(1, total - before_box[1])
        if popen.returncode != 0:
            raise RuntimeError(f"wrk failed ({popen.returncode}):\n{text}")
        match = re.search(r"^BENCH_JSON (\{.*\})$", text, re.M)
        if not match:
            raise RuntimeError(f"wrk printed no summary:\n{text}")
        summary = json.loads(match.group(1))
        load.requests = summary["requests"]
        load.seconds = summary["duration_us"] / 1e6
        load.status_errors = summary["status"]
        load.socket_errors = summary["connect"] + summary["read"] + summary["write"] + summary["timeout"]
        load.p50_ms = summary["p50_us"] / 1000
        load.p99_ms = summary["p99_us"] / 1000
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        load.non_2xx = int(non_2xx.group(1)) if non_2xx else 0
        return load


# --- the database -------------------------------------------------------------------------------
class BenchDatabase:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql"):
            raise SystemExit("--database-url must be a postgres:// URL")
        if (parts.hostname or "") not in LOOPBACK:
            raise SystemExit("the benchmark only talks to a database on this machine (127.0.0.1, localhost, ::1)")
        self.url = url
        self.name = parts.path.lstrip("/")
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.name):
            raise SystemExit(f"unexpected database name {self.name!r}")
        self.admin_url = urlunsplit(parts._replace(path="/postgres"))

    def create(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.name]).fetchone():
                conn.execute(f'CREATE DATABASE "{self.name}"')
                say(f"created database {self.name}")

    def connect(self):
        import psycopg

        return psycopg.connect(self.url, autocommit=True)


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args[:1])} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


_MAKE_SOURCE = """
from cdp.core.models import Source, Workspace
workspace, _ = Workspace.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
source, _ = Source.objects.get_or_create(workspace=workspace, name="bench", defaults={"kind": "server"})
Source.objects.filter(pk=source.pk).update(enabled=True, rate_limit=None)
print("WRITE_KEY=" + source.write_key)
"""


def wait_quiet(conn, server_pid: int, limit: float = 30.0) -> int:
    """Wait until the web process is idle and the intake table stops growing: requests still in flight
    when wrk stops are parsed and committed after it."""
    deadline = time.monotonic() + limit
    last, ticks = -1, proc_ticks(server_pid)
    while True:
        time.sleep(0.3)
        count = conn.execute("SELECT count(*) FROM cdp_intake").fetchone()[0]
        now_ticks = proc_ticks(server_pid)
        if (count == last and now_ticks - ticks <= 2) or time.monotonic() > deadline:
            return count
        last, ticks = count, now_ticks


# --- baselines ----------------------------------------------------------------------------------
def parse_rate(bodies: list[bytes], per_body: int, seconds: float, cpu: int | None) -> tuple[float, float]:
    """orjson.loads of whole batch bodies on one core: events per second, and events per CPU second."""
    saved = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        loads = orjson.loads
        for body in bodies:  # warm-up
            loads(body)
        done = 0
        started, cpu_started = time.perf_counter(), time.thread_time()
        deadline = started + seconds
        for _ in range(1_000_000):  # bounded; the deadline ends it long before
            for body in bodies:
                loads(body)
            done += len(bodies)
            if time.perf_counter() >= deadline:
                break
        wall, cpu_time = time.perf_counter() - started, time.thread_time() - cpu_started
        return done * per_body / wall, done * per_body / max(cpu_time, 1e-9)
    finally:
        os.sched_setaffinity(0, saved)


def filled(template: bytes, index: int) -> bytes:
    tag = f"{index:0{events.TAG_LENGTH}d}".encode()
    return template.replace(events.PLACEHOLDER.encode(), tag)


# --- the run ------------------------------------------------------------------------------------
@dataclass
class Row:
    measure: str
    value: float
    unit: str
    baseline: str = ""
    ratio: float | None = None
    goal: str = ""
    passed: bool | None = None
    cpu_ratio: float | None = None  # the same comparison in CPU time per event (robust to a busy machine)
    note: str = ""
    extra: dict = field(default_factory=dict)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per phase (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per phase (default 2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=0, help="wrk threads (default: one per CPU wrk may use)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--no-pin", action="store_true", help="do not pin the web process and wrk to CPUs")
    parser.add_argument("--only", default="", help="comma-separated phases: hello,parse,track,batch,big")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    options = parser.parse_args()
    if not (1 <= options.duration <= 120 and 0 <= options.warmup <= 30 and 1 <= options.connections <= 1024):
        parser.error("--duration 1..120, --warmup 0..30, --connections 1..1024")
    phases = set(options.only.split(",")) if options.only else {"hello", "parse", "track", "batch", "big"}

    wrk_binary = shutil.which("wrk")
    if not wrk_binary:
        say("wrk is not installed. On Debian/Ubuntu: sudo apt-get install -y wrk   (macOS: brew install wrk)")
        return 2

    cpus = sorted(os.sched_getaffinity(0))
    if options.no_pin or len(cpus) < 2:
        server_cpu, wrk_cpus = None, None
        threads = options.threads or 1
    else:
        server_cpu = cpus[0]
        wrk_cpus = cpus[1:]
        threads = options.threads or len(wrk_cpus)
    # wrk gets one CPU (the last) on a 2-core box; more cores mean more wrk threads, all pinned to the last.
    wrk = Wrk(wrk_binary, wrk_cpus[-1] if wrk_cpus else None, threads, options.connections, secrets.token_hex(4))
    say(
        f"CPUs {cpus}: web process on {server_cpu}, wrk ({threads} thread(s), {options.connections} connections) "
        f"on {wrk.cpu}, PostgreSQL unpinned"
    )

    work = Path(tempfile.mkdtemp(prefix="cdp-bench-"))
    log_dir = ROOT / "var" / "bench" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    loads: dict[str, Load] = {}
    invalid: list[str] = []
    server: Server | None = None
    try:
        # The product's environment: PostgreSQL, processor asleep, every other setting at its default.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDP_") and k != "DJANGO_SETTINGS_MODULE"}
        env.update(
            DATABASE_URL=options.database_url,
            CDP_WAKE_PROCESSOR="0",
            CDP_DEBUG="0",
            CDP_VAR_DIR="var/bench",
            CDP_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        database = BenchDatabase(options.database_url)
        if phases & {"track", "batch", "big"}:
            database.create()
            manage(env, "migrate", "--noinput")
            write_key = re.search(r"WRITE_KEY=(\S+)", manage(env, "shell", "-c", _MAKE_SOURCE)).group(1)
        else:
            write_key = "bench-write-key-without-database"
        auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()

        rng = random.Random(20261123)
        single = orjson.dumps(events.track_event(rng, 0) | {"writeKey": write_key})
        batch = events.batch_body(rng, 100, write_key)
        big, big_count = events.batch_body_of_size(rng, BIG_BATCH_BYTES, write_key)
        templates = {}
        for name, body in (("single", single), ("batch", batch), ("big", big)):
            templates[name] = work / f"{name}.json"
            templates[name].write_bytes(body)
        say(f"bodies: single {len(single)} B, batch 100 events {len(batch)} B, big {big_count} events {len(big)} B")

        seconds, warm = options.duration, options.warmup
        parse_bodies = [filled(batch, i) for i in range(32)]
        big_bodies = [filled(big, i) for i in range(4)]
        parse_runs: list[tuple[float, float]] = []
        big_parse_runs: list[tuple[float, float]] = []

        def measure_parse() -> None:
            say("baseline: orjson.loads of 100-event and ~500 KB batches ...")
            parse_runs.append(parse_rate(parse_bodies, 100, min(seconds, 5.0), server_cpu))
            big_parse_runs.append(parse_rate(big_bodies, big_count, min(seconds, 5.0), server_cpu))

        if "parse" in phases:
            measure_parse()

        if "hello" in phases:
            say("baseline: bare ASGI hello under uvicorn ...")
            server = Server("hello:app", env | {"PYTHONPATH": str(HERE)}, server_cpu, log_dir, "hello")
            server.wait_ready("/")
            if warm:
                wrk.run(server.base, templates["single"], "/v1/track", auth, warm, 5)
            load = loads["hello"] = wrk.run(server.base, templates["single"], "/v1/track", auth, seconds, 5, server.pid)
            server.stop()
            server = None
            check(load, None, "hello", invalid, options.connections)

        committed: dict[str, int] = {}
        plan = [
            ("track", "/v1/track single events", "single", "/v1/track", 1, 5),
            ("batch", "/v1/batch, 100 events", "batch", "/v1/batch", 100, 10),
            ("big", f"/v1/batch, ~500 KB ({big_count} events)", "big", "/v1/batch", big_count, 30),
        ]
        if phases & {"track", "batch", "big"}:
            server = Server("cdp.asgi:application", env, server_cpu, log_dir, "product")
            server.wait_ready("/healthz")
            conn = database.connect()
            for key, title, template, path, _per_request, timeout in plan:
                if key not in phases:
                    continue
                say(f"product: {title} ...")
                if key == "big":
                    # Peak RSS under these batches only: reset the high-water mark (Linux >= 4.0).
                    try:
                        Path(f"/proc/{server.pid}/clear_refs").write_text("5")
                    except OSError:
                        say("could not reset the peak RSS; sampling VmRSS instead")
                if warm:
                    wrk.run(server.base, templates[template], path, auth, warm, timeout, server.pid, key == "big")
                wait_quiet(conn, server.pid)
                conn.execute("TRUNCATE cdp_intake")
                load = loads[key] = wrk.run(
                    server.base, templates[template], path, auth, seconds, timeout, server.pid, key == "big"
                )
                committed[key] = wait_quiet(conn, server.pid)
                # Rows written by one transaction share its xmin: how well the group commit groups.
                load.commits = conn.execute("SELECT count(DISTINCT xmin::text) FROM cdp_intake").fetchone()[0]
                conn.execute("TRUNCATE cdp_intake")
                check(load, committed[key], key, invalid, options.connections)
            conn.close()
            server.stop()
            server = None

        if "parse" in phases and phases & {"batch", "big"}:
            measure_parse()  # again: the machine may have been busier at the start; keep the best
    except RuntimeError as exc:
        say(f"the run failed: {exc}")
        return 2
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    # --- the table ---
    parse_eps = max(run[0] for run in parse_runs) if parse_runs else None
    parse_cpu_eps = max(run[1] for run in parse_runs) if parse_runs else 0.0
    if parse_runs:
        big_parse = max(run[0] for run in big_parse_runs)
        runs = ", ".join(f"{run[0]:,.0f}" for run in parse_runs)
        rows.append(
            Row(
                "orjson.loads, 100-event batches (in-process)",
                parse_eps,
                "events/s",
                note=f"best of runs {runs}; ~500 KB batches: {big_parse:,.0f} events/s",
            )
        )
    hello = loads.get("hello")
    if hello:
        rows.append(Row("bare ASGI hello, POST single event", hello.ok_per_second, "req/s", extra={"load": "hello"}))
    for key, title, _template, _path, per_request, _timeout in plan:
        load = loads.get(key)
        if load is None:
            continue
        if key == "track":
            row = goal_row(
                title,
                load.ok_per_second,
                "req/s",
                "bare ASGI hello",
                hello.ok_per_second if hello else None,
                GOAL_TRACK_VS_HELLO,
                key,
                committed[key],
            )
            if hello and load.cpu_ms_per_request:
                row.cpu_ratio = hello.cpu_ms_per_request / load.cpu_ms_per_request
        else:
            row = goal_row(
                title,
                load.ok_per_second * per_request,
                "events/s",
                "orjson parse",
                parse_eps,
                GOAL_BATCH_VS_PARSE,
                key,
                committed[key],
            )
            if parse_cpu_eps and load.cpu_ms_per_request:
                row.cpu_ratio = per_request / (load.cpu_ms_per_request / 1000) / parse_cpu_eps
        rows.append(row)
        if key == "big":
            rss = load.peak_rss_mb
            rows.append(
                Row(
                    "web process peak RSS under ~500 KB batches",
                    rss,
                    "MB",
                    goal=f"<= {GOAL_RSS_MB:.0f} MB",
                    passed=rss <= GOAL_RSS_MB,
                    extra={"load": key},
                )
            )

    print_report(rows, loads, invalid, options, server_cpu, wrk)
    if options.json:
        options.json.write_text(
            json.dumps(
                {
                    "rows": [r.__dict__ for r in rows],
                    "loads": {k: {**v.__dict__, "raw": None} for k, v in loads.items()},
                    "invalid": invalid,
                },
                indent=2,
            )
        )
    if invalid:
        return 2
    return 0 if all(r.passed is not False for r in rows) else 1


def goal_row(
    title: str, value: float, unit: str, baseline: str, base: float | None, goal: float, key: str, committed: int
) -> Row:
    if base:
        ratio = value / base
        return Row(
            title,
            value,
            unit,
            baseline,
            ratio,
            f">= {goal:.2f} x",
            ratio >= goal,
            extra={"load": key, "rows": committed},
        )
    return Row(title, value, unit, "(not measured)", extra={"load": key, "rows": committed})


def check(load: Load, committed: int | None, key: str, invalid: list[str], connections: int) -> None:
    if load.requests == 0:
        invalid.append(f"{key}: no request completed")
    if load.status_errors or load.non_2xx:
        invalid.append(f"{key}: {max(load.status_errors, load.non_2xx)} answers were not 200")
    if load.socket_errors:
        invalid.append(f"{key}: {load.socket_errors} socket errors or timeouts")
    if committed is not None:
        # Every 200 is a committed row; a few more rows may come from requests still in flight when wrk stopped.
        if committed < load.ok:
            invalid.append(f"{key}: {load.ok} answers of 200 but only {committed} intake rows")
        elif committed > load.ok + connections:
            invalid.append(f"{key}: {committed} intake rows for {load.ok} answers and {connections} connections")


def print_report(rows: list[Row], loads: dict[str, Load], invalid: list[str], options, server_cpu, wrk: Wrk) -> None:
    print()
    print(
        f"Ingestion benchmark — one web process (uvicorn {' '.join(UVICORN_OPTIONS[:4])}), "
        f"{options.duration:g} s per phase after {options.warmup:g} s warm-up, {options.connections} connections"
    )
    header = (
        f"{'measure':<48} {'value':>12}  {'unit':<9} {'baseline':<16} {'ratio':>6}  {'goal':<10} "
        f"{'result':<6} {'CPU ratio':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        value = f"{row.value:,.1f}" if row.unit == "MB" else f"{row.value:,.0f}"
        ratio = f"{row.ratio:.3f}" if row.ratio is not None else ""
        result = "" if row.passed is None else ("PASS" if row.passed else "FAIL")
        cpu_ratio = f"{row.cpu_ratio:.3f}" if row.cpu_ratio is not None else ""
        print(
            f"{row.measure:<48} {value:>12}  {row.unit:<9} {row.baseline:<16} {ratio:>6}  {row.goal:<10} "
            f"{result:<6} {cpu_ratio:>9}"
        )
        if row.note:
            print(f"{'':<4}{row.note}")
    print()
    print(
        f"{'load phase':<10} {'requests':>9} {'non-2xx':>8} {'sock err':>8} {'rows':>9} {'rows/tx':>7} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'web CPU':>8} {'CPU/req':>9} {'wrk CPU':>8} {'box CPU':>8} {'idle box':>8}"
    )
    committed = {r.extra.get("load"): r.extra.get("rows") for r in rows if "rows" in r.extra}
    for key, load in loads.items():
        rows_text = str(committed.get(key, "-"))
        per_tx = f"{committed[key] / load.commits:.1f}" if load.commits else "-"
        print(
            f"{key:<10} {load.requests:>9} {max(load.status_errors, load.non_2xx):>8} {load.socket_errors:>8} "
            f"{rows_text:>9} {per_tx:>7} {load.p50_ms:>8.2f} {load.p99_ms:>8.2f} {load.server_cpu:>8.0%} "
            f"{load.cpu_ms_per_request:>7.3f}ms {load.wrk_cpu:>8.0%} {load.box_cpu:>8.0%} "
            f"{load.background_cpu:>8.0%}"
        )
    print(
        "web/wrk CPU: share of one core; CPU/req: web-process CPU time per answered request; box CPU: share of\n"
        "all cores during the phase; idle box: share of all cores busy in the second before the phase, without\n"
        "our load (other processes); rows: intake rows committed in the phase; rows/tx: rows per intake transaction"
    )
    busy = [key for key, load in loads.items() if load.background_cpu > 0.10]
    if busy:
        print(f"WARNING: the machine was busy before {', '.join(busy)} (other processes): figures are low and noisy")
    if invalid:
        print()
        print("NOT VALID:")
        for problem in invalid:
            print(f"  - {problem}")


if __name__ == "__main__":
    sys.exit(main())
