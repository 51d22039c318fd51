"""PostgreSQL warehouse destination against a real PostgreSQL database made for this test run.

Sender tests hand items straight to the sender, each test in its own schema prefix; the end-to-end
tests route events through the real processor and load them with the delivery engine."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from django.utils import timezone

from cdp.core.models import Destination
from cdp.delivery.engine import drain
from cdp.delivery.models import Delivery
from cdp.delivery.senders import Item, Result
from cdp.destinations import registry
from cdp.destinations.engine import run
from cdp.destinations.samples import sample_event
from cdp.destinations.services import create_destination
from cdp.destinations.types.warehouse.dialect import POSTGRES
from cdp.destinations.types.warehouse.naming import event_table, identifier
from cdp.destinations.types.warehouse.sender import WarehouseSender
from tests.support.delivery import age, forget_lanes_and_breakers, ingest, track
from tests.support.processes import free_port

SERVER = os.environ.get("CDP_TEST_WAREHOUSE_SERVER", "postgresql://postgres@127.0.0.1:5432")
KINDS = ("identify", "track", "page", "screen", "group", "alias")


@pytest.fixture(scope="session")
def warehouse_url() -> Iterator[str]:
    """A fresh database for this run, dropped at the end (other runs may share the server)."""
    name = f"wh_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{SERVER}/{name}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


class Warehouse:
    """One test's view of the warehouse: its own schema prefix, so tests never see each other."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"t{uuid.uuid4().hex[:10]}"

    def sql(self, statement: str, *params: Any) -> list[dict[str, Any]]:
        with psycopg.connect(self.url, row_factory=psycopg.rows.dict_row, autocommit=True) as conn:
            cursor = conn.execute(statement, params or None)
            return cursor.fetchall() if cursor.description else []

    def rows(self, source_id: int, table: str) -> list[dict[str, Any]]:
        return self.sql(f'SELECT * FROM "{self.prefix}_{source_id}"."{table}" ORDER BY id')

    def tables(self, source_id: int) -> set[str]:
        found = self.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                         f"{self.prefix}_{source_id}")  # fmt: skip
        return {row["table_name"] for row in found}

    def columns(self, source_id: int, table: str) -> dict[str, str]:
        query = (
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s"
        )
        found = self.sql(query, f"{self.prefix}_{source_id}", table)
        return {row["column_name"]: row["data_type"] for row in found}

    def destination(self, timeout: float = 5, **settings: Any) -> Destination:
        """An unsaved destination: the sender only reads its settings and delivery options."""
        defaults = {"connection_url": self.url, "schema_prefix": self.prefix}
        return Destination(type="postgres_warehouse", settings={**defaults, **settings}, timeout_seconds=timeout)

    def send(self, *events: dict[str, Any], source_id: int = 1, timeout: float = 5, **settings: Any) -> list[Result]:
        items = [Item(n, "load", {"event": e}, n, source_id, str(e.get("messageId")), datetime.now(UTC))
                 for n, e in enumerate(events, start=1)]  # fmt: skip
        results = WarehouseSender().send(self.destination(timeout, **settings), items, None)  # type: ignore[arg-type]
        return sorted(results, key=lambda r: r.delivery_id)


@pytest.fixture
def wh(warehouse_url: str) -> Warehouse:
    return Warehouse(warehouse_url)


def event(kind: str, message_id: str, **fields: Any) -> dict[str, Any]:
    return {**sample_event(kind), "messageId": message_id, **fields}


def identify(message_id: str, timestamp: str, **traits: Any) -> dict[str, Any]:
    return event("identify", message_id, userId="ada", timestamp=timestamp, traits=traits)


# --- the type --------------------------------------------------------------------------------------


def test_warehouse_default_subscription_loads_every_type_whole():
    preset = registry.get("postgres_warehouse").presets[0]
    for kind in KINDS:
        outcome = run(preset.trigger, preset.mapping, sample_event(kind))
        assert outcome.matched and outcome.payload == {"event": sample_event(kind)}, kind


@pytest.mark.django_db
def test_warehouse_new_destination_loads_big_batches_every_five_minutes(alice_workspace):
    destination = create_destination(alice_workspace, name="DWH", type_key="postgres_warehouse", settings={})
    assert (destination.batch_size, destination.batch_wait_seconds, destination.max_in_flight) == (1000, 300.0, 1)
    assert destination.settings == {"port": 5432, "sslmode": "prefer", "schema_prefix": "cdp"}


def test_identifier_makes_safe_snake_case_names():
    assert identifier("Order Completed") == "order_completed"
    assert identifier("orderId") == "order_id" and identifier("HTTPStatus") == "http_status"
    assert identifier("Sign-Up Started!") == "sign_up_started" and identifier("2fa on") == "_2fa_on"
    assert identifier("Café crème") == "cafe_creme"
    assert identifier("注文").startswith("column_")
    long_a, long_b = identifier("x" * 80 + "a"), identifier("x" * 80 + "b")
    assert len(long_a) == 63 and long_a != long_b
    assert event_table("Users") == "track_users" and event_table("Order Completed") == "order_completed"


# --- loading ---------------------------------------------------------------------------------------


def test_sender_loads_every_type_into_its_table(wh):
    results = wh.send(*[event(kind, f"m-{kind}") for kind in KINDS])

    assert [r.ok for r in results] == [True] * 6
    expected = {"identifies", "tracks", "order_completed", "pages", "screens", "groups", "aliases", "users"}
    assert wh.tables(1) == expected
    for kind, table in zip(KINDS, ["identifies", "tracks", "pages", "screens", "groups", "aliases"], strict=True):
        [row] = wh.rows(1, table)
        assert (row["id"], row["user_id"]) == (f"m-{kind}", "user-42")
        assert row["received_at"] == datetime(2026, 11, 23, 10, 0, 0, 100000, tzinfo=UTC)
        assert row["context_page_url"] == "https://shop.example.com/checkout"
    [track_row] = wh.rows(1, "tracks")
    assert (track_row["event"], track_row["event_text"]) == ("order_completed", "Order Completed")
    [order] = wh.rows(1, "order_completed")
    assert (order["order_id"], order["total"], order["currency"]) == ("o-1001", 129.9, "EUR")
    assert order["products"].startswith('[{"product_id":"p-1"')  # arrays are JSON text
    assert wh.rows(1, "pages")[0]["name"] == "Checkout" and wh.rows(1, "pages")[0]["path"] == "/checkout"
    assert wh.rows(1, "groups")[0]["group_id"] == "acme" and wh.rows(1, "groups")[0]["employees"] == 120
    assert wh.rows(1, "aliases")[0]["previous_id"] == "5d1b7a3e-2f4c-4b8e-9a61-0c2f7d9e8b10"
    assert wh.rows(1, "identifies")[0]["first_name"] == "Ada"
    assert "loaded into" in results[1].response_body and wh.prefix + "_1.order_completed" in results[1].response_body


def test_sender_loads_each_source_into_its_own_schema(wh):
    wh.send(event("page", "p-1"), source_id=7)
    wh.send(event("page", "p-2"), source_id=8)

    assert [r["id"] for r in wh.rows(7, "pages")] == ["p-1"]
    assert [r["id"] for r in wh.rows(8, "pages")] == ["p-2"]


def test_sender_flattens_nested_properties_and_infers_column_types(wh):
    properties = {
        "cart": {"itemCount": 3, "coupon": {"code": "X1"}}, "total": 9.5, "paid": True,
        "paidAt": "2026-11-23T09:00:00+01:00", "note": "2026-11-23", "tags": ["a", "b"], "gone": None,
    }  # fmt: skip
    wh.send(event("track", "t-1", event="Checkout Step", properties=properties))

    columns = wh.columns(1, "checkout_step")
    assert {name: columns[name] for name in ("cart_item_count", "cart_coupon_code", "total", "paid", "paid_at",
                                             "note", "tags")} == {
        "cart_item_count": "bigint", "cart_coupon_code": "text", "total": "double precision", "paid": "boolean",
        "paid_at": "timestamp with time zone", "note": "text", "tags": "text",
    }  # fmt: skip
    assert "gone" not in columns
    [row] = wh.rows(1, "checkout_step")
    assert row["paid_at"] == datetime(2026, 11, 23, 8, 0, tzinfo=UTC) and row["tags"] == '["a","b"]'


def test_sender_property_named_like_a_standard_column_is_prefixed(wh):
    wh.send(event("track", "t-1", properties={"id": "p-9", "timestamp": "soon", "context_x": 1}))

    [row] = wh.rows(1, "order_completed")
    assert (row["id"], row["properties_id"], row["properties_timestamp"]) == ("t-1", "p-9", "soon")
    assert row["properties_context_x"] == 1


def test_sender_users_table_keeps_the_latest_traits(wh):
    wh.send(identify("i-2", "2026-11-23T10:00:00Z", plan="pro", seats=5))
    wh.send(identify("i-1", "2026-11-22T10:00:00Z", plan="free", email="ada@old.example"),  # older: fills gaps
            identify("i-3", "2026-11-24T10:00:00Z", plan="team"))  # fmt: skip

    [user] = wh.rows(1, "users")
    assert (user["id"], user["plan"], user["seats"], user["email"]) == ("ada", "team", 5, "ada@old.example")
    assert user["timestamp"] == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert len(wh.rows(1, "identifies")) == 3


def test_sender_new_property_adds_a_column(wh):
    wh.send(event("track", "t-1", properties={"total": 10}))
    assert "coupon" not in wh.columns(1, "order_completed")

    [result] = wh.send(event("track", "t-2", properties={"total": 12, "coupon": "WINTER"}))

    assert result.ok
    assert wh.columns(1, "order_completed")["coupon"] == "text"
    assert [(r["id"], r["coupon"]) for r in wh.rows(1, "order_completed")] == [("t-1", None), ("t-2", "WINTER")]


def test_sender_fraction_widens_a_bigint_column_to_double(wh):
    wh.send(event("track", "t-1", properties={"total": 10}))
    assert wh.columns(1, "order_completed")["total"] == "bigint"

    wh.send(event("track", "t-2", properties={"total": 12.5}))

    assert wh.columns(1, "order_completed")["total"] == "double precision"
    assert [r["total"] for r in wh.rows(1, "order_completed")] == [10.0, 12.5]
    assert "conflicts" not in wh.tables(1)


def test_sender_type_conflict_lands_in_the_conflicts_table(wh):
    wh.send(event("track", "t-1", properties={"total": 10, "paid": True}))

    [result] = wh.send(event("track", "t-2", properties={"total": "ten", "paid": "yes"}))

    assert result.ok and "2 value(s) kept in" in result.response_body
    assert [(r["id"], r["total"], r["paid"]) for r in wh.rows(1, "order_completed")] == [
        ("t-1", 10, True), ("t-2", None, None)
    ]  # fmt: skip
    conflicts = wh.sql(f'SELECT * FROM "{wh.prefix}_1".conflicts ORDER BY column_name')
    assert [(c["message_id"], c["table_name"], c["column_name"], c["value"], c["value_type"], c["expected_type"])
            for c in conflicts] == [
        ("t-2", "order_completed", "paid", "yes", "text", "boolean"),
        ("t-2", "order_completed", "total", "ten", "text", "bigint"),
    ]  # fmt: skip
    assert conflicts[0]["received_at"] == datetime(2026, 11, 23, 10, 0, 0, 100000, tzinfo=UTC)


def test_sender_value_for_a_table_at_its_column_limit_is_kept_as_a_conflict(wh, monkeypatch):
    wh.send(event("screen", "s-1"))
    monkeypatch.setattr(POSTGRES, "max_columns", len(wh.columns(1, "screens")))

    [result] = wh.send(event("screen", "s-2", properties={"items": 3, "brand_new": "x"}))

    assert result.ok and "brand_new" not in wh.columns(1, "screens")
    [conflict] = wh.sql(f'SELECT * FROM "{wh.prefix}_1".conflicts')
    assert (conflict["column_name"], conflict["value"]) == ("brand_new", "x")
    assert conflict["expected_type"].startswith("no column")


def test_sender_same_event_delivered_twice_is_stored_once(wh):
    twice = event("track", "t-2", properties={"total": 3})
    wh.send(event("track", "t-1"), twice, twice)
    results = wh.send(twice, event("identify", "i-1"), event("identify", "i-1"))

    assert all(r.ok for r in results)
    assert "already loaded" in results[0].response_body and "earlier in this batch" in results[2].response_body
    assert [r["id"] for r in wh.rows(1, "order_completed")] == ["t-1", "t-2"]
    assert [r["id"] for r in wh.rows(1, "tracks")] == ["t-1", "t-2"]
    assert [r["id"] for r in wh.rows(1, "identifies")] == ["i-1"]


def test_sender_conflicts_are_not_repeated_when_a_batch_is_retried(wh):
    wh.send(event("page", "p-1", properties={"count": 1}))
    bad = event("page", "p-2", properties={"count": "many"})

    wh.send(bad)
    wh.send(bad)

    assert len(wh.sql(f'SELECT * FROM "{wh.prefix}_1".conflicts')) == 1


# --- failures --------------------------------------------------------------------------------------


def test_sender_event_that_is_not_a_segment_event_fails_alone(wh):
    results = wh.send({"type": "track", "event": "No id"}, {"type": "party", "messageId": "x"},
                      event("page", "p-1", name="Home\x00"), event("page", "p-2"))  # fmt: skip

    assert [(r.ok, r.retryable, r.error_class) for r in results[:3]] == [(False, False, "payload")] * 3
    assert "no messageId" in results[0].error and "'party'" in results[1].error and "NUL" in results[2].error
    assert results[3].ok and [r["id"] for r in wh.rows(1, "pages")] == ["p-2"]


def test_sender_value_a_column_cannot_take_fails_only_its_event(wh):
    wh.send(event("page", "p-1", properties={"code": "ab"}))
    wh.sql(f'ALTER TABLE "{wh.prefix}_1".pages ALTER COLUMN code TYPE varchar(5)')  # an analyst narrowed it

    results = wh.send(event("page", "p-2", properties={"code": "far too long"}), event("page", "p-3"))

    assert (results[0].ok, results[0].retryable, results[0].error_class) == (False, False, "payload")
    assert "too long" in results[0].error
    assert results[1].ok and [r["id"] for r in wh.rows(1, "pages")] == ["p-1", "p-3"]


def test_sender_unreachable_warehouse_is_retryable(wh):
    [result] = wh.send(event("page", "p-1"), connection_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x")

    assert (result.ok, result.retryable, result.error_class) == (False, True, "network")
    assert "Connection refused" in result.error


def test_sender_warehouse_that_never_answers_is_a_retryable_timeout(wh):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/x"
        [result] = wh.send(event("page", "p-1"), timeout=1, connection_url=url)

    assert (result.ok, result.retryable, result.error_class) == (False, True, "timeout")
    assert "could not connect within 2s" in result.error


def test_sender_unknown_database_is_a_permanent_configuration_failure(wh):
    [result] = wh.send(event("page", "p-1"), connection_url=f"{SERVER}/no_such_database_{uuid.uuid4().hex[:6]}")

    assert (result.ok, result.retryable, result.error_class) == (False, False, "configuration")
    assert "does not exist" in result.error


def test_sender_user_without_privileges_is_a_permanent_failure_with_a_hint(wh):
    role = f"wh_reader_{uuid.uuid4().hex[:8]}"
    wh.sql(f'CREATE ROLE "{role}" LOGIN')
    try:
        url = wh.url.replace("://postgres@", f"://{role}@")
        [result] = wh.send(event("page", "p-1"), connection_url=url)
    finally:
        wh.sql(f'DROP ROLE "{role}"')

    assert (result.ok, result.retryable, result.error_class) == (False, False, "configuration")
    assert "permission denied" in result.error and "needs CREATE on the database" in result.error


def test_sender_without_connection_settings_names_what_to_set(wh):
    [result] = wh.send(event("page", "p-1"), connection_url="")

    assert (result.ok, result.error_class) == (False, "configuration")
    assert "connection URL or the host" in result.error


def test_sender_connects_with_host_settings_and_never_records_the_password(wh):
    database = wh.url.rsplit("/", 1)[1]
    settings = {"connection_url": "", "host": "127.0.0.1", "port": 5432, "database": database,
                "user": "postgres", "password": "pw-s3cr3t", "sslmode": "disable"}  # fmt: skip

    [result] = wh.send(event("page", "p-1"), **settings)

    assert result.ok, result.error
    assert result.request["url"] == f"postgresql://postgres@127.0.0.1:5432/{database} schema {wh.prefix}_1"
    assert "pw-s3cr3t" not in str(result.request)


# --- end to end: processor → router → delivery engine → warehouse ---------------------------------


@pytest.fixture
def warehouse_destination(wh, alice_workspace) -> Destination:
    forget_lanes_and_breakers()
    settings = {"connection_url": wh.url, "schema_prefix": wh.prefix}
    return create_destination(
        alice_workspace, name="DWH", type_key="postgres_warehouse", settings=settings, enabled=True
    )  # fmt: skip


@pytest.mark.django_db
def test_drain_loads_processed_events_into_the_warehouse(wh, warehouse_destination, source):
    Destination.objects.filter(pk=warehouse_destination.pk).update(batch_wait_seconds=0)
    ingest(source, track(messageId="o-1", properties={"total": 42.5, "order_id": "a"}),
           {"type": "identify", "userId": "u-1", "messageId": "id-1", "traits": {"plan": "pro"}},
           {"type": "page", "name": "Home", "anonymousId": "a-1", "messageId": "page-1"})  # fmt: skip

    drained = drain(warehouse_destination.pk)

    assert (drained.sent, drained.delivered) == (3, 3)
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}
    [order] = wh.rows(source.pk, "order_completed")
    assert (order["id"], order["total"], order["order_id"]) == ("o-1", 42.5, "a")
    assert order["received_at"] is not None and order["timestamp"] is not None
    assert [(u["id"], u["plan"]) for u in wh.rows(source.pk, "users")] == [("u-1", "pro")]
    assert [p["anonymous_id"] for p in wh.rows(source.pk, "pages")] == ["a-1"]
    attempt = Delivery.objects.get(message_id="o-1").attempts_made.get()
    assert "order_completed" in attempt.response_body


@pytest.mark.django_db
def test_drain_waits_for_the_load_interval_before_a_partial_batch(wh, warehouse_destination, source):
    ingest(source, track(messageId="o-1"), track(messageId="o-2"))

    assert drain(warehouse_destination.pk).sent == 0
    assert wh.tables(source.pk) == set()
    age(warehouse_destination, 301)
    assert drain(warehouse_destination.pk).delivered == 2
    assert [r["id"] for r in wh.rows(source.pk, "tracks")] == ["o-1", "o-2"]


@pytest.mark.django_db
def test_drain_retries_while_the_warehouse_is_down(wh, warehouse_destination, source):
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    Destination.objects.filter(pk=warehouse_destination.pk).update(
        batch_wait_seconds=0, settings={"connection_url": down, "schema_prefix": wh.prefix}
    )
    ingest(source, track(messageId="o-1"))

    assert drain(warehouse_destination.pk).retrying == 1
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.error_class) == ("retrying", "network")
    assert delivery.next_attempt_at > timezone.now()
