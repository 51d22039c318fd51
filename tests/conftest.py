from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from cdp.core.models import ApiToken, Membership, Role, Source, Workspace
from tests.support.delivery import forget_lanes_and_breakers
from tests.support.processes import CeleryWorker, LiveServer
from tests.support.sink import Sink


@pytest.fixture(scope="session", autouse=True)
def _close_recorders(django_db_setup: None) -> Iterator[None]:
    """The delivery engine's recording threads keep database connections; the test database can only be
    dropped once they are closed (this fixture's teardown runs before the database's)."""
    yield
    from cdp.delivery.engine import close_recorders

    close_recorders()


@pytest.fixture(scope="session", autouse=True)
def _clean_test_redis() -> None:
    """Tests use their own Redis database (REDIS_URL in pyproject.toml); start it empty."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture
def make_user(db: None) -> Callable[..., Any]:
    def make(username: str, password: str = "pass-for-tests-1") -> Any:
        return get_user_model().objects.create_user(username, f"{username}@example.com", password)

    return make


@pytest.fixture
def make_workspace(db: None) -> Callable[..., Workspace]:
    def make(slug: str, owner: Any = None, role: str = Role.OWNER) -> Workspace:
        workspace = Workspace.objects.create(name=slug.title(), slug=slug)
        if owner is not None:
            Membership.objects.create(workspace=workspace, user=owner, role=role)
        return workspace

    return make


@pytest.fixture
def alice(make_user: Callable[..., Any]) -> Any:
    return make_user("alice")


@pytest.fixture
def bob(make_user: Callable[..., Any]) -> Any:
    return make_user("bob")


@pytest.fixture
def alice_workspace(make_workspace: Callable[..., Workspace], alice: Any) -> Workspace:
    return make_workspace("acme", owner=alice)


@pytest.fixture
def bob_workspace(make_workspace: Callable[..., Workspace], bob: Any) -> Workspace:
    return make_workspace("globex", owner=bob)


@pytest.fixture
def source(alice_workspace: Workspace) -> Source:
    return Source.objects.create(workspace=alice_workspace, name="Website", kind="website")


def api_client_for(user: Any) -> APIClient:
    _, token = ApiToken.issue(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def alice_api(alice: Any) -> APIClient:
    return api_client_for(alice)


@pytest.fixture
def bob_api(bob: Any) -> APIClient:
    return api_client_for(bob)


@pytest.fixture
def cdp_server(transactional_db: None) -> Iterator[LiveServer]:
    """The real ASGI app under uvicorn, on the test database. Data a test makes must be committed,
    hence transactional_db."""
    server = LiveServer()
    yield server
    server.stop()


@pytest.fixture
def celery_worker(transactional_db: None) -> Iterator[Callable[..., CeleryWorker]]:
    started: list[CeleryWorker] = []

    def start(**kwargs: Any) -> CeleryWorker:
        worker = CeleryWorker(**kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by playwright (never a downloaded browser), one per test module:
    playwright's sync API keeps an event loop running in this thread while it lives, which later
    modules' asyncio code must not meet."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (scripts/test.sh does it as root)")
    # With that loop running, Django would refuse the plain blocking ORM calls tests make between
    # browser steps, which are safe here.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def fresh_lanes() -> None:
    """No lane, breaker or wake-up mark left in Redis by an earlier test (ids repeat between tests on SQLite)."""
    forget_lanes_and_breakers()


@pytest.fixture
def sink() -> Iterator[Sink]:
    """A webhook endpoint on loopback that answers 200 unless scripted otherwise (tests/support/sink.py)."""
    with Sink() as running:
        yield running
