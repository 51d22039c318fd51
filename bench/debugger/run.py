#!/usr/bin/env python
"""Debugger benchmark: Tracking API throughput with 0 and with 10 connected debugger clients, and the
lag from ingest to screen, in one run. See README.md.

    python bench/debugger/run.py [--duration 5] [--warmup 1] [--rounds 4] [--viewers 10] [--json out.json]

Exit status: 0 every goal met, 1 a goal missed, 2 the run is not valid (wrk missing, a server did not
start, non-2xx answers or socket errors, viewers that received nothing).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # noqa: E402
    ROOT,
    SHAPES,
    Server,
    Viewers,
    body_for,
    box_ticks,
    own_seconds,
    percentile,
    prepare_database,
    proc_ticks,
    run_wrk,
    say,
    truncate_intake,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cdp_bench_debugger"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
GOAL_RATIO = 0.9
GOAL_P95_LAG = 1.0
PUBLISHERS_LEARN = 1.0  # web processes re-read who is watching twice a second


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
