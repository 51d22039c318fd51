"""The audit log: what each change records (dashboard and API), and the log page and API with their filters."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from cdp.core import audit
from cdp.core.models import AuditEntry, Membership, Role, Source

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def text(response) -> str:
    return html.unescape(response.content.decode())


def logged(**filters) -> list[tuple]:
    return list(AuditEntry.objects.filter(**filters).values_list("actor_name", "action", "target_repr", "via"))


# --- What is recorded --------------------------------------------------------------------------------------


def test_audit_dashboard_source_create_and_key_rotation_are_logged(client, alice, alice_workspace):
    client.force_login(alice)
    client.post(reverse("dashboard:source-new", args=["acme"]), {"name": "Shop", "kind": "website"})
    source = Source.objects.get(name="Shop")
    client.post(reverse("dashboard:rotate-key", args=["acme", source.pk]))
    assert logged() == [
        ("alice", "source.key_rotated", "Shop", "dashboard"),
        ("alice", "source.created", "Shop", "dashboard"),
    ]
    assert source.write_key not in str(AuditEntry.objects.values_list("changes", flat=True))


def test_audit_api_source_create_update_and_rotation_are_logged(alice_api, alice_workspace):
    created = alice_api.post("/api/v1/sources/", {"workspace": alice_workspace.pk, "name": "App"}, format="json")
    source_id = created.json()["id"]
    alice_api.patch(f"/api/v1/sources/{source_id}/", {"enabled": False, "name": "App"}, format="json")
    alice_api.post(f"/api/v1/sources/{source_id}/rotate_key/")
    assert logged() == [
        ("alice", "source.key_rotated", "App", "api"),
        ("alice", "source.updated", "App", "api"),
        ("alice", "source.created", "App", "api"),
    ]
    assert AuditEntry.objects.get(action="source.updated").changes == {"enabled": [True, False]}


def test_audit_api_unchanged_update_records_nothing(alice_api, source):
    alice_api.patch(f"/api/v1/sources/{source.pk}/", {"name": source.name}, format="json")
    assert not AuditEntry.objects.exists()


def test_audit_api_workspace_create_and_rename_are_logged(alice_api):
    workspace_id = alice_api.post("/api/v1/workspaces/", {"name": "Initech"}, format="json").json()["id"]
    alice_api.patch(f"/api/v1/workspaces/{workspace_id}/", {"name": "Initrode"}, format="json")
    assert logged(workspace_id=workspace_id) == [
        ("alice", "workspace.updated", "Initrode", "api"),
        ("alice", "workspace.created", "Initech", "api"),
    ]
    assert AuditEntry.objects.get(action="workspace.updated").changes == {"name": ["Initech", "Initrode"]}


def test_audit_token_entries_go_to_every_workspace_of_the_user(client, alice, alice_workspace, make_workspace):
    other = make_workspace("initech", owner=alice)
    client.force_login(alice)
    client.post(reverse("dashboard:token-new"), {"name": "cron"})
    assert set(AuditEntry.objects.filter(action="token.created").values_list("workspace", flat=True)) == {
        alice_workspace.pk,
        other.pk,
    }


# --- The log page ----------------------------------------------------------------------------------------


@pytest.fixture
def history(alice, bob, alice_workspace, source):
    """Entries by alice and bob over three days, in alice's workspace."""
    Membership.objects.create(workspace=alice_workspace, user=bob, role=Role.ADMIN)
    now = timezone.now()
    rows = [
        (alice, "source.created", 3),
        (bob, "source.key_rotated", 2),
        (alice, "destination.updated", 1),
        (bob, "member.invited", 0),
    ]
    for user, action, days_ago in rows:
        entry = audit.record(
            user, alice_workspace, action, target=source, changes={"api_key": ["old", "new"], "name": ["A", "B"]}
        )
        AuditEntry.objects.filter(pk=entry.pk).update(created_at=now - timedelta(days=days_ago))
    return now


def audit_page(client, **query) -> str:
    return text(client.get(reverse("dashboard:audit-log", args=["acme"]), query))


def test_audit_page_shows_who_did_what_with_changes_masked(client, alice, history):
    client.force_login(alice)
    page = audit_page(client)
    for action in ("source.created", "source.key_rotated", "destination.updated", "member.invited"):
        assert action in page
    assert "old" not in page and "••••••" in page
    assert 'A</span> → <span class="after">B' in page
    assert page.index("member.invited") < page.index("source.created"), "newest first"


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ({"actor": "bob"}, ["source.key_rotated", "member.invited"], ["source.created", "destination.updated"]),
        ({"action": "destination.updated"}, ["destination.updated"], ["source.created", "member.invited"]),
        ({"target_type": "source", "actor": "alice"}, ["source.created"], ["member.invited"]),
    ],
)
def test_audit_page_filters(client, alice, history, query, shown, hidden):
    client.force_login(alice)
    rows = audit_page(client, **query).split('data-testid="audit-entries"')[1]
    for action in shown:
        assert action in rows
    for action in hidden:
        assert f'<span class="badge">{action}</span>' not in rows


def test_audit_page_filters_by_date_range(client, alice, history):
    client.force_login(alice)
    day = (history - timedelta(days=2)).date()
    rows = audit_page(client, since=day.isoformat(), until=day.isoformat()).split('data-testid="audit-entries"')[1]
    assert '<span class="badge">source.key_rotated</span>' in rows
    assert rows.count('<span class="badge">') == 1


def test_audit_page_says_what_is_wrong_with_a_filter(client, alice, history):
    client.force_login(alice)
    page = audit_page(client, since="2026-05-02", until="2026-05-01")
    assert "Give a date on or after the “From” date." in page
    page = audit_page(client, since="yesterday")
    assert "Enter a valid date." in page


def test_audit_page_empty_states(client, alice, alice_workspace, history):
    client.force_login(alice)
    assert "No entries match these filters." in audit_page(client, action="source.created", actor="bob")
    AuditEntry.objects.all().delete()
    assert "Nothing recorded yet." in audit_page(client)


def test_audit_page_is_paginated_with_steady_queries(client, alice, alice_workspace, django_assert_max_num_queries):
    AuditEntry.objects.bulk_create(
        [
            AuditEntry(workspace=alice_workspace, actor=alice, actor_name="alice", action=f"thing.done{n % 7}",
                       target_type="source", target_repr=f"Target {n:03}", changes={"n": [n, n + 1]})
            for n in range(130)
        ]
    )  # fmt: skip
    client.force_login(alice)
    with django_assert_max_num_queries(10):
        first = text(client.get(reverse("dashboard:audit-log", args=["acme"])))
    assert first.count("Target ") == 50 and "Page 1 of 3" in first
    last = audit_page(client, page=3)
    assert last.count("Target ") == 30 and "Target 000" in last
    filtered = audit_page(client, target_type="source")
    assert "target_type=source&page=2" in filtered, "the pager keeps the filters"
    assert audit_page(client, action="thing.done1").count("Target ") == 19


def test_audit_log_is_readable_by_read_only_members(client, make_user, alice_workspace, history):
    reader = make_user("reader")
    Membership.objects.create(workspace=alice_workspace, user=reader, role=Role.READ_ONLY)
    client.force_login(reader)
    assert "source.created" in audit_page(client)


# --- API ---------------------------------------------------------------------------------------------------


def test_audit_api_lists_and_filters(alice_api, alice_workspace, history):
    everything = alice_api.get("/api/v1/audit-log/", {"workspace": alice_workspace.pk}).json()["results"]
    assert [row["action"] for row in everything] == [
        "member.invited", "destination.updated", "source.key_rotated", "source.created",
    ]  # fmt: skip
    assert everything[0]["changes"] == {"api_key": "••••••", "name": ["A", "B"]}
    by_bob = alice_api.get("/api/v1/audit-log/", {"actor": "bob"}).json()["results"]
    assert {row["action"] for row in by_bob} == {"member.invited", "source.key_rotated"}
    since = (history - timedelta(days=1, hours=1)).isoformat()
    recent = alice_api.get("/api/v1/audit-log/", {"since": since}).json()["results"]
    assert {row["action"] for row in recent} == {"member.invited", "destination.updated"}
    bad = alice_api.get("/api/v1/audit-log/", {"since": "soon"})
    assert bad.status_code == 400 and bad.json()["fields"]["since"]


def test_audit_api_list_queries_do_not_grow(alice_api, alice, alice_workspace, django_assert_max_num_queries):
    AuditEntry.objects.bulk_create(
        [AuditEntry(workspace=alice_workspace, actor=alice, action="x.y", target_repr=str(n)) for n in range(150)]
    )
    with django_assert_max_num_queries(6):
        response = alice_api.get("/api/v1/audit-log/", {"page_size": 150})
    assert len(response.json()["results"]) == 150
