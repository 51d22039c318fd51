"""S3 archive destination against moto's S3-compatible server, run as a subprocess on loopback.

Sender tests hand items straight to the sender; the end-to-end tests route events through the real
processor and send them with the delivery engine, then read the objects back with boto3."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from django.utils import timezone

from cdp.core.models import Destination, Source
from cdp.delivery.engine import drain
from cdp.delivery.models import Delivery
from cdp.delivery.senders import Item, Result
from cdp.delivery.transport import shared_transport
from cdp.destinations import registry
from cdp.destinations.engine import run
from cdp.destinations.samples import sample_event
from cdp.destinations.services import create_destination
from cdp.destinations.types.s3_archive.client import classify_error, client_for, forget_clients
from cdp.destinations.types.s3_archive.sender import S3ArchiveSender
from cdp.processing.processor import process_pending
from cdp.tracking.models import IntakeRequest
from tests.support.delivery import age, forget_lanes_and_breakers, make_due, track
from tests.support.processes import free_port

KEY_ID, SECRET = "test-key-id", "test-secret"
AT = datetime(2026, 11, 23, tzinfo=UTC)
KEY_NAME = re.compile(r"^\d{8}T\d{12}Z-\d{12}-[0-9a-f]{10}\.ndjson\.gz$")


class MotoServer:
    """`python -m moto.server` on a free loopback port; `env` adds to its environment."""

    def __init__(self, log_path: Path, port: int = 0, **env: str) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"moto server exited early:\n{log_path.read_text(errors='replace')}")
            try:
                requests.get(f"{self.url}/moto-api/", timeout=2)
                return
            except requests.RequestException:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto server did not start in 60s") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    forget_clients()
    yield
    forget_clients()


def s3(endpoint: str) -> Any:
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET, config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    name = f"archive-{uuid.uuid4().hex[:12]}"
    s3(moto.url).create_bucket(Bucket=name)
    return name


def settings_for(endpoint: str, bucket: str, **extra: Any) -> dict[str, Any]:
    return {"bucket": bucket, "endpoint_url": endpoint, "access_key_id": KEY_ID, "secret_access_key": SECRET, **extra}


def destination_for(endpoint: str, bucket: str, **extra: Any) -> Destination:
    """An unsaved destination: the sender only reads its settings and delivery options."""
    return Destination(type="s3_archive", settings=settings_for(endpoint, bucket, **extra), timeout_seconds=3)


def item(delivery_id: int, source_id: int = 1, received_at: datetime = AT) -> Item:
    event = {"type": "track", "event": "Order Completed", "messageId": f"m-{delivery_id}", "n": delivery_id}
    return Item(delivery_id, "archive", {"event": event}, delivery_id, source_id, f"m-{delivery_id}", received_at)


def send(destination: Destination, *items: Item) -> list[Result]:
    return S3ArchiveSender().send(destination, list(items), shared_transport())


def archived(endpoint: str, bucket: str) -> dict[str, list[dict[str, Any]]]:
    """Every object of the bucket: key → its events, after checking it is gzipped NDJSON."""
    client = s3(endpoint)
    objects = {}
    for entry in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        got = client.get_object(Bucket=bucket, Key=entry["Key"])
        assert (got["ContentType"], got["ContentEncoding"]) == ("application/x-ndjson", "gzip")
        text = gzip.decompress(got["Body"].read()).decode()
        assert text.endswith("\n")
        objects[entry["Key"]] = [orjson.loads(line) for line in text.splitlines()]
    return objects


# --- the type --------------------------------------------------------------------------------------


def test_s3_archive_default_subscription_archives_every_type_whole():
    preset = registry.get("s3_archive").presets[0]
    for kind in ("identify", "track", "page", "screen", "group", "alias"):
        event = sample_event(kind)
        outcome = run(preset.trigger, preset.mapping, event)
        assert outcome.matched, kind
        assert outcome.payload == {"event": event}


@pytest.mark.django_db
def test_s3_archive_new_destination_gets_big_batches_with_a_wait(alice_workspace):
    destination = create_destination(alice_workspace, name="Archive", type_key="s3_archive", settings={"bucket": "b"})
    assert (destination.batch_size, destination.batch_wait_seconds) == (1000, 60.0)
    assert destination.settings == {"bucket": "b", "prefix": "cdp", "region": "us-east-1"}


# --- the sender ------------------------------------------------------------------------------------


def test_sender_writes_one_gzipped_ndjson_object_per_source_and_day(moto, bucket):
    day1 = datetime(2026, 11, 22, 23, 59, 59, 500000, tzinfo=UTC)
    day2 = datetime(2026, 11, 23, 0, 0, 1, tzinfo=UTC)
    items = [item(11, 1, day2), item(12, 1, day1), item(13, 2, day1), item(14, 1, day2 + timedelta(seconds=1))]

    results = send(destination_for(moto.url, bucket), *items)

    assert sorted(r.delivery_id for r in results if r.ok) == [11, 12, 13, 14]
    objects = archived(moto.url, bucket)
    folders = {key.rsplit("/", 1)[0]: key.rsplit("/", 1)[1] for key in objects}
    assert set(folders) == {"cdp/1/2026-11-22", "cdp/2/2026-11-22", "cdp/1/2026-11-23"}
    assert all(KEY_NAME.match(name) for name in folders.values())
    assert folders["cdp/1/2026-11-23"].startswith("20261123T000001000000Z-000000000011-")
    by_folder = {key.rsplit("/", 1)[0]: [e["n"] for e in events] for key, events in objects.items()}
    assert by_folder == {"cdp/1/2026-11-22": [12], "cdp/2/2026-11-22": [13], "cdp/1/2026-11-23": [11, 14]}
    assert results[0].request["url"].startswith(f"s3://{bucket}/cdp/")
    assert SECRET not in str([r.request for r in results])


def test_sender_converts_received_time_to_utc_day_and_honours_prefix(moto, bucket):
    evening_in_new_york = datetime(2026, 11, 22, 21, 0, tzinfo=UTC).astimezone(timezone.get_fixed_timezone(-300))
    [result] = send(destination_for(moto.url, bucket, prefix="/raw/events/"), item(5, 7, evening_in_new_york))

    assert result.ok
    [key] = archived(moto.url, bucket)
    assert key.startswith("raw/events/7/2026-11-22/20261122T210000000000Z-")


def test_sender_prefix_slash_writes_at_the_bucket_root(moto, bucket):
    [result] = send(destination_for(moto.url, bucket, prefix="/"), item(9, 3, AT + timedelta(hours=12)))

    assert result.ok
    [key] = archived(moto.url, bucket)
    assert key.startswith("3/2026-11-23/20261123T120000000000Z-000000000009-")


def test_sender_rewrites_the_same_object_when_a_batch_is_retried(moto, bucket):
    first, second = item(21), item(22, received_at=AT + timedelta(hours=1))
    destination = destination_for(moto.url, bucket)

    send(destination, first, second)
    send(destination, second, first)
    send(destination, first)

    assert sorted(len(events) for events in archived(moto.url, bucket).values()) == [1, 2]


def test_sender_missing_bucket_is_a_permanent_configuration_failure(moto):
    [result] = send(destination_for(moto.url, "no-such-bucket"), item(1))

    assert (result.ok, result.retryable, result.error_class) == (False, False, "configuration")
    assert "bucket 'no-such-bucket' does not exist" in result.error
    assert result.response_status == 404


def test_sender_unknown_access_key_is_a_permanent_configuration_failure(tmp_path):
    server = MotoServer(tmp_path / "moto-auth.log", INITIAL_NO_AUTH_ACTION_COUNT="0")  # checks credentials
    try:
        [result] = send(destination_for(server.url, "any"), item(1))
    finally:
        server.stop()
    assert (result.ok, result.retryable, result.error_class) == (False, False, "configuration")
    assert "access key ID is not known" in result.error and "InvalidAccessKeyId" in result.error


def test_sender_unusable_region_is_a_permanent_configuration_failure(moto, bucket):
    [result] = send(destination_for(moto.url, bucket, region="eu west 1"), item(1))

    assert (result.ok, result.retryable, result.error_class) == (False, False, "configuration")
    assert "eu west 1" in result.error


def test_sender_unreachable_endpoint_is_retryable():
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused

    [result] = send(destination_for(endpoint, "archive"), item(1))

    assert (result.ok, result.retryable, result.error_class) == (False, True, "network")
    assert "EndpointConnectionError" in result.error


class _ScriptedS3(BaseHTTPRequestHandler):
    """Answers every request with the S3 error the server was given, and counts them."""

    protocol_version = "HTTP/1.1"
    server: Any

    def do_PUT(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.hits += 1
        status, code = self.server.answer
        body = f"<Error><Code>{code}</Code><Message>scripted</Message></Error>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [(503, "SlowDown", "rate_limited"), (500, "InternalError", "server_error"), (502, "BadGateway", "server_error")],
)
def test_sender_throttling_and_server_errors_are_retryable_after_two_tries(status, code, error_class):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ScriptedS3)
    server.answer, server.hits = (status, code), 0
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        [result] = send(destination_for(f"http://127.0.0.1:{server.server_address[1]}", "archive"), item(1))
    finally:
        server.shutdown()
        server.server_close()
    assert (result.ok, result.retryable, result.error_class, result.response_status) == (
        False, True, error_class, status
    )  # fmt: skip
    assert server.hits == 2  # boto3 tries once more at most; the engine owns retries


def test_classify_error_names_the_setting_to_fix_for_access_denied():
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                          "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")  # fmt: skip
    failure = classify_error(denied, "archive")
    assert (failure.error_class, failure.retryable, failure.status) == ("configuration", False, 403)
    assert "s3:PutObject on 'archive'" in failure.error


def test_client_for_is_created_once_per_connection_settings(moto):
    destination = destination_for(moto.url, "a")
    assert client_for(destination) is client_for(destination_for(moto.url, "a"))
    assert client_for(destination) is client_for(destination_for(moto.url, "other-bucket"))
    destination.timeout_seconds = 7
    assert client_for(destination) is not client_for(destination_for(moto.url, "a"))
    assert client_for(destination).meta.config.read_timeout == 7


# --- end to end: processor → router → delivery engine → S3 ----------------------------------------


def accept(source: Source, received_at: datetime, *messages: dict[str, Any]) -> None:
    """Store the messages as the Tracking API would, received at `received_at`, and process them."""
    body = orjson.dumps({"batch": list(messages)})
    IntakeRequest.objects.create(source=source, received_at=received_at, endpoint="batch", body=body)
    for _ in range(100):
        if not process_pending().requests:
            return
    raise AssertionError("the processor kept finding work")


@pytest.fixture
def archive_destination(moto, bucket, alice_workspace):
    forget_lanes_and_breakers()
    destination = create_destination(
        alice_workspace, name="Archive", type_key="s3_archive", settings=settings_for(moto.url, bucket), enabled=True
    )
    Destination.objects.filter(pk=destination.pk).update(batch_wait_seconds=0)
    destination.refresh_from_db()
    return destination


@pytest.mark.django_db
def test_drain_archives_processed_events_by_source_and_received_day(moto, bucket, archive_destination, source):
    shop = Source.objects.create(workspace=source.workspace, name="Shop", kind="server")
    today = timezone.now()
    yesterday = today - timedelta(days=1)
    accept(source, today, track(), track(), {"type": "identify", "userId": "u-1", "messageId": "id-1"})
    accept(source, yesterday, track())
    accept(shop, today, {"type": "page", "name": "Home", "anonymousId": "a-1", "messageId": "page-1"})

    drained = drain(archive_destination.pk)

    assert (drained.sent, drained.delivered) == (5, 5)
    objects = archived(moto.url, bucket)
    days = {folder: sorted(e["messageId"] for e in events) for folder, events in
            ((key.rsplit("/", 1)[0], events) for key, events in objects.items())}  # fmt: skip
    assert set(days) == {
        f"cdp/{source.pk}/{today:%Y-%m-%d}",
        f"cdp/{source.pk}/{yesterday:%Y-%m-%d}",
        f"cdp/{shop.pk}/{today:%Y-%m-%d}",
    }
    assert days[f"cdp/{shop.pk}/{today:%Y-%m-%d}"] == ["page-1"]
    assert len(days[f"cdp/{source.pk}/{today:%Y-%m-%d}"]) == 3
    events = [event for events in objects.values() for event in events]
    assert all(event["receivedAt"] and event["type"] for event in events)
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}


@pytest.mark.django_db
def test_drain_holds_a_partial_batch_for_the_types_wait(moto, bucket, alice_workspace, source):
    forget_lanes_and_breakers()
    destination = create_destination(
        alice_workspace, name="Archive", type_key="s3_archive", settings=settings_for(moto.url, bucket), enabled=True
    )
    accept(source, timezone.now(), track(), track())

    assert drain(destination.pk).sent == 0
    assert archived(moto.url, bucket) == {}
    age(destination, 61)
    assert drain(destination.pk).delivered == 2
    assert [len(events) for events in archived(moto.url, bucket).values()] == [2]


@pytest.mark.django_db
def test_drain_records_missing_bucket_as_failed_with_the_reason(moto, archive_destination, source):
    Destination.objects.filter(pk=archive_destination.pk).update(settings=settings_for(moto.url, "gone-bucket"))
    accept(source, timezone.now(), track())

    drained = drain(archive_destination.pk)

    assert drained.failed == 1
    [delivery] = Delivery.objects.all()
    assert (delivery.status, delivery.error_class) == ("failed", "configuration")
    assert "does not exist" in delivery.last_error
    attempt = delivery.attempts_made.get()
    assert attempt.request["url"].startswith("s3://gone-bucket/cdp/")
    assert SECRET not in str(attempt.request)


@pytest.mark.django_db
def test_drain_retries_until_the_store_answers(archive_destination, source, tmp_path):
    port = free_port()  # nothing listens here yet
    settings = settings_for(f"http://127.0.0.1:{port}", "late-bucket")
    Destination.objects.filter(pk=archive_destination.pk).update(settings=settings)
    accept(source, timezone.now(), track())

    assert drain(archive_destination.pk).retrying == 1
    [delivery] = Delivery.objects.all()
    assert (delivery.status, delivery.error_class) == ("retrying", "network")
    server = MotoServer(tmp_path / "moto-late.log", port=port)
    try:
        s3(server.url).create_bucket(Bucket="late-bucket")
        make_due(archive_destination)
        assert drain(archive_destination.pk).delivered == 1
        assert [len(events) for events in archived(server.url, "late-bucket").values()] == [1]
    finally:
        server.stop()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
