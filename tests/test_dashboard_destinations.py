"""Destination pages through the Django test client: the catalog, adding a destination from its type's
settings fields, editing (secrets kept and never shown), enable/disable, the connection test against real
loopback servers, delete, roles, audit entries and query counts."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.urls import reverse
from django.utils import timezone

from cdp.core.models import AuditEntry, Destination, Membership, Role, Source
from cdp.delivery.models import Delivery, Status
from cdp.destinations import registry
from cdp.destinations.models import Subscription
from cdp.destinations.services import create_destination
from tests.support.processes import free_port
from tests.support.sink import Reply, Sink
from tests.test_destination_s3 import KEY_ID, MotoServer, s3
from tests.test_destination_s3 import SECRET as S3_SECRET

pytestmark = pytest.mark.django_db

SECRET = "whsec-very-secret-value-123"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice_client(client, alice, alice_workspace):
    client.force_login(alice)
    return client


@pytest.fixture
def client_as(client, make_user, alice_workspace):
    """The test client logged in as a new user holding `role` in alice's workspace."""

    def login(role: str):
        user = make_user(f"user-{role}")
        Membership.objects.create(workspace=alice_workspace, user=user, role=role)
        client.force_login(user)
        return client

    return login


@pytest.fixture
def hook(alice_workspace):
    return create_destination(
        alice_workspace, name="Orders hook", type_key="webhook",
        settings={"url": "http://127.0.0.1:9/hook", "signing_secret": SECRET},
    )  # fmt: skip


def text(response) -> str:
    return html.unescape(response.content.decode())


def url(name: str, destination: Destination | None = None, **kwargs) -> str:
    if destination is not None:
        kwargs = {"slug": destination.workspace.slug, "destination_id": destination.pk, **kwargs}
    return reverse(f"dashboard:{name}", kwargs=kwargs)


def form_data(**overrides) -> dict:
    """What the add/settings form posts for a webhook with its delivery defaults."""
    data = {
        "name": "Order webhook", "setting_url": "https://hooks.example.com/orders", "setting_headers": "{}",
        "setting_signing_secret": "", "max_in_flight": 4, "rate_limit": "", "batch_size": 100,
        "batch_wait_seconds": 0, "timeout_seconds": 10, "retry_hours": 4,
    }  # fmt: skip
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def field_block(page: str, key: str) -> str:
    """The markup of one setting's block on the form: label, input, errors and help."""
    match = re.search(rf'<div class="field[^"]*" data-testid="setting-{key}">(.*?)</div>', page, re.S)
    assert match, f"no field block for {key}"
    return match.group(1)


def audit_entries(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


# --- Catalog -----------------------------------------------------------------------------------------


def test_catalog_shows_every_registered_type_with_its_category_and_an_add_link(alice_client, alice_workspace):
    response = alice_client.get(url("destination-catalog", slug="acme"))
    page = text(response)
    for dtype in registry.all_types():
        assert f'data-testid="catalog-card-{dtype.key}"' in page
        assert dtype.description in page
        assert f'data-category="{dtype.category}"' in page
        assert url("destination-new", slug="acme", type_key=dtype.key) in page
    assert 'id="catalog-search"' in page


def test_catalog_counts_destinations_already_configured(alice_client, hook):
    page = text(alice_client.get(url("destination-catalog", slug="acme")))
    card = page.split('data-testid="catalog-card-webhook"')[1].split("</li>")[0]
    assert "1 in this workspace" in card


# --- Adding ------------------------------------------------------------------------------------------


def test_new_form_is_rendered_from_the_type_settings_fields(alice_client):
    page = text(alice_client.get(url("destination-new", slug="acme", type_key="postgres_warehouse")))
    dtype = registry.get("postgres_warehouse")
    for spec in dtype.settings:
        block = field_block(page, spec.key)
        assert spec.label in block
        if spec.help:
            assert spec.help in block
    assert 'type="password"' in field_block(page, "connection_url")
    assert 'type="password"' in field_block(page, "password")
    sslmode = field_block(page, "sslmode")
    assert "<select" in sslmode and all(f'value="{c}"' in sslmode for c in ("disable", "require", "verify-full"))
    assert 'value="5432"' in field_block(page, "port")  # the field's default
    # Delivery options sit in a closed "Advanced" section, with this type's defaults.
    advanced = page.split('<details class="advanced"')[1].split("</details>")[0]
    assert advanced.startswith(">")  # not open
    assert 'name="batch_wait_seconds" value="300.0"' in advanced and 'name="max_in_flight" value="1"' in advanced


def test_new_form_marks_required_fields(alice_client):
    page = text(alice_client.get(url("destination-new", slug="acme", type_key="webhook")))
    assert "required" in field_block(page, "url")
    assert "required" not in field_block(page, "headers")


def test_new_required_setting_left_empty_is_refused_next_to_that_field(alice_client, alice_workspace):
    response = alice_client.post(url("destination-new", slug="acme", type_key="webhook"), form_data(setting_url=""))
    page = text(response)
    assert response.status_code == 200
    assert "URL is required." in field_block(page, "url")
    assert "is required" not in field_block(page, "headers")
    assert not Destination.objects.exists()


def test_new_bad_url_is_refused_with_the_reason(alice_client):
    response = alice_client.post(
        url("destination-new", slug="acme", type_key="webhook"), form_data(setting_url="ftp://files.example.com/x")
    )
    assert "URL must be an http:// or https:// URL." in field_block(text(response), "url")
    assert not Destination.objects.exists()


def test_new_object_setting_must_be_json_object(alice_client):
    response = alice_client.post(
        url("destination-new", slug="acme", type_key="webhook"), form_data(setting_headers="[1]")
    )
    assert "Extra headers must be a JSON object." in field_block(text(response), "headers")
    response = alice_client.post(
        url("destination-new", slug="acme", type_key="webhook"), form_data(setting_headers="{")
    )
    assert "Enter a valid JSON." in field_block(text(response), "headers")
    assert not Destination.objects.exists()


def test_new_delivery_option_out_of_range_opens_advanced_with_the_error(alice_client):
    response = alice_client.post(url("destination-new", slug="acme", type_key="webhook"), form_data(batch_size=0))
    page = text(response)
    assert '<details class="advanced" open>' in page
    assert "Ensure this value is greater than or equal to 1." in page
    assert not Destination.objects.exists()


def test_new_creates_the_destination_with_its_preset_subscriptions(alice_client, alice, alice_workspace, source):
    other = Source.objects.create(workspace=alice_workspace, name="Backend")
    response = alice_client.post(
        url("destination-new", slug="acme", type_key="webhook"),
        form_data(setting_signing_secret=SECRET, setting_headers='{"X-Team": "growth"}', sources=[source.pk],
                  max_in_flight=8, rate_limit=50),
    )  # fmt: skip
    destination = Destination.objects.get()
    assert response.status_code == 302 and response["Location"] == url("destination", destination)
    assert (destination.name, destination.type, destination.enabled) == ("Order webhook", "webhook", False)
    assert destination.settings == {
        "url": "https://hooks.example.com/orders", "headers": {"X-Team": "growth"}, "signing_secret": SECRET,
        "batch": False,
    }  # fmt: skip
    assert (destination.max_in_flight, destination.rate_limit) == (8, 50)
    assert list(destination.sources.all()) == [source] and other not in destination.sources.all()
    presets = registry.get("webhook").presets
    subscriptions = list(Subscription.objects.filter(destination=destination))
    assert [(s.name, s.action, s.trigger, s.mapping) for s in subscriptions] == [
        (p.name, p.action, p.trigger, p.mapping) for p in presets
    ]
    assert subscriptions[0].versions.get().created_by == alice
    page = text(alice_client.get(response["Location"]))
    assert "was added with 1 subscription" in page and "test the connection, then enable it" in page

    [entry] = audit_entries("destination.created")
    assert (entry.actor, entry.via, entry.target_id) == (alice, "dashboard", str(destination.pk))
    assert entry.changes["name"] == [None, "Order webhook"]
    assert entry.changes["sources"] == [None, ["Website"]]
    assert entry.changes["settings"][1]["signing_secret"] != SECRET
    assert SECRET not in str(entry.changes)


def test_new_with_an_unknown_type_is_404(alice_client):
    assert alice_client.get(url("destination-new", slug="acme", type_key="no_such_type")).status_code == 404


def test_new_offers_only_sources_of_this_workspace(alice_client, source, bob_workspace):
    theirs = Source.objects.create(workspace=bob_workspace, name="Bob's secret site")
    page = text(alice_client.get(url("destination-new", slug="acme", type_key="webhook")))
    assert "Website" in page and "Bob's secret site" not in page
    response = alice_client.post(
        url("destination-new", slug="acme", type_key="webhook"), form_data(sources=[theirs.pk])
    )
    assert response.status_code == 200 and "Select a valid choice" in text(response)
    assert not Destination.objects.exists()


# --- Editing -----------------------------------------------------------------------------------------


def test_edit_form_never_renders_a_secret_and_says_it_is_set(alice_client, hook):
    page = text(alice_client.get(url("destination", hook)))
    assert SECRET not in page
    block = field_block(page, "signing_secret")
    assert 'type="password"' in block and "Set — leave empty to keep it" in block
    assert 'value="http://127.0.0.1:9/hook"' in field_block(page, "url")


def test_edit_keeps_a_secret_left_empty(alice_client, hook):
    response = alice_client.post(url("destination", hook), form_data(name="Renamed", setting_signing_secret=""))
    assert response.status_code == 302
    hook.refresh_from_db()
    assert hook.name == "Renamed"
    assert hook.settings["signing_secret"] == SECRET
    assert hook.settings["url"] == "https://hooks.example.com/orders"


def test_edit_with_an_error_does_not_echo_the_new_secret(alice_client, hook):
    response = alice_client.post(
        url("destination", hook), form_data(setting_url="", setting_signing_secret="typed-new-secret-999")
    )
    page = text(response)
    assert "URL is required." in field_block(page, "url")
    assert "typed-new-secret-999" not in page and SECRET not in page
    hook.refresh_from_db()
    assert hook.settings["signing_secret"] == SECRET


def test_edit_can_replace_and_remove_a_secret(alice_client, hook):
    alice_client.post(url("destination", hook), form_data(setting_signing_secret="rotated-secret-456"))
    hook.refresh_from_db()
    assert hook.settings["signing_secret"] == "rotated-secret-456"
    alice_client.post(url("destination", hook), form_data(clear_signing_secret="on"))
    hook.refresh_from_db()
    assert "signing_secret" not in hook.settings
    assert "clear_signing_secret" not in text(alice_client.get(url("destination", hook)))


def test_edit_is_audited_with_secrets_masked(alice_client, alice, hook, source):
    alice_client.post(
        url("destination", hook),
        form_data(setting_signing_secret="rotated-secret-456", sources=[source.pk], retry_hours=12),
    )
    [entry] = audit_entries("destination.updated")
    assert (entry.actor, entry.via, entry.target_id) == (alice, "dashboard", str(hook.pk))
    assert entry.changes["name"] == ["Orders hook", "Order webhook"]
    assert entry.changes["retry_hours"] == [4.0, 12.0]
    assert entry.changes["sources"] == [[], ["Website"]]
    assert SECRET not in str(entry.changes) and "rotated-secret-456" not in str(entry.changes)


def test_edit_masks_a_warehouse_connection_url_in_the_audit_log(alice_client, alice_workspace):
    warehouse = create_destination(
        alice_workspace, name="Warehouse", type_key="postgres_warehouse",
        settings={"connection_url": "postgresql://loader:pw-one@db/wh"},
    )  # fmt: skip
    data = {
        "name": "Warehouse", "setting_connection_url": "postgresql://loader:pw-two@db/wh", "setting_port": 5432,
        "setting_sslmode": "prefer", "setting_schema_prefix": "cdp", "max_in_flight": 1, "batch_size": 1000,
        "batch_wait_seconds": 300, "timeout_seconds": 60, "retry_hours": 4,
    }  # fmt: skip
    response = alice_client.post(url("destination", warehouse), data)
    assert response.status_code == 302
    warehouse.refresh_from_db()
    assert warehouse.settings["connection_url"] == "postgresql://loader:pw-two@db/wh"
    [entry] = audit_entries("destination.updated")
    assert "pw-one" not in str(entry.changes) and "pw-two" not in str(entry.changes)
    before, after = entry.changes["settings"]
    assert before["connection_url"] != after["connection_url"]  # the change still shows


def test_saving_unchanged_settings_writes_no_audit_entry(alice_client, hook):
    data = form_data(name=hook.name, setting_url=hook.settings["url"])
    assert alice_client.post(url("destination", hook), data).status_code == 302
    assert not AuditEntry.objects.exists()


# --- Enable, disable ---------------------------------------------------------------------------------


def test_enable_then_disable_is_audited(alice_client, alice, hook):
    response = alice_client.post(url("destination-toggle", hook), follow=True)
    hook.refresh_from_db()
    assert hook.enabled
    assert "is enabled: matching events are sent to it from now on" in text(response)
    alice_client.post(url("destination-toggle", hook))
    hook.refresh_from_db()
    assert not hook.enabled
    [enabled] = audit_entries("destination.enabled")
    [disabled] = audit_entries("destination.disabled")
    assert enabled.changes == {"enabled": [False, True]} and disabled.changes == {"enabled": [True, False]}
    assert (enabled.actor, enabled.via) == (alice, "dashboard")


def test_enable_is_refused_while_a_required_setting_is_missing(alice_client, alice_workspace):
    broken = Destination.objects.create(workspace=alice_workspace, name="Half done", type="webhook", settings={})
    response = alice_client.post(url("destination-toggle", broken), follow=True)
    broken.refresh_from_db()
    assert not broken.enabled
    assert "Not enabled: fix the settings first (URL is required)" in text(response)
    assert not AuditEntry.objects.exists()


def test_toggle_needs_post(alice_client, hook):
    assert alice_client.get(url("destination-toggle", hook)).status_code == 405


# --- Connection test ---------------------------------------------------------------------------------


def set_url(destination: Destination, value: str) -> None:
    destination.settings = {**destination.settings, "url": value}
    destination.timeout_seconds = 3
    destination.save()


def test_connection_test_reaches_a_webhook_and_shows_success(alice_client, hook):
    with Sink() as sink:
        set_url(hook, sink.url)
        response = alice_client.post(url("destination-test", hook))
        [received] = sink.requests
    assert response.status_code == 302 and response["Location"] == url("destination", hook) + "#connection"
    page = text(alice_client.get(response["Location"]))
    assert "Connection works" in page and f"{sink.url} answered HTTP 200." in page
    body = received.json()
    assert (body["type"], body["event"], body["properties"]) == (
        "track",
        "CDP Connection Test",
        {"cdp_connection_test": True},
    )
    assert received.headers["x-cdp-signature"].startswith("t=")  # signed like a delivery
    # Still shown on reload, without another request; saving other settings makes it stale, so it goes.
    assert "Connection works" in text(alice_client.get(url("destination", hook))) and sink.count() == 1
    alice_client.post(url("destination", hook), form_data(setting_url=sink.url, name="Renamed"))
    assert "Connection works" not in text(alice_client.get(url("destination", hook)))


def test_connection_test_shows_a_server_error_with_its_reason(alice_client, hook):
    with Sink(default=Reply(503, body=b"maintenance until 10:00")) as sink:
        set_url(hook, sink.url)
        page = text(alice_client.post(url("destination-test", hook), follow=True))
    assert "Connection failed" in page
    assert "Server error (5xx): HTTP 503 — it said: maintenance until 10:00." in page
    assert "Deliveries would be retried" in page


def test_connection_test_shows_a_client_error_as_permanent(alice_client, hook):
    with Sink(default=Reply(401, body=b'{"error": "bad token"}')) as sink:
        set_url(hook, sink.url)
        page = text(alice_client.post(url("destination-test", hook), follow=True))
    assert "Client error (4xx): HTTP 401" in page and "bad token" in page
    assert "Deliveries would fail without retries" in page


def test_connection_test_shows_an_unreachable_endpoint(alice_client, hook):
    set_url(hook, f"http://127.0.0.1:{free_port()}/hook")
    page = text(alice_client.post(url("destination-test", hook), follow=True))
    assert "Connection failed" in page and "Network error: could not connect" in page and "Connection refused" in page


def test_connection_test_changes_nothing(alice_client, hook):
    with Sink() as sink:
        set_url(hook, sink.url)
        before = Destination.objects.values().get(pk=hook.pk)
        alice_client.post(url("destination-test", hook))
    assert Destination.objects.values().get(pk=hook.pk) == before
    assert not Delivery.objects.exists() and not AuditEntry.objects.exists()


@pytest.fixture
def warehouse_db():
    name = f"wh_dest_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{PG_SERVER}/{name}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_connection_test_of_a_warehouse_checks_the_user_may_create_schemas(alice_client, alice_workspace, warehouse_db):
    warehouse = create_destination(
        alice_workspace, name="Warehouse", type_key="postgres_warehouse", settings={"connection_url": warehouse_db}
    )
    page = text(alice_client.post(url("destination-test", warehouse), follow=True))
    assert "Connection works" in page and "as postgres" in page and "it can create the sources' schemas" in page

    role = f"wh_reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(warehouse_db, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        warehouse.settings = {"connection_url": warehouse_db.replace("://postgres@", f"://{role}@")}
        warehouse.save()
        page = text(alice_client.post(url("destination-test", warehouse), follow=True))
    finally:
        with psycopg.connect(warehouse_db, autocommit=True) as conn:
            conn.execute(f'DROP ROLE "{role}"')
    assert "Connection failed" in page and f"{role} cannot create schemas: grant CREATE on database" in page


def test_connection_test_of_a_warehouse_names_a_missing_database(alice_client, alice_workspace):
    warehouse = create_destination(
        alice_workspace, name="Warehouse", type_key="postgres_warehouse",
        settings={"connection_url": f"{PG_SERVER}/no_such_db_{uuid.uuid4().hex[:6]}"},
    )  # fmt: skip
    page = text(alice_client.post(url("destination-test", warehouse), follow=True))
    assert "Connection failed" in page and "does not exist" in page


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


def test_connection_test_of_an_s3_archive_writes_a_test_object(alice_client, alice_workspace, moto):
    bucket = f"archive-{uuid.uuid4().hex[:12]}"
    s3(moto.url).create_bucket(Bucket=bucket)
    settings = {"bucket": bucket, "prefix": "events", "endpoint_url": moto.url, "access_key_id": KEY_ID,
                "secret_access_key": S3_SECRET}  # fmt: skip
    archive = create_destination(alice_workspace, name="Archive", type_key="s3_archive", settings=settings)
    page = text(alice_client.post(url("destination-test", archive), follow=True))
    assert "Connection works" in page and f"Wrote s3://{bucket}/events/_cdp-connection-test.txt." in page
    [stored] = s3(moto.url).list_objects_v2(Bucket=bucket)["Contents"]
    assert stored["Key"] == "events/_cdp-connection-test.txt"

    archive.settings = {**settings, "bucket": f"missing-{uuid.uuid4().hex[:8]}"}
    archive.save()
    page = text(alice_client.post(url("destination-test", archive), follow=True))
    assert "Connection failed" in page and "does not exist: create it or correct the bucket setting" in page


# --- Delete ------------------------------------------------------------------------------------------


def test_admin_deletes_a_destination_with_confirmation_and_audit(client_as, hook):
    client = client_as(Role.ADMIN)
    page = text(client.get(url("destination", hook)))
    assert 'data-testid="delete-destination"' in page and "data-confirm=" in page
    response = client.post(url("destination-delete", hook), follow=True)
    assert response.redirect_chain[-1][0] == url("destinations", slug="acme")
    assert "“Orders hook” was deleted" in text(response)
    assert not Destination.objects.filter(pk=hook.pk).exists()
    [entry] = audit_entries("destination.deleted")
    assert entry.target_repr == "Orders hook (webhook)" and entry.changes["name"] == ["Orders hook", None]
    assert SECRET not in str(entry.changes)


def test_member_cannot_delete(client_as, hook):
    client = client_as(Role.MEMBER)
    assert 'data-testid="delete-destination"' not in text(client.get(url("destination", hook)))
    assert client.post(url("destination-delete", hook)).status_code == 403
    assert Destination.objects.filter(pk=hook.pk).exists()


# --- Read-only ---------------------------------------------------------------------------------------


def test_read_only_sees_destinations_without_any_control(client_as, hook):
    client = client_as(Role.READ_ONLY)
    listing = text(client.get(url("destinations", slug="acme")))
    assert "Orders hook" in listing and 'data-testid="add-destination"' not in listing
    catalog = text(client.get(url("destination-catalog", slug="acme")))
    assert "Webhook" in catalog and url("destination-new", slug="acme", type_key="webhook") not in catalog
    page = text(client.get(url("destination", hook)))
    assert 'data-testid="settings-readonly"' in page and "http://127.0.0.1:9/hook" in page
    for control in ("destination-form", "toggle", "test-connection", "delete-destination"):
        assert f'data-testid="{control}"' not in page
    assert SECRET not in page and "********" in page


@pytest.mark.parametrize(
    ("name", "data"),
    [("destination", form_data(name="Taken over")), ("destination-toggle", {}), ("destination-test", {}),
     ("destination-delete", {})],
)  # fmt: skip
def test_read_only_posts_are_refused_and_change_nothing(client_as, hook, name, data):
    client = client_as(Role.READ_ONLY)
    before = Destination.objects.values().get(pk=hook.pk)
    assert client.post(url(name, hook), data).status_code == 403
    assert Destination.objects.values().get(pk=hook.pk) == before
    assert not AuditEntry.objects.exists()


def test_read_only_cannot_add(client_as):
    client = client_as(Role.READ_ONLY)
    assert client.get(url("destination-new", slug="acme", type_key="webhook")).status_code == 403
    assert client.post(url("destination-new", slug="acme", type_key="webhook"), form_data()).status_code == 403
    assert not Destination.objects.exists()


# --- List --------------------------------------------------------------------------------------------


def test_empty_list_points_to_the_catalog(alice_client):
    page = text(alice_client.get(url("destinations", slug="acme")))
    assert 'data-testid="no-destinations"' in page
    assert url("destination-catalog", slug="acme") in page and "Browse the catalog" in page


def test_list_shows_type_status_sources_and_delivery_health(alice_client, hook, source, alice_workspace):
    quiet = create_destination(alice_workspace, name="Archive", type_key="s3_archive", settings={"bucket": "b"})
    quiet.sources.set([source])
    hook.enabled = True
    hook.save()
    now = timezone.now()
    for status, finished in [(Status.FAILED, now), (Status.DEAD, now), (Status.FAILED, now - timedelta(days=2)),
                             (Status.RETRYING, None), (Status.DELIVERED, now)]:  # fmt: skip
        Delivery.objects.create(
            destination=hook, event_id=1, source_id=source.pk, message_id="m", action="send", payload={},
            status=status, received_at=now, finished_at=finished,
        )  # fmt: skip
    page = text(alice_client.get(url("destinations", slug="acme")))
    rows = page.split('data-testid="destination-row"')[1:]
    archive, orders = rows  # by name
    assert "S3 archive" in archive and "disabled" in archive and "Website" in archive
    assert "Webhook" in orders and "enabled" in orders and "All sources" in orders
    assert "2 failed (24 h)" in orders and "1 retrying" in orders


def test_list_queries_do_not_grow_with_destinations(
    alice_client, alice_workspace, source, django_assert_max_num_queries
):
    for n in range(60):
        destination = Destination.objects.create(
            workspace=alice_workspace, name=f"Hook {n:02}", type="webhook", settings={"url": "https://x.example"}
        )
        destination.sources.set([source])
    with django_assert_max_num_queries(8):
        response = alice_client.get(url("destinations", slug="acme"))
    assert text(response).count('data-testid="destination-row"') == 60


# --- Tabs --------------------------------------------------------------------------------------------


def test_destination_page_has_the_tab_bar_with_settings_current(alice_client, hook):
    page = text(alice_client.get(url("destination", hook)))
    tabs = page.split('<nav class="subtabs"')[1].split("</nav>")[0]
    assert f'<a href="{url("destination", hook)}" aria-current="page">Settings</a>' in tabs
    assert url("destination-debugger", hook) in tabs


# --- API audit ---------------------------------------------------------------------------------------


def test_api_destination_and_subscription_changes_are_audited(alice_api, alice, alice_workspace):
    created = alice_api.post(
        "/api/v1/destinations/",
        {"workspace": alice_workspace.pk, "name": "API hook", "type": "webhook",
         "settings": {"url": "https://a.example/hook", "signing_secret": SECRET}},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    alice_api.patch(f"/api/v1/destinations/{pk}/", {"name": "API hook 2", "settings": {"signing_secret": "new-1"}},
                    format="json")  # fmt: skip
    subscription = Subscription.objects.filter(destination_id=pk).first()
    alice_api.patch(f"/api/v1/subscriptions/{subscription.pk}/", {"trigger": 'type = "track"'}, format="json")
    alice_api.delete(f"/api/v1/subscriptions/{subscription.pk}/")
    alice_api.delete(f"/api/v1/destinations/{pk}/")

    entries = list(AuditEntry.objects.order_by("id"))
    assert [e.action for e in entries] == [
        "destination.created", "destination.updated", "subscription.updated", "subscription.deleted",
        "destination.deleted",
    ]  # fmt: skip
    assert all(e.via == "api" and e.actor == alice and e.workspace == alice_workspace for e in entries)
    assert entries[1].changes["name"] == ["API hook", "API hook 2"]
    assert entries[2].changes["trigger"][1] == 'type = "track"'
    assert SECRET not in str([e.changes for e in entries]) and "new-1" not in str([e.changes for e in entries])
