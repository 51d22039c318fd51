"""The management API (/api/v1/): tokens, errors, schema, workspaces, sources and roles (events: test_api_events.py)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from cdp.core.models import ApiToken, Membership, Role, Source, Workspace
from tests.conftest import api_client_for
from tests.support.api import assert_error
from tests.support.data import make_event, make_rejected
from tests.support.processes import ROOT

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def as_role(make_user, alice_workspace):
    """An API client for a new user holding `role` in alice's workspace."""

    def make(role: str) -> APIClient:
        user = make_user(f"user-{role}")
        Membership.objects.create(workspace=alice_workspace, user=user, role=role)
        return api_client_for(user)

    return make


# --- Authentication ------------------------------------------------------------------------------


def test_api_without_token_is_401_and_says_how_to_authenticate(alice):
    response = APIClient().get("/api/v1/workspaces/")
    body = assert_error(response, 401, "not_authenticated")
    assert "Bearer" in body["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_api_unknown_token_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer cdp_not-a-real-token")
    assert_error(client.get("/api/v1/workspaces/"), 401, "authentication_failed")


def test_api_revoked_token_is_401(alice, alice_workspace):
    token, secret = ApiToken.issue(alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/workspaces/").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    body = assert_error(client.get("/api/v1/workspaces/"), 401, "authentication_failed")
    assert "revoked" in body["message"]


def test_api_token_of_deactivated_user_is_401(alice, alice_api):
    alice.is_active = False
    alice.save()
    assert_error(alice_api.get("/api/v1/workspaces/"), 401, "authentication_failed")


def test_api_authorization_header_without_token_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer")
    body = assert_error(client.get("/api/v1/workspaces/"), 401, "authentication_failed")
    assert "Bearer <token>" in body["message"]


def test_api_token_records_when_it_was_last_used(alice):
    token, secret = ApiToken.issue(alice)
    assert token.last_used_at is None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    before = timezone.now()
    client.get("/api/v1/workspaces/")
    token.refresh_from_db()
    assert token.last_used_at >= before

    stale = timezone.now() - timedelta(hours=3)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=stale)
    client.get("/api/v1/workspaces/")
    token.refresh_from_db()
    assert token.last_used_at > stale + timedelta(hours=2)


# --- Errors that are not about a resource ---------------------------------------------------------


def test_api_unknown_endpoint_answers_json_404(alice_api):
    body = assert_error(alice_api.get("/api/v1/nothing-here/"), 404, "not_found")
    assert "/api/v1/schema/" in body["message"]


def test_api_malformed_json_body_is_400(alice_api):
    response = alice_api.post("/api/v1/workspaces/", data="{not json", content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_api_unsupported_method_is_405_json(alice_api, source):
    assert_error(alice_api.delete(f"/api/v1/sources/{source.pk}/"), 405, "method_not_allowed")


def test_api_schema_is_served_as_openapi(alice_api):
    response = alice_api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/v1/workspaces/", "/api/v1/sources/{id}/rotate_key/", "/api/v1/events/"} <= set(paths)
    assert "403" in paths["/api/v1/sources/{id}/rotate_key/"]["post"]["responses"]


@pytest.mark.slow
def test_api_schema_generates_without_warnings_and_validates(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", tmp_path / "s.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "Error" not in result.stderr, result.stderr
    assert "openapi: 3" in (tmp_path / "s.yaml").read_text()


# --- Workspaces ------------------------------------------------------------------------------------


def test_workspaces_list_shows_only_callers_workspaces_with_their_role(
    alice, alice_api, alice_workspace, bob_workspace
):
    other = Workspace.objects.create(name="Initech", slug="initech")
    Membership.objects.create(workspace=other, user=alice, role=Role.READ_ONLY)
    response = alice_api.get("/api/v1/workspaces/")
    assert response.status_code == 200
    rows = {row["slug"]: row["role"] for row in response.json()["results"]}
    assert rows == {"acme": "owner", "initech": "read_only"}
    assert response.json()["count"] == 2


def test_workspaces_create_makes_the_caller_owner(bob, bob_api):
    response = bob_api.post("/api/v1/workspaces/", {"name": "Umbrella Corp"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["slug"], body["role"]) == ("Umbrella Corp", "umbrella-corp", "owner")
    assert Membership.objects.get(workspace_id=body["id"], user=bob).role == Role.OWNER


def test_workspaces_create_with_taken_slug_is_400_naming_the_field(bob_api, alice_workspace):
    response = bob_api.post("/api/v1/workspaces/", {"name": "Another", "slug": "acme"}, format="json")
    body = assert_error(response, 400, "invalid")
    assert "slug" in body["fields"]
    assert body["message"].startswith("slug:")
    assert Workspace.objects.filter(slug="acme").count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": "!!!"}, "name"),
        ({"name": "ok", "slug": "not a slug"}, "slug"),
        ({"name": "x" * 201}, "name"),
    ],
)
def test_workspaces_create_bad_input_is_400_naming_the_field(bob_api, payload, field):
    body = assert_error(bob_api.post("/api/v1/workspaces/", payload, format="json"), 400, "invalid")
    assert field in body["fields"]
    assert not Workspace.objects.exists()


def test_workspaces_retrieve_shows_one_workspace(alice_api, alice_workspace):
    response = alice_api.get(f"/api/v1/workspaces/{alice_workspace.pk}/")
    assert response.status_code == 200
    assert response.json() == {
        "id": alice_workspace.pk,
        "name": "Acme",
        "slug": "acme",
        "created_at": alice_workspace.created_at.isoformat().replace("+00:00", "Z"),
        "role": "owner",
    }


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_workspaces_update_by_owner_or_admin_changes_it(as_role, alice_workspace, role):
    response = as_role(role).patch(f"/api/v1/workspaces/{alice_workspace.pk}/", {"name": "Acme Ltd"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Acme Ltd"
    alice_workspace.refresh_from_db()
    assert alice_workspace.name == "Acme Ltd"


@pytest.mark.parametrize("role", [Role.MEMBER, Role.READ_ONLY])
def test_workspaces_update_by_member_or_read_only_is_403(as_role, alice_workspace, role):
    client = as_role(role)
    response = client.patch(f"/api/v1/workspaces/{alice_workspace.pk}/", {"name": "Hijacked"}, format="json")
    body = assert_error(response, 403, "permission_denied")
    assert "owners and admins" in body["message"]
    alice_workspace.refresh_from_db()
    assert alice_workspace.name == "Acme"


def test_workspaces_update_refusal_comes_before_validation(as_role, alice_workspace):
    response = as_role(Role.READ_ONLY).put(f"/api/v1/workspaces/{alice_workspace.pk}/", {}, format="json")
    assert_error(response, 403, "permission_denied")


# --- Sources ---------------------------------------------------------------------------------------


def test_sources_list_shows_sources_of_all_callers_workspaces(alice, alice_api, source, make_workspace):
    other = make_workspace("initech", owner=alice)
    Source.objects.create(workspace=other, name="Backend")
    response = alice_api.get("/api/v1/sources/")
    assert sorted(row["name"] for row in response.json()["results"]) == ["Backend", "Website"]


def test_sources_list_filters_by_workspace(alice, alice_api, source, make_workspace):
    other = make_workspace("initech", owner=alice)
    Source.objects.create(workspace=other, name="Backend")
    response = alice_api.get("/api/v1/sources/", {"workspace": other.pk})
    assert [row["name"] for row in response.json()["results"]] == ["Backend"]


def test_sources_list_with_non_numeric_workspace_is_400(alice_api):
    body = assert_error(alice_api.get("/api/v1/sources/", {"workspace": "acme"}), 400, "invalid")
    assert "workspace" in body["fields"]


def test_sources_list_pages_by_number(alice_api, alice_workspace):
    Source.objects.bulk_create(Source(workspace=alice_workspace, name=f"S{n:02}", write_key=f"k{n}") for n in range(7))
    first = alice_api.get("/api/v1/sources/", {"page_size": 5}).json()
    second = alice_api.get(first["next"]).json()
    assert first["count"] == 7
    assert len(first["results"]) == 5 and len(second["results"]) == 2
    assert second["next"] is None


def test_sources_retrieve_shows_the_write_key(alice_api, source):
    body = alice_api.get(f"/api/v1/sources/{source.pk}/").json()
    assert (body["name"], body["kind"], body["write_key"], body["workspace"]) == (
        "Website",
        "website",
        source.write_key,
        source.workspace_id,
    )


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.MEMBER])
def test_sources_create_by_editing_roles(as_role, alice_workspace, role):
    payload = {"workspace": alice_workspace.pk, "name": "Backend", "kind": "server"}
    response = as_role(role).post("/api/v1/sources/", payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    created = Source.objects.get(pk=body["id"])
    assert (created.workspace, created.name, created.kind) == (alice_workspace, "Backend", "server")
    assert body["write_key"] == created.write_key and len(created.write_key) == 32


def test_sources_create_by_read_only_is_403(as_role, alice_workspace):
    client = as_role(Role.READ_ONLY)
    response = client.post("/api/v1/sources/", {"workspace": alice_workspace.pk, "name": "Backend"}, format="json")
    body = assert_error(response, 403, "permission_denied")
    assert "read-only" in body["message"]
    assert not Source.objects.exists()


def test_sources_create_by_read_only_is_403_even_with_bad_fields(as_role, alice_workspace):
    client = as_role(Role.READ_ONLY)
    response = client.post("/api/v1/sources/", {"workspace": alice_workspace.pk, "kind": "nope"}, format="json")
    assert_error(response, 403, "permission_denied")


def test_sources_create_with_duplicate_name_is_400(alice_api, source):
    payload = {"workspace": source.workspace_id, "name": "Website"}
    body = assert_error(alice_api.post("/api/v1/sources/", payload, format="json"), 400, "invalid")
    assert "already has a source named 'Website'" in body["fields"]["name"][0]
    assert Source.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"workspace", "name"}),
        ({"name": "Backend", "workspace": "acme"}, {"workspace"}),
        ({"name": "Backend", "workspace": 999999}, {"workspace"}),
        ({"name": "Backend", "kind": "fax"}, {"kind"}),
        ({"name": "Backend", "rate_limit": -1}, {"rate_limit"}),
    ],
)
def test_sources_create_bad_input_is_400_naming_each_field(alice_api, alice_workspace, payload, fields):
    payload = {"workspace": alice_workspace.pk, **payload} if payload else payload
    body = assert_error(alice_api.post("/api/v1/sources/", payload, format="json"), 400, "invalid")
    assert set(body["fields"]) == fields
    assert not Source.objects.exists()


def test_sources_update_changes_name_and_enabled(as_role, source):
    response = as_role(Role.MEMBER).patch(
        f"/api/v1/sources/{source.pk}/", {"name": "Shop", "enabled": False}, format="json"
    )
    assert response.status_code == 200, response.content
    source.refresh_from_db()
    assert (source.name, source.enabled) == ("Shop", False)


def test_sources_update_cannot_move_the_source_or_set_its_key(alice, alice_api, source, make_workspace):
    other = make_workspace("initech", owner=alice)
    old_workspace, old_key = source.workspace_id, source.write_key
    response = alice_api.patch(
        f"/api/v1/sources/{source.pk}/", {"workspace": other.pk, "write_key": "chosen-by-me"}, format="json"
    )
    assert response.status_code == 200
    source.refresh_from_db()
    assert (source.workspace_id, source.write_key) == (old_workspace, old_key)


def test_sources_update_by_read_only_is_403(as_role, source):
    response = as_role(Role.READ_ONLY).patch(f"/api/v1/sources/{source.pk}/", {"enabled": False}, format="json")
    assert_error(response, 403, "permission_denied")
    source.refresh_from_db()
    assert source.enabled


def test_sources_update_to_a_taken_name_is_400(alice_api, source):
    other = Source.objects.create(workspace=source.workspace, name="Backend")
    response = alice_api.patch(f"/api/v1/sources/{other.pk}/", {"name": "Website"}, format="json")
    assert "name" in assert_error(response, 400, "invalid")["fields"]


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_sources_rotate_key_by_owner_or_admin_gives_a_new_key(as_role, source, role):
    old_key = source.write_key
    response = as_role(role).post(f"/api/v1/sources/{source.pk}/rotate_key/")
    assert response.status_code == 200, response.content
    source.refresh_from_db()
    assert source.write_key != old_key
    assert response.json()["write_key"] == source.write_key
    assert response.json()["write_key_rotated_at"] is not None


@pytest.mark.parametrize("role", [Role.MEMBER, Role.READ_ONLY])
def test_sources_rotate_key_by_member_or_read_only_is_403(as_role, source, role):
    old_key = source.write_key
    body = assert_error(as_role(role).post(f"/api/v1/sources/{source.pk}/rotate_key/"), 403, "permission_denied")
    assert "rotate write keys" in body["message"]
    source.refresh_from_db()
    assert source.write_key == old_key


def test_read_only_user_can_read_every_endpoint(as_role, source):
    event = make_event(source)
    rejected = make_rejected(source)
    client = as_role(Role.READ_ONLY)
    for url in [
        "/api/v1/workspaces/",
        f"/api/v1/workspaces/{source.workspace_id}/",
        "/api/v1/sources/",
        f"/api/v1/sources/{source.pk}/",
        "/api/v1/events/",
        f"/api/v1/events/{event.pk}/",
        "/api/v1/rejected-messages/",
        f"/api/v1/rejected-messages/{rejected.pk}/",
    ]:
        assert client.get(url).status_code == 200, url
