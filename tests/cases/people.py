"""Isolation and role cases for members, invitations, workspace settings, API tokens and the audit log."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from cdp.core import audit
from cdp.core.models import ApiToken, Invitation, Membership, Role, Source


def objects(source: Source, objects: dict[str, Any]) -> dict[str, Any]:
    """A second member (a plain member), a pending invitation, alice's own API token and an audit entry,
    all of alice's workspace."""
    workspace = source.workspace
    owner = workspace.memberships.get(role=Role.OWNER).user
    carol = get_user_model().objects.create_user("carol-of-acme", "carol@example.com", "pass-for-tests-1")
    member = Membership.objects.create(workspace=workspace, user=carol, role=Role.MEMBER)
    invitation, _ = Invitation.issue(workspace, Role.MEMBER, owner, "dave@example.com")
    token, _ = ApiToken.issue(owner, "alice's script")
    entry = audit.record(owner, workspace, "source.created", target=source, via="dashboard")
    return {"member": member.pk, "invitation": invitation.pk, "token": token.pk, "audit_entry": entry.pk}


DASHBOARD_CASES = [
    ("members", "get", {"slug": "{slug}"}),
    ("member-role", "post", {"slug": "{slug}", "member_id": "{member}"}),
    ("member-role", "post", {"slug": "{bob_slug}", "member_id": "{member}"}),
    ("member-remove", "post", {"slug": "{slug}", "member_id": "{member}"}),
    ("member-remove", "post", {"slug": "{bob_slug}", "member_id": "{member}"}),
    ("invitation-new", "post", {"slug": "{slug}"}),
    ("invitation-revoke", "post", {"slug": "{slug}", "invitation_id": "{invitation}"}),
    ("invitation-revoke", "post", {"slug": "{bob_slug}", "invitation_id": "{invitation}"}),
    ("workspace-settings", "get", {"slug": "{slug}"}),
    ("workspace-settings", "post", {"slug": "{slug}"}),
    ("workspace-delete", "post", {"slug": "{slug}"}),
    ("audit-log", "get", {"slug": "{slug}"}),
]

API_OBJECT_CASES = [
    ("member-detail", "get", "/api/v1/members/{member}/", None),
    ("member-detail", "patch", "/api/v1/members/{member}/", {"role": "read_only"}),
    ("member-detail", "put", "/api/v1/members/{member}/", {"role": "read_only"}),
    ("member-detail", "delete", "/api/v1/members/{member}/", None),
    ("invitation-detail", "get", "/api/v1/invitations/{invitation}/", None),
    ("invitation-revoke", "post", "/api/v1/invitations/{invitation}/revoke/", None),
    ("token-detail", "get", "/api/v1/tokens/{token}/", None),
    ("token-revoke", "post", "/api/v1/tokens/{token}/revoke/", None),
    ("audit-entry-detail", "get", "/api/v1/audit-log/{audit_entry}/", None),
]

API_LIST_CASES = [
    ("member-list", "/api/v1/members/", {}, "member"),
    ("member-list", "/api/v1/members/", {"workspace": "{workspace}"}, "member"),
    ("invitation-list", "/api/v1/invitations/", {"workspace": "{workspace}"}, "invitation"),
    ("token-list", "/api/v1/tokens/", {}, "token"),
    ("audit-entry-list", "/api/v1/audit-log/", {"workspace": "{workspace}"}, "audit_entry"),
]

# (URL name, URL kwargs, POST data, least role allowed); see tests/test_roles.py.
ROLE_CASES = [
    ("member-role", {"slug": "{slug}", "member_id": "{member}"}, {"role": "read_only"}, "admin"),
    ("member-remove", {"slug": "{slug}", "member_id": "{member}"}, {}, "admin"),
    ("invitation-new", {"slug": "{slug}"}, {"email": "erin@example.com", "role": "member"}, "admin"),
    ("invitation-revoke", {"slug": "{slug}", "invitation_id": "{invitation}"}, {}, "admin"),
    ("workspace-settings", {"slug": "{slug}"}, {"name": "Renamed"}, "admin"),
    ("workspace-delete", {"slug": "{slug}"}, {"confirm": "{slug}"}, "owner"),
]

# API calls by a member of the workspace, as (method, URL, JSON body, least role allowed).
API_ROLE_CASES = [
    ("patch", "/api/v1/members/{member}/", {"role": "read_only"}, "admin"),
    ("delete", "/api/v1/members/{member}/", None, "admin"),
    ("post", "/api/v1/invitations/", {"workspace": "{workspace}", "role": "member"}, "admin"),
    ("post", "/api/v1/invitations/{invitation}/revoke/", None, "admin"),
]
