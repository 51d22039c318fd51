"""The published Segment libraries, unchanged, against a live server (see /work/shared/CLIENTS.md).

Each library sends identify, track, page, screen (where it has one), group and alias. Every message
must be stored exactly once under the messageId the library generated, be readable through the
management API, and the library's requests sent a second time must store nothing new.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from segment.analytics import Client

from cdp.core.models import ApiToken, Source
from cdp.processing.models import Event, RejectedMessage
from cdp.processing.processor import process_pending
from cdp.tracking.models import IntakeRequest
from dashboard.snippets import browser_snippet
from tests.support.processes import ROOT, CeleryWorker, LiveServer, child_env

pytestmark = pytest.mark.slow

CLIENTS = Path(__file__).parent / "clients"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
CALL_TYPES = ["identify", "track", "page", "screen", "group", "alias"]


@dataclass
class Request:
    """One HTTP request exactly as a library sent it."""

    url: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Sent:
    """What one library run produced: (type, messageId) per message, and its requests."""

    library: str
    messages: list[tuple[str, str]]
    requests: list[Request]


# --- the three libraries ----------------------------------------------------------------------


def send_with_python(server: LiveServer, source: Source) -> Sent:
    errors: list[Exception] = []
    client = Client(source.write_key, host=server.url, on_error=lambda error, batch: errors.append(error))
    results = [
        client.identify("user-py", {"email": "ada@example.com"}),
        client.track("user-py", "Order Completed", {"total": 42.5}),
        client.page("user-py", "Docs", "Install"),
        client.screen("user-py", "Mobile", "Home"),
        client.group("user-py", "org-py", {"plan": "pro"}),
        client.alias("user-py", "user-py-2"),
    ]
    client.shutdown()
    assert errors == []
    assert all(queued for queued, _ in results)
    # The library keeps no copy of what it posted; the intake log stores each body as received.
    sent_requests = [
        Request(
            f"{server.url}/v1/{row.endpoint}",
            bytes(row.body),
            {"Content-Type": "application/json", "Authorization": _basic_auth(source.write_key)},
        )
        for row in IntakeRequest.objects.filter(source=source).order_by("id")
    ]
    messages = [(msg["type"], msg["messageId"]) for _, msg in results]
    assert sorted(_messages_in(sent_requests)) == sorted(messages)
    return Sent("analytics-python", messages, sent_requests)


def send_with_node(server: LiveServer, source: Source) -> Sent:
    node = shutil.which("node")
    assert node, "node is not on PATH"
    run = subprocess.run(
        [node, str(CLIENTS / "send_with_analytics_node.js"), source.write_key, server.url],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["errors"] == []
    assert report["statuses"] and set(report["statuses"]) == {200}
    sent_requests = [Request(r["url"], r["body"].encode(), r["headers"]) for r in report["requests"]]
    messages = [(kind, report["messageIds"][kind]) for kind in CALL_TYPES]
    assert sorted(_messages_in(sent_requests)) == sorted(messages)
    return Sent("@segment/analytics-node", messages, sent_requests)


SEND_FROM_PAGE = """async () => {
  const analytics = window.analytics;
  const ids = {};
  ids.identify = (await analytics.identify("user-web", { email: "ada@example.com" })).event.messageId;
  ids.track = (await analytics.track("Order Completed", { total: 42.5 })).event.messageId;
  ids.page = (await analytics.page("Docs", "Install")).event.messageId;
  ids.screen = (await analytics.screen("Mobile", "Home")).event.messageId;
  ids.group = (await analytics.group("org-web", { plan: "pro" })).event.messageId;
  ids.alias = (await analytics.alias("user-web-2", "user-web")).event.messageId;
  return ids;
}"""

RESEND_FROM_PAGE = """async (requests) => {
  const statuses = [];
  for (const { url, body, headers } of requests) {
    statuses.push((await fetch(url, { method: "POST", headers, body })).status);
  }
  return statuses;
}"""


@dataclass
class BrowserRun:
    sent: Sent
    returned_ids: dict[str, str]
    requested_urls: list[str]
    blocked_urls: list[str]
    page_errors: list[str]


def send_with_browser(server: LiveServer, source: Source, page: Any, page_url: str) -> BrowserRun:
    """Open the page (another origin, the dashboard's snippet in it) and call each method once."""
    requested: list[str] = []
    blocked: list[str] = []
    posts: list[Any] = []
    page_errors: list[str] = []

    def only_loopback(route: Any) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK_HOSTS:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.context.on("request", lambda request: requested.append(request.url))
    page.context.route("**/*", only_loopback)
    page.on("response", lambda response: posts.append(response) if response.request.method == "POST" else None)
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.goto(page_url)
    page.wait_for_function("() => window.analytics && window.analytics.initialized === true", timeout=20_000)
    returned_ids = page.evaluate(SEND_FROM_PAGE)
    # The snippet's own analytics.page() plus one request per call; each call resolves when its
    # request is done, but give a stray extra request (a retry) the chance to show up too.
    expected = 1 + len(CALL_TYPES)
    _pump_until(page, lambda: len(posts) >= expected)
    page.wait_for_timeout(500)
    assert len(posts) == expected, [response.url for response in posts]

    messages, sent_requests = [], []
    for response in posts:
        assert response.status == 200, f"{response.url} answered {response.status}"
        request = response.request
        event = json.loads(request.post_data)
        assert urlsplit(request.url).path == f"/v1/{event['type'][0]}"
        messages.append((event["type"], event["messageId"]))
        headers = {name: request.headers[name] for name in ("content-type", "authorization") if name in request.headers}
        sent_requests.append(Request(request.url, request.post_data.encode(), headers))
    assert blocked == [], "the page tried to reach a host that is not loopback"
    return BrowserRun(Sent("analytics.js", messages, sent_requests), returned_ids, requested, blocked, page_errors)


# --- helpers --------------------------------------------------------------------------------------


def _messages_in(batch_requests: list[Request]) -> list[tuple[str, str]]:
    """(type, messageId) of every message in the batch requests a library made."""
    return [(m["type"], m["messageId"]) for r in batch_requests for m in json.loads(r.body)["batch"]]


def _basic_auth(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def _pump_until(page: Any, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait while letting playwright deliver its events (plain sleeping would starve them)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        page.wait_for_timeout(50)


@contextmanager
def serve_page(html: str) -> Iterator[str]:
    """A second loopback HTTP server, on its own port, so the page is of another origin."""
    body = html.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/shop/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def shop_page(source: Source, server: LiveServer) -> str:
    return (CLIENTS / "page.html").read_text().replace("{{ snippet }}", browser_snippet(source, server.url))


def process_now(source: Source, intake_rows: int) -> None:
    """Drain the intake log in this process."""
    assert IntakeRequest.objects.filter(source=source).count() == intake_rows
    while process_pending().requests:
        pass
    assert not IntakeRequest.objects.filter(source=source, processed_at__isnull=True).exists()


def wait_for_worker(worker: CeleryWorker, source: Source, intake_rows: int, timeout: float = 30.0) -> None:
    """Wait until the Celery worker has processed every intake request of the source."""
    deadline = time.monotonic() + timeout
    while True:
        rows = IntakeRequest.objects.filter(source=source)
        pending = list(rows.filter(processed_at__isnull=True).values_list("id", "attempts", "error"))
        if rows.count() == intake_rows and not pending:
            return
        assert time.monotonic() < deadline, (
            f"{rows.count()}/{intake_rows} intake requests, pending: {pending}\nworker log:\n{worker.log()[-3000:]}"
        )
        time.sleep(0.1)


def start_worker(celery_worker: Callable[..., CeleryWorker]) -> CeleryWorker:
    # Beat's sweeper as well: a wake-up lost on the shared test broker must not stall the test.
    return celery_worker(env=child_env(CDP_SWEEP_SECONDS="1"), beat=True)


def events_with_message_id(server: LiveServer, token: str, message_id: str) -> list[dict[str, Any]]:
    response = requests.get(
        f"{server.url}/api/v1/events/",
        params={"message_id": message_id},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["results"]


def assert_stored_once(server: LiveServer, token: str, source: Source, sent: Sent) -> None:
    assert len({message_id for _, message_id in sent.messages}) == len(sent.messages)
    for kind, message_id in sent.messages:
        found = events_with_message_id(server, token, message_id)
        assert len(found) == 1, f"{kind} {message_id} is stored {len(found)} times"
        event = found[0]
        assert (event["type"], event["message_id"], event["source"]) == (kind, message_id, source.id)
        assert event["payload"]["context"]["library"]["name"] == sent.library
    assert Event.objects.filter(source=source).count() == len(sent.messages)
    assert not RejectedMessage.objects.filter(source=source).exists()


def resend(sent: Sent) -> None:
    for request in sent.requests:
        response = requests.post(request.url, data=request.body, headers=request.headers, timeout=10)
        assert response.status_code == 200, response.text


def api_token(user: Any) -> str:
    _, token = ApiToken.issue(user)
    return token


# --- segment-analytics-python -------------------------------------------------------------------


def test_python_library_every_call_is_stored_once_under_its_message_id(cdp_server, source, alice):
    sent = send_with_python(cdp_server, source)
    process_now(source, len(sent.requests))

    assert sorted(kind for kind, _ in sent.messages) == sorted(CALL_TYPES)
    assert_stored_once(cdp_server, api_token(alice), source, sent)


def test_python_library_batch_sent_again_stores_nothing_new(cdp_server, source, alice):
    sent = send_with_python(cdp_server, source)
    process_now(source, len(sent.requests))

    resend(sent)
    process_now(source, 2 * len(sent.requests))

    assert_stored_once(cdp_server, api_token(alice), source, sent)


# --- @segment/analytics-node --------------------------------------------------------------------


def test_node_library_every_call_is_stored_once_under_its_message_id(cdp_server, source, alice, celery_worker):
    worker = start_worker(celery_worker)
    sent = send_with_node(cdp_server, source)
    wait_for_worker(worker, source, len(sent.requests))

    assert all(message_id.startswith("node-next-") for _, message_id in sent.messages)
    assert_stored_once(cdp_server, api_token(alice), source, sent)


def test_node_library_batch_sent_again_stores_nothing_new(cdp_server, source, alice, celery_worker):
    worker = start_worker(celery_worker)
    sent = send_with_node(cdp_server, source)
    wait_for_worker(worker, source, len(sent.requests))

    resend(sent)
    wait_for_worker(worker, source, 2 * len(sent.requests))

    assert_stored_once(cdp_server, api_token(alice), source, sent)


# --- @segment/analytics-next in Chromium ----------------------------------------------------------


@pytest.mark.browser
def test_browser_library_every_call_is_stored_once_under_its_message_id(cdp_server, source, alice, celery_worker, page):
    worker = start_worker(celery_worker)
    with serve_page(shop_page(source, cdp_server)) as page_url:
        run = send_with_browser(cdp_server, source, page, page_url)
    wait_for_worker(worker, source, len(run.sent.requests))

    sent_ids = {message_id for _, message_id in run.sent.messages}
    assert set(run.returned_ids) == set(CALL_TYPES)
    assert set(run.returned_ids.values()) <= sent_ids
    # The one message not returned to us is the snippet's own analytics.page().
    assert [kind for kind, mid in run.sent.messages if mid not in run.returned_ids.values()] == ["page"]
    assert_stored_once(cdp_server, api_token(alice), source, run.sent)
    assert run.page_errors == []


@pytest.mark.browser
def test_browser_library_on_another_origin_sends_only_to_loopback(cdp_server, source, page):
    with serve_page(shop_page(source, cdp_server)) as page_url:
        run = send_with_browser(cdp_server, source, page, page_url)

    assert run.blocked_urls == []
    assert {urlsplit(url).hostname for url in run.requested_urls} == {"127.0.0.1"}
    server_port = urlsplit(cdp_server.url).port
    page_port = urlsplit(page_url).port
    assert page_port != server_port
    assert {urlsplit(url).port for url in run.requested_urls} == {server_port, page_port}
    requested_paths = {urlsplit(url).path for url in run.requested_urls}
    assert f"/analytics.js/v1/{source.write_key}/analytics.min.js" in requested_paths
    assert f"/v1/projects/{source.write_key}/settings" in requested_paths


@pytest.mark.browser
def test_browser_library_events_sent_again_store_nothing_new(cdp_server, source, alice, celery_worker, page):
    worker = start_worker(celery_worker)
    with serve_page(shop_page(source, cdp_server)) as page_url:
        run = send_with_browser(cdp_server, source, page, page_url)
        wait_for_worker(worker, source, len(run.sent.requests))

        # Sent again from the page itself, cross-origin, with the headers the library used.
        replay = [{"url": r.url, "body": r.body.decode(), "headers": r.headers} for r in run.sent.requests]
        assert page.evaluate(RESEND_FROM_PAGE, replay) == [200] * len(replay)
    wait_for_worker(worker, source, 2 * len(run.sent.requests))

    assert_stored_once(cdp_server, api_token(alice), source, run.sent)
