"""Operator commands: create_source, create_api_token, setup_demo."""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from cdp.core.models import ApiToken, Membership, Role, Source, Workspace
from tests.support.processes import ROOT, child_env


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --- create_source ---------------------------------------------------------------------------------


def test_create_source_json_prints_id_and_write_key_and_creates_the_workspace(alice):
    printed = json.loads(run("create_source", "Acme Inc", "Website", "--owner", "alice", "--json"))
    source = Source.objects.get(pk=printed["id"])
    assert printed == {
        "id": source.pk,
        "name": "Website",
        "workspace": "acme-inc",
        "workspace_id": source.workspace_id,
        "write_key": source.write_key,
    }
    assert source.workspace.name == "Acme Inc"
    assert Membership.objects.get(workspace=source.workspace, user=alice).role == Role.OWNER


def test_create_source_adds_to_an_existing_workspace_and_makes_the_user_owner(bob, alice_workspace):
    Membership.objects.create(workspace=alice_workspace, user=bob, role=Role.READ_ONLY)
    printed = json.loads(run("create_source", "acme", "Backend", "--owner", "bob", "--kind", "server", "--json"))
    assert printed["workspace_id"] == alice_workspace.pk
    assert Workspace.objects.count() == 1
    assert Membership.objects.get(workspace=alice_workspace, user=bob).role == Role.OWNER
    assert Source.objects.get(pk=printed["id"]).kind == "server"


def test_create_source_text_output_shows_the_write_key(alice):
    printed = run("create_source", "acme", "Website", "--owner", "alice")
    source = Source.objects.get()
    assert f"Write key: {source.write_key}" in printed
    assert f"id {source.pk}" in printed


def test_create_source_unknown_owner_is_a_clear_error_and_creates_nothing(db):
    with pytest.raises(CommandError, match="No user named 'nobody'; create it first"):
        run("create_source", "acme", "Website", "--owner", "nobody", "--json")
    assert not Workspace.objects.exists() and not Source.objects.exists()


def test_create_source_duplicate_name_is_a_clear_error_and_changes_nothing(bob, source):
    with pytest.raises(CommandError, match="Workspace 'acme' already has a source named 'Website'"):
        run("create_source", "acme", "Website", "--owner", "bob", "--json")
    assert Source.objects.count() == 1
    assert not Membership.objects.filter(user=bob).exists()


@pytest.mark.parametrize(("workspace", "name"), [("!!!", "Website"), ("acme", "  "), ("acme", "x" * 201)])
def test_create_source_unusable_names_are_refused(alice, workspace, name):
    with pytest.raises(CommandError):
        run("create_source", workspace, name, "--owner", "alice")
    assert not Source.objects.exists()


@pytest.mark.slow
def test_create_source_cli_prints_only_json_on_stdout(transactional_db, alice):
    result = subprocess.run(
        [sys.executable, "manage.py", "create_source", "acme", "Website", "--owner", "alice", "--json"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert Source.objects.get(pk=printed["id"]).write_key == printed["write_key"]


@pytest.mark.slow
def test_create_source_cli_error_exits_non_zero_with_the_reason(transactional_db):
    result = subprocess.run(
        [sys.executable, "manage.py", "create_source", "acme", "Website", "--owner", "ghost", "--json"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "No user named 'ghost'" in result.stderr


# --- create_api_token ------------------------------------------------------------------------------


def test_create_api_token_prints_a_token_that_works_against_the_api(alice, alice_workspace):
    token = run("create_api_token", "alice").strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get("/api/v1/workspaces/")
    assert response.status_code == 200
    assert [row["slug"] for row in response.json()["results"]] == ["acme"]
    assert ApiToken.objects.get(user=alice).name == "cli"


def test_create_api_token_stores_only_a_hash(alice):
    token = run("create_api_token", "alice", "--name", "ci").strip()
    stored = ApiToken.objects.get(user=alice)
    assert stored.name == "ci"
    assert token not in (stored.token_hash, stored.prefix)
    assert token.startswith(stored.prefix)


def test_create_api_token_unknown_user_is_a_clear_error(db):
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        run("create_api_token", "ghost")
    assert not ApiToken.objects.exists()


# --- setup_demo ------------------------------------------------------------------------------------


def test_setup_demo_prints_a_login_that_works(db, client):
    printed = run("setup_demo", "--password", "demo-password-1")
    assert "Login:     admin" in printed
    assert "Password:  demo-password-1" in printed
    assert client.login(username="admin", password="demo-password-1")
    source = Source.objects.get(workspace__slug="demo", name="Demo website")
    assert source.write_key in printed


def test_setup_demo_random_password_is_printed_and_works(db, client):
    printed = json.loads(run("setup_demo", "--json"))
    assert len(printed["password"]) >= 12
    assert client.login(username="admin", password=printed["password"])


def test_setup_demo_is_idempotent(db):
    first = json.loads(run("setup_demo", "--json"))
    second = json.loads(run("setup_demo", "--json"))
    assert second["password"] is None  # not reset, not printed again
    assert (second["source_id"], second["write_key"]) == (first["source_id"], first["write_key"])
    assert get_user_model().objects.count() == 1
    assert (Workspace.objects.count(), Source.objects.count(), Membership.objects.count()) == (1, 1, 1)
    assert "unchanged" in run("setup_demo")


def test_setup_demo_makes_the_user_owner_of_the_demo_workspace(db):
    run("setup_demo", "--username", "ops", "--password", "demo-password-1")
    membership = Membership.objects.get(user__username="ops")
    assert (membership.workspace.slug, membership.role) == ("demo", Role.OWNER)
    assert membership.user.is_superuser
