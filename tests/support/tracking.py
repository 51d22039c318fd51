"""A Tracking API server shared by the tests of one module, and helpers to talk to it.

One uvicorn process per module is enough because every test works on committed data
(transactional_db) that is flushed after it, write keys are random, and row ids are never reused,
so nothing the server caches (keys, rate-limit buckets) can leak from one test into the next.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import orjson
import requests

from cdp.core.models import Source, Workspace
from tests.support.processes import LiveServer, child_env

ORIGIN = "http://shop.example"
_ids = itertools.count(1)


class TrackingServer(LiveServer):
    """LiveServer that waits out a slow first answer (on a busy machine Django's first request can
    take over a second, which LiveServer takes for a failure) and never leaves its process behind."""

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None and time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/healthz", timeout=5)
                return
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not get ready in {timeout}s:\n{self.log()}")


def serve_tracking() -> Iterator[LiveServer]:
    # No processor wake-ups: the tests process the intake log themselves, when they choose to.
    server = TrackingServer(env=child_env(CDP_WAKE_PROCESSOR="0"))
    try:
        yield server
    finally:
        server.stop()


class TrackingClient:
    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.url = server.url

    def post(
        self,
        path: str,
        payload: Any = None,
        *,
        key: str | None = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> requests.Response:
        """POST `payload` as JSON (or `data` as is), with `key` as Basic auth user when given."""
        if payload is not None:
            data = orjson.dumps(payload)
            headers = {"Content-Type": "application/json", **(headers or {})}
        auth = (key, "") if key is not None else None
        return requests.post(f"{self.url}{path}", data=data, auth=auth, headers=headers, params=params, timeout=10)

    def get(self, path: str, headers: dict[str, str] | None = None) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers=headers, timeout=10)

    def options(self, path: str, headers: dict[str, str]) -> requests.Response:
        return requests.options(f"{self.url}{path}", headers=headers, timeout=10)


def make_source(**fields: Any) -> Source:
    """A source in a workspace of its own; no users, whose password hashing would cost ~0.3 s a test."""
    number = next(_ids)
    workspace = Workspace.objects.create(name=f"Shop {number}", slug=f"shop-{number}")
    return Source.objects.create(workspace=workspace, name="Website", kind="website", **fields)


_REQUIRED = {
    "identify": {"traits": {"email": "ada@example.com"}},
    "track": {"event": "Order Completed", "properties": {"total": 42.5}},
    "page": {"name": "Pricing"},
    "screen": {"name": "Home"},
    "group": {"groupId": "org-1", "traits": {"plan": "pro"}},
    "alias": {"previousId": "anon-1"},
}


def message(kind: str = "track", **fields: Any) -> dict[str, Any]:
    """A valid message of `kind` with a unique messageId; `fields` override or add to it."""
    return {"type": kind, "userId": "user-1", "messageId": f"msg-{next(_ids)}", **_REQUIRED[kind], **fields}


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """The answer is `status` with a JSON body {"code": code, "message": <some explanation>}."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body
