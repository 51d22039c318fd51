"""A destination's delivery pages in headless Chromium against the real server and a real Celery worker: the
metrics and errors, the dead letters, and a re-drive followed live on its job page until it is done.

Screenshots go to var/test/screenshots/ (CDP_SCREENSHOT_DIR=docs/screenshots refreshes the documentation's)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.test import Client as DjangoClient
from django.utils import timezone

from cdp.delivery.engine import drain
from cdp.delivery.models import Delivery, FilteredCount, Job, JobStatus, Status
from tests.support.delivery import ingest, track, webhook
from tests.support.processes import ROOT, LiveServer, child_env
from tests.support.sink import OK, Reply, Sink, messages_in

pytestmark = [pytest.mark.usefixtures("fresh_lanes"), pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = ROOT / os.environ.get("CDP_SCREENSHOT_DIR", "var/test/screenshots")
DEAD_LETTERS = 6


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page, server: LiveServer, user) -> None:
    client = DjangoClient()
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server.url}])


def test_redrive_is_followed_live_on_its_job_page_until_done(cdp_server, celery_worker, page, alice, source):
    with Sink() as sink:
        hook = webhook(source.workspace, sink.url, name="Orders webhook", sources=[source])
        ingest(source, *[track() for _ in range(8)])  # delivered
        drain(hook.pk)
        hook.retry_hours = 0
        hook.save(update_fields=["retry_hours"])
        sink.default = Reply(503, body=b'{"error":"down for maintenance"}')
        ingest(source, *[track(event="Signed Up") for _ in range(DEAD_LETTERS)])
        drain(hook.pk)
        sink.default = OK
        hour = (timezone.now() - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
        FilteredCount.objects.create(destination=hook, hour=hour, reason="no_trigger_matched", count=3)
        assert Delivery.objects.filter(destination=hook, status=Status.DEAD).count() == DEAD_LETTERS
        # A slow rate cap, so the job takes a few seconds and the page shows it moving.
        celery_worker(env=child_env(CDP_SWEEP_SECONDS="1", CDP_REDRIVE_RATE="2"))
        log_in(page, cdp_server, alice)
        base = f"{cdp_server.url}/w/acme/destinations/{hook.pk}/delivery/"

        page.goto(base)
        assert page.get_by_test_id("dead-count").inner_text() == str(DEAD_LETTERS)
        assert page.get_by_test_id("error").count() == DEAD_LETTERS
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(page, "destination-delivery")

        page.goto(f"{base}replay/")
        assert page.get_by_test_id("replay-form").is_visible()
        screenshot(page, "replay")

        page.goto(f"{base}dead-letters/")
        assert page.get_by_test_id("match-count").inner_text() == str(DEAD_LETTERS)
        screenshot(page, "dead-letters")
        page.get_by_test_id("inspect").first.click()
        assert "down for maintenance" in page.get_by_test_id("attempt-response").inner_text()
        screenshot(page, "dead-letter")
        page.go_back()
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_test_id("redrive-all").click()

        page.wait_for_url(f"{cdp_server.url}/w/acme/jobs/*/")
        page.evaluate("window.stillTheSamePage = true")  # gone if the page reloads
        page.wait_for_function(
            "document.querySelector('[data-testid=job-status]').textContent.trim() === 'Running'", timeout=15_000
        )
        page.wait_for_function(
            "document.querySelector('[data-testid=job-status]').textContent.trim() === 'Done'", timeout=30_000
        )
        assert page.evaluate("window.stillTheSamePage") is True
        assert page.get_by_test_id("job-done").inner_text() == str(DEAD_LETTERS)
        assert page.get_by_test_id("job-percent").inner_text() == "100"
        assert (
            page.get_by_test_id("job-results").inner_text().splitlines()[-1]
            == f"Re-driven: pending again\t{DEAD_LETTERS}"
        )
        assert page.get_by_test_id("job-live").is_hidden()
        assert page.get_by_test_id("job-finished").inner_text().endswith("UTC")
        page.wait_for_timeout(500)  # the bar's last stretch is animated
        screenshot(page, "job")

        received = sink.wait_for(
            lambda got: sum(1 for m in messages_in(got) if m.get("event") == "Signed Up") > DEAD_LETTERS
        )
        assert len(received) >= 8 + 2 * DEAD_LETTERS
        assert Job.objects.get().status == JobStatus.DONE
