"""Real servers and workers in subprocesses, pointed at the test database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """The URL of the database pytest-django created, for processes started by tests."""
    cfg = connection.settings_dict
    if cfg["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{cfg['NAME']}"
    user = cfg.get("USER") or ""
    host = cfg.get("HOST") or "127.0.0.1"
    port = cfg.get("PORT") or 5432
    auth = f"{user}@" if user else ""
    return f"postgres://{auth}{host}:{port}/{cfg['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = test_database_url()
    env.setdefault("CDP_WRITE_KEY_CACHE_SECONDS", "0.2")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log_name: str) -> None:
        log_dir = ROOT / "var" / "test" / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{log_name}-{int(time.time() * 1000)}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                self.kill()
        self._log.close()


class LiveServer(Proc):
    """The product's ASGI application served by uvicorn on a loopback port."""

    def __init__(self, env: dict[str, str] | None = None, server: str = "uvicorn") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if server == "daphne":
            args = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "cdp.asgi:application"]
        else:
            args = [sys.executable, "-m", "uvicorn", "cdp.asgi:application", "--host", "127.0.0.1",
                    "--port", str(self.port), "--log-level", "warning"]  # fmt: skip
        super().__init__(args, env or child_env(), "server")
        try:
            self._wait_ready()
        except BaseException:
            self.stop()  # never leave a half-started server behind
            raise

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                requests.get(f"{self.url}/healthz", timeout=5)
                return
            except requests.RequestException:  # refused while starting, or slow first answer
                time.sleep(0.1)
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.log()}")


class CeleryWorker(Proc):
    """A real Celery worker (one process, a few threads, both queues) plus, optionally, beat."""

    def __init__(self, env: dict[str, str] | None = None, beat: bool = False) -> None:
        args = [sys.executable, "-m", "celery", "-A", "cdp", "worker", "-Q", "cdp,delivery", "--pool", "threads",
                "--concurrency", "4", "--loglevel", "INFO",
                "--without-gossip", "--without-mingle", "--hostname", f"test-{free_port()}@%h"]  # fmt: skip
        if beat:
            args += ["--beat", "--schedule", str(ROOT / "var" / "test" / f"beat-{free_port()}")]
        super().__init__(args, env or child_env(), "worker")
