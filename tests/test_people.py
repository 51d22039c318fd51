"""People and access through the dashboard and the API: members and roles with their guard rails,
invitations (accepted by an existing and a new user; expired, revoked, reused), personal API tokens, and
workspace settings."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from cdp.core.models import ApiToken, AuditEntry, Invitation, Membership, Role, Workspace

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def member_of(make_user, alice_workspace):
    """A new user holding `role` in alice's workspace."""

    def make(role: str, name: str | None = None):
        user = make_user(name or f"{role.replace('_', '-')}-user")
        Membership.objects.create(workspace=alice_workspace, user=user, role=role)
        return user

    return make


def text(response) -> str:
    return html.unescape(response.content.decode())


def role_of(user, workspace) -> str | None:
    return Membership.objects.filter(user=user, workspace=workspace).values_list("role", flat=True).first()


def membership(user, workspace) -> Membership:
    return Membership.objects.get(user=user, workspace=workspace)


def invite(client, slug: str, role: str = "member", email: str = "") -> str:
    """Creates an invitation through the members page; returns the link it shows once."""
    response = client.post(reverse("dashboard:invitation-new", args=[slug]), {"role": role, "email": email})
    assert response.status_code == 302, text(response)
    page = text(client.get(reverse("dashboard:members", args=[slug])))
    found = re.search(r'data-testid="invitation-link">([^<]+)<', page)
    assert found, "the new invitation's link is shown"
    return found.group(1)


def path_of(link: str) -> str:
    return "/" + link.split("/", 3)[3]


# --- Members page ------------------------------------------------------------------------------------------


def test_people_members_page_lists_everyone_with_their_role(client, alice, alice_workspace, member_of):
    member_of(Role.READ_ONLY, "rita")
    member_of(Role.ADMIN, "adam")
    client.force_login(alice)
    page = text(client.get(reverse("dashboard:members", args=["acme"])))
    for name, role in (("alice", "Owner"), ("rita", "Read-only"), ("adam", "Admin")):
        row = re.search(rf'data-member="{name}">(.*?)</tr>', page, re.S).group(1)
        assert role in row
    assert "No pending invitations" in page


def test_people_admin_changes_a_role_and_it_is_logged(client, alice_workspace, member_of):
    admin = member_of(Role.ADMIN)
    rita = member_of(Role.READ_ONLY, "rita")
    client.force_login(admin)
    target = membership(rita, alice_workspace)
    response = client.post(reverse("dashboard:member-role", args=["acme", target.pk]), {"role": "member"}, follow=True)
    assert "rita is now member." in text(response)
    assert role_of(rita, alice_workspace) == Role.MEMBER
    entry = AuditEntry.objects.get(action="member.role_changed")
    assert (entry.actor_name, entry.target_repr, entry.changes) == (
        "admin-user",
        "rita",
        {"role": ["read_only", "member"]},
    )


def test_people_admin_cannot_make_an_owner_or_change_one(client, alice, alice_workspace, member_of):
    admin = member_of(Role.ADMIN)
    rita = member_of(Role.MEMBER, "rita")
    client.force_login(admin)
    promote = client.post(
        reverse("dashboard:member-role", args=["acme", membership(rita, alice_workspace).pk]), {"role": "owner"}
    )
    demote = client.post(
        reverse("dashboard:member-role", args=["acme", membership(alice, alice_workspace).pk]), {"role": "member"}
    )
    remove = client.post(reverse("dashboard:member-remove", args=["acme", membership(alice, alice_workspace).pk]))
    assert (promote.status_code, demote.status_code, remove.status_code) == (403, 403, 403)
    assert "Only owners can make someone an owner" in text(promote)
    assert role_of(rita, alice_workspace) == Role.MEMBER and role_of(alice, alice_workspace) == Role.OWNER
    page = text(client.get(reverse("dashboard:members", args=["acme"])))
    assert '<option value="owner"' not in page
    assert "owners change owners" in page


def test_people_last_owner_cannot_be_demoted_or_removed(client, alice, alice_workspace):
    client.force_login(alice)
    own = membership(alice, alice_workspace)
    response = client.post(reverse("dashboard:member-role", args=["acme", own.pk]), {"role": "admin"}, follow=True)
    assert "alice is the only owner; make someone else owner first." in text(response)
    response = client.post(reverse("dashboard:member-remove", args=["acme", own.pk]), follow=True)
    assert "alice is the only owner" in text(response)
    assert role_of(alice, alice_workspace) == Role.OWNER
    assert not AuditEntry.objects.exists()


def test_people_owner_hands_over_then_steps_down(client, alice, alice_workspace, member_of):
    bea = member_of(Role.ADMIN, "bea")
    client.force_login(alice)
    client.post(reverse("dashboard:member-role", args=["acme", membership(bea, alice_workspace).pk]), {"role": "owner"})
    client.post(
        reverse("dashboard:member-role", args=["acme", membership(alice, alice_workspace).pk]), {"role": "admin"}
    )
    assert (role_of(bea, alice_workspace), role_of(alice, alice_workspace)) == (Role.OWNER, Role.ADMIN)


def test_people_admin_removes_a_member_who_then_loses_access(client, alice_workspace, member_of):
    admin = member_of(Role.ADMIN)
    rita = member_of(Role.MEMBER, "rita")
    client.force_login(admin)
    response = client.post(
        reverse("dashboard:member-remove", args=["acme", membership(rita, alice_workspace).pk]), follow=True
    )
    assert "rita was removed from this workspace." in text(response)
    assert role_of(rita, alice_workspace) is None
    assert AuditEntry.objects.get(action="member.removed").changes == {"role": ["member", None]}
    client.force_login(rita)
    assert client.get(reverse("dashboard:workspace", args=["acme"])).status_code == 404


def test_people_member_can_leave(client, alice_workspace, member_of):
    rita = member_of(Role.READ_ONLY, "rita")
    client.force_login(rita)
    response = client.post(reverse("dashboard:member-remove", args=["acme", membership(rita, alice_workspace).pk]))
    assert response.status_code == 302 and role_of(rita, alice_workspace) is None
    assert AuditEntry.objects.filter(action="member.left", actor_name="rita").exists()


def test_people_members_page_queries_do_not_grow_with_members(
    client, alice, alice_workspace, make_user, django_assert_max_num_queries
):
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"person-{n:03}", email=f"p{n}@example.com") for n in range(120)]
    )
    Membership.objects.bulk_create(
        [Membership(workspace=alice_workspace, user=user, role=Role.MEMBER) for user in users]
    )
    for n in range(30):
        Invitation.issue(alice_workspace, Role.MEMBER, alice, f"invitee{n}@example.com")
    client.force_login(alice)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("dashboard:members", args=["acme"]))
    page = text(response)
    assert page.count("data-member=") == 121
    assert page.count("invitee") == 30


# --- Invitations -----------------------------------------------------------------------------------------


def test_people_invitation_link_is_shown_once_and_invite_is_logged(client, alice):
    Workspace.objects.create(name="Acme", slug="acme")
    Membership.objects.create(workspace=Workspace.objects.get(slug="acme"), user=alice, role=Role.OWNER)
    client.force_login(alice)
    link = invite(client, "acme", "admin", "newbie@example.com")
    assert link.startswith("http://testserver/invite/")
    again = text(client.get(reverse("dashboard:members", args=["acme"])))
    assert path_of(link) not in again and "newbie@example.com" in again
    invitation = Invitation.objects.get()
    assert link.rsplit("/", 2)[-2] not in invitation.token_hash
    entry = AuditEntry.objects.get(action="member.invited")
    assert (entry.target_repr, entry.changes) == ("newbie@example.com", {"role": [None, "admin"]})


def test_people_invite_form_says_what_is_wrong(client, alice, alice_workspace):
    client.force_login(alice)
    response = client.post(reverse("dashboard:invitation-new", args=["acme"]), {"email": "not-an-address"})
    assert response.status_code == 400
    assert "Enter a valid email address." in text(response) and "This field is required." in text(response)
    assert not Invitation.objects.exists()


def test_people_admin_cannot_invite_an_owner(client, alice_workspace, member_of):
    client.force_login(member_of(Role.ADMIN))
    response = client.post(reverse("dashboard:invitation-new", args=["acme"]), {"role": "owner"})
    assert response.status_code == 400
    assert "Select a valid choice." in text(response)
    assert not Invitation.objects.exists()


def test_people_existing_user_accepts_an_invitation(client, alice, alice_workspace, make_user):
    client.force_login(alice)
    link = invite(client, "acme", "read_only")
    bob = make_user("bob")
    client.force_login(bob)
    page = text(client.get(path_of(link)))
    assert "Join Acme" in page and "alice invited you as" in page and "Join as bob" in page
    response = client.post(path_of(link), follow=True)
    assert "Welcome to Acme: you joined as Read-only." in text(response)
    assert role_of(bob, alice_workspace) == Role.READ_ONLY
    entry = AuditEntry.objects.get(action="member.joined")
    assert (entry.actor_name, entry.changes) == ("bob", {"role": [None, "read_only"]})


def test_people_new_person_signs_up_on_the_invitation_page(client, alice, alice_workspace):
    client.force_login(alice)
    link = invite(client, "acme", "member", "carla@example.com")
    client.logout()
    page = text(client.get(path_of(link)))
    assert "Create your account" in page and 'value="carla@example.com"' in page
    bad = client.post(path_of(link), {"username": "carla", "password1": "x", "password2": "y"})
    assert bad.status_code == 400 and "The two password fields didn’t match." in text(bad)
    assert not get_user_model().objects.filter(username="carla").exists()
    password = "a-long-enough-passphrase-7"
    response = client.post(
        path_of(link), {"username": "carla", "email": "carla@example.com", "password1": password, "password2": password}
    )
    assert response.status_code == 302 and response.url == reverse("dashboard:workspace", args=["acme"])
    carla = get_user_model().objects.get(username="carla")
    assert role_of(carla, alice_workspace) == Role.MEMBER
    assert client.get(reverse("dashboard:workspace", args=["acme"])).status_code == 200, "carla is logged in"
    client.logout()
    assert client.login(username="carla", password=password)


def test_people_invitation_cannot_be_used_twice(client, alice, alice_workspace, make_user):
    client.force_login(alice)
    link = invite(client, "acme")
    client.force_login(make_user("first"))
    client.post(path_of(link))
    second = make_user("second")
    client.force_login(second)
    response = client.get(path_of(link))
    assert response.status_code == 410
    assert "This invitation was already used." in text(response)
    assert client.post(path_of(link)).status_code == 410
    assert role_of(second, alice_workspace) is None


def test_people_expired_invitation_is_refused(client, alice, alice_workspace, make_user):
    client.force_login(alice)
    link = invite(client, "acme")
    Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    client.logout()
    response = client.get(path_of(link))
    assert response.status_code == 410 and "This invitation has expired." in text(response)
    signup = {"username": "late", "password1": "a-long-passphrase-9", "password2": "a-long-passphrase-9"}
    assert client.post(path_of(link), signup).status_code == 410
    assert not get_user_model().objects.filter(username="late").exists()


def test_people_revoked_invitation_is_refused_and_logged(client, alice, alice_workspace, make_user):
    client.force_login(alice)
    link = invite(client, "acme")
    invitation = Invitation.objects.get()
    response = client.post(reverse("dashboard:invitation-revoke", args=["acme", invitation.pk]), follow=True)
    assert "The invitation was revoked" in text(response)
    assert "No pending invitations" in text(response)
    client.force_login(make_user("bob"))
    response = client.get(path_of(link))
    assert response.status_code == 410 and "This invitation was withdrawn." in text(response)
    assert AuditEntry.objects.filter(action="invitation.revoked").count() == 1


def test_people_unknown_invitation_link_is_404(client):
    response = client.get(reverse("dashboard:invitation-accept", args=["no-such-token"]))
    assert response.status_code == 404 and "This invitation link is not valid." in text(response)


def test_people_member_already_in_the_workspace_keeps_their_role(client, alice, alice_workspace, member_of):
    client.force_login(alice)
    link = invite(client, "acme", "read_only")
    admin = member_of(Role.ADMIN)
    client.force_login(admin)
    assert "You are already a member of Acme (admin)" in text(client.get(path_of(link)))
    client.post(path_of(link))
    assert role_of(admin, alice_workspace) == Role.ADMIN
    assert Invitation.objects.get().status == "pending"


# --- Workspace settings ---------------------------------------------------------------------------------


def test_people_admin_renames_the_workspace(client, alice_workspace, member_of):
    client.force_login(member_of(Role.ADMIN))
    url = reverse("dashboard:workspace-settings", args=["acme"])
    assert client.post(url, {"name": "  "}).status_code == 400
    response = client.post(url, {"name": "Acme Corp"}, follow=True)
    assert "The workspace is now called “Acme Corp”." in text(response)
    entry = AuditEntry.objects.get(action="workspace.renamed")
    assert entry.changes == {"name": ["Acme", "Acme Corp"]}


def test_people_owner_deletes_the_workspace_after_typing_its_slug(client, alice, alice_workspace, source):
    client.force_login(alice)
    url = reverse("dashboard:workspace-delete", args=["acme"])
    wrong = client.post(url, {"confirm": "Acme"})
    assert wrong.status_code == 400 and "Type acme exactly to delete this workspace." in text(wrong)
    assert Workspace.objects.filter(slug="acme").exists()
    response = client.post(url, {"confirm": "acme"}, follow=True)
    assert "The workspace “Acme” and everything in it were deleted." in text(response)
    assert not Workspace.objects.filter(slug="acme").exists()


# --- Personal API tokens -------------------------------------------------------------------------------


def create_token(client, name: str) -> str:
    client.post(reverse("dashboard:token-new"), {"name": name})
    page = text(client.get(reverse("dashboard:tokens")))
    return re.search(r'data-testid="token-secret">([^<]+)<', page).group(1)


def test_people_token_is_shown_once_and_authenticates_the_api(client, alice, alice_workspace):
    client.force_login(alice)
    assert "You have no API tokens yet" in text(client.get(reverse("dashboard:tokens")))
    secret = create_token(client, "CI deploy")
    page = text(client.get(reverse("dashboard:tokens")))
    assert secret not in page, "shown only once"
    assert "CI deploy" in page and f"{secret[:12]}…" in page and "never" in page
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = api.get("/api/v1/workspaces/")
    assert response.status_code == 200 and response.json()["results"][0]["slug"] == "acme"
    token = ApiToken.objects.get(name="CI deploy")
    assert token.last_used_at is not None
    assert "never" not in text(client.get(reverse("dashboard:tokens"))).split("CI deploy")[1].split("</tr>")[0]
    assert AuditEntry.objects.filter(action="token.created", target_repr=f"CI deploy ({secret[:12]}…)").count() == 1


def test_people_revoked_token_is_refused(client, alice, alice_workspace):
    client.force_login(alice)
    secret = create_token(client, "script")
    token = ApiToken.objects.get(name="script")
    response = client.post(reverse("dashboard:token-revoke", args=[token.pk]), follow=True)
    assert "The token “script” was revoked" in text(response)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = api.get("/api/v1/workspaces/")
    assert response.status_code == 401
    assert response.json()["message"] == "The token is unknown or was revoked."
    assert AuditEntry.objects.filter(action="token.revoked").count() == 1


def test_people_token_name_is_required(client, alice):
    client.force_login(alice)
    response = client.post(reverse("dashboard:token-new"), {"name": ""})
    assert response.status_code == 400 and "This field is required." in text(response)
    assert not ApiToken.objects.exists()


def test_people_tokens_of_someone_else_cannot_be_revoked(client, alice, bob):
    token, _ = ApiToken.issue(alice, "alice's")
    client.force_login(bob)
    assert client.post(reverse("dashboard:token-revoke", args=[token.pk])).status_code == 404
    assert "alice's" not in text(client.get(reverse("dashboard:tokens")))
    token.refresh_from_db()
    assert token.revoked_at is None


def test_people_token_pages_need_a_login(client):
    response = client.get(reverse("dashboard:tokens"))
    assert response.status_code == 302 and response.url.startswith(reverse("dashboard:login"))


# --- API ---------------------------------------------------------------------------------------------------


def test_people_api_lists_members_and_changes_roles(alice_api, alice_workspace, member_of):
    rita = member_of(Role.READ_ONLY, "rita")
    rows = alice_api.get("/api/v1/members/", {"workspace": alice_workspace.pk}).json()["results"]
    assert {(row["username"], row["role"]) for row in rows} == {("alice", "owner"), ("rita", "read_only")}
    target = membership(rita, alice_workspace)
    response = alice_api.patch(f"/api/v1/members/{target.pk}/", {"role": "admin"}, format="json")
    assert response.status_code == 200 and response.json()["role"] == "admin"
    assert AuditEntry.objects.get(action="member.role_changed").via == "api"


def test_people_api_refuses_to_demote_the_last_owner(alice_api, alice, alice_workspace):
    own = membership(alice, alice_workspace)
    response = alice_api.patch(f"/api/v1/members/{own.pk}/", {"role": "member"}, format="json")
    assert response.status_code == 400
    assert response.json()["message"] == "role: alice is the only owner; make someone else owner first."
    assert alice_api.delete(f"/api/v1/members/{own.pk}/").status_code == 400
    assert role_of(alice, alice_workspace) == Role.OWNER


def test_people_api_invitation_answers_its_link_once(alice_api, alice_workspace, client, make_user):
    response = alice_api.post(
        "/api/v1/invitations/", {"workspace": alice_workspace.pk, "role": "member", "email": "x@example.com"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending" and body["invited_by"] == "alice"
    listed = alice_api.get("/api/v1/invitations/").json()["results"]
    assert "link" not in listed[0]
    client.force_login(make_user("xavier"))
    client.post(path_of(body["link"]))
    assert alice_api.get(f"/api/v1/invitations/{body['id']}/").json()["status"] == "accepted"
    assert alice_api.post(f"/api/v1/invitations/{body['id']}/revoke/").status_code == 400


def test_people_api_tokens_create_once_list_and_revoke(alice_api, alice, alice_workspace):
    response = alice_api.post("/api/v1/tokens/", {"name": "reporting"})
    assert response.status_code == 201
    secret, token_id = response.json()["token"], response.json()["id"]
    listed = alice_api.get("/api/v1/tokens/").json()["results"]
    assert {row["name"] for row in listed} == {"default", "reporting"}
    assert all("token" not in row for row in listed)
    fresh = APIClient()
    fresh.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert fresh.get("/api/v1/workspaces/").status_code == 200
    assert alice_api.post(f"/api/v1/tokens/{token_id}/revoke/").json()["revoked_at"] is not None
    assert fresh.get("/api/v1/workspaces/").status_code == 401


def test_people_existing_user_logs_in_from_the_invitation_page_and_comes_back(
    client, alice, alice_workspace, make_user
):
    client.force_login(alice)
    link = invite(client, "acme")
    client.logout()
    make_user("bob")
    page = text(client.get(path_of(link)))
    login_url = re.search(r'href="(/login/\?next=[^"]+)"', page).group(1)
    response = client.post(login_url, {"username": "bob", "password": "pass-for-tests-1", "next": path_of(link)})
    assert response.status_code == 302 and response.url == path_of(link)
    assert "Join as bob" in text(client.get(path_of(link)))
