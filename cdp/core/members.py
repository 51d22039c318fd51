"""People in a workspace: inviting, joining, changing roles, removing — with the guard rails, and an audit
entry for each change, shared by the dashboard and the API so both refuse and record the same things.

Two kinds of refusal: `NotAllowed` when the actor's role does not allow the change (403), `Refused` when
no role could make it (the workspace would be left without an owner).
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from cdp.core import audit
from cdp.core.keys import hash_token
from cdp.core.models import ApiToken, Invitation, Membership, Role, Workspace

log = logging.getLogger("cdp.audit")

MANAGER_ROLES = frozenset({Role.OWNER, Role.ADMIN})


class NotAllowed(Exception):
    """The actor's role does not allow this change."""


class Refused(Exception):
    """No one may make this change: it would leave the workspace without an owner, or the link is spent."""


def roles_grantable_by(role: str) -> list[str]:
    """Owners hand out any role; admins any but owner; others none."""
    if role == Role.OWNER:
        return list(Role.values)
    if role == Role.ADMIN:
        return [Role.ADMIN, Role.MEMBER, Role.READ_ONLY]
    return []


def can_change(actor: Membership, target: Membership) -> bool:
    """Whether the actor may change or remove the target at all (an admin cannot touch an owner)."""
    if actor.role not in MANAGER_ROLES:
        return False
    return actor.role == Role.OWNER or target.role != Role.OWNER


def _other_owners(target: Membership) -> bool:
    others = Membership.objects.select_for_update().filter(workspace_id=target.workspace_id, role=Role.OWNER)
    return others.exclude(pk=target.pk).exists()


def change_role(actor: Membership, target: Membership, role: str, *, via: str) -> bool:
    """Give `target` a new role; False when it already had it. Raises NotAllowed or Refused."""
    if role not in Role.values:
        raise Refused(f"There is no role {role!r}.")
    if not can_change(actor, target) or role not in roles_grantable_by(actor.role):
        raise NotAllowed("Only owners can make someone an owner or change an owner's role.")
    if role == target.role:
        return False
    with transaction.atomic():
        if target.role == Role.OWNER and not _other_owners(target):
            raise Refused(f"{target.user.get_username()} is the only owner; make someone else owner first.")
        before = target.role
        target.role = role
        target.save(update_fields=["role"])
        audit.record(
            actor.user, target.workspace_id, "member.role_changed", target=target,
            target_repr=target.user.get_username(), changes={"role": [before, role]}, via=via,
        )  # fmt: skip
    return True


def remove_member(actor: Membership, target: Membership, *, via: str) -> None:
    """Take `target` out of the workspace; anyone may leave, admins remove others, only owners remove owners."""
    leaving = actor.pk == target.pk
    if not leaving and not can_change(actor, target):
        raise NotAllowed("Only owners and admins can remove members, and only owners can remove an owner.")
    with transaction.atomic():
        if target.role == Role.OWNER and not _other_owners(target):
            raise Refused(f"{target.user.get_username()} is the only owner; make someone else owner first.")
        audit.record(
            actor.user, target.workspace_id, "member.left" if leaving else "member.removed", target=target,
            target_repr=target.user.get_username(), changes={"role": [target.role, None]}, via=via,
        )  # fmt: skip
        target.delete()


def invite(actor: Membership, role: str, email: str = "", *, via: str) -> tuple[Invitation, str]:
    """A new invitation and its secret token (shown once)."""
    if role not in roles_grantable_by(actor.role):
        raise NotAllowed("Only owners and admins can invite people, and only owners can invite an owner.")
    with transaction.atomic():
        invitation, token = Invitation.issue(actor.workspace, role, actor.user, email)
        audit.record(
            actor.user, actor.workspace_id, "member.invited", target=invitation,
            target_repr=email or "invitation link", changes={"role": [None, role]}, via=via,
        )  # fmt: skip
    return invitation, token


def revoke_invitation(actor: Membership, invitation: Invitation, *, via: str) -> None:
    if actor.role not in MANAGER_ROLES or invitation.role not in roles_grantable_by(actor.role):
        raise NotAllowed("Only owners and admins can revoke invitations, and only owners an owner's invitation.")
    if invitation.status != "pending":
        raise Refused(f"This invitation is already {invitation.status}.")
    with transaction.atomic():
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        audit.record(
            actor.user, invitation.workspace_id, "invitation.revoked", target=invitation,
            target_repr=invitation.email or "invitation link", via=via,
        )  # fmt: skip


def invitation_for(token: str) -> Invitation | None:
    return Invitation.objects.select_related("workspace", "invited_by").filter(token_hash=hash_token(token)).first()


def accept(token: str, user: AbstractBaseUser, *, via: str) -> Membership:
    """Join the invitation's workspace. Someone already a member keeps their role and the link stays usable
    for the person it was meant for. Raises Refused for an unknown, used, revoked or expired link."""
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().filter(token_hash=hash_token(token)).first()
        if invitation is None:
            raise Refused("This invitation link is not valid. Ask for a new one.")
        if invitation.status != "pending":
            raise Refused(refusal(invitation))
        existing = Membership.objects.filter(workspace_id=invitation.workspace_id, user=user).first()
        if existing is not None:
            return existing
        membership = Membership.objects.create(workspace_id=invitation.workspace_id, user=user, role=invitation.role)
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        audit.record(
            user, invitation.workspace_id, "member.joined", target=membership, target_repr=user.get_username(),
            changes={"role": [None, invitation.role]}, via=via,
        )  # fmt: skip
    return membership


def refusal(invitation: Invitation) -> str:
    return {
        "accepted": "This invitation was already used. Ask the person who invited you for a new link.",
        "revoked": "This invitation was withdrawn. Ask the person who invited you for a new link.",
        "expired": "This invitation has expired. Ask the person who invited you for a new link.",
    }.get(invitation.status, "")


def rename_workspace(actor: Membership, name: str, *, via: str) -> bool:
    if actor.role not in MANAGER_ROLES:
        raise NotAllowed("Only owners and admins can rename the workspace.")
    workspace = actor.workspace
    if name == workspace.name:
        return False
    with transaction.atomic():
        before = workspace.name
        workspace.name = name
        workspace.save(update_fields=["name"])
        audit.record(
            actor.user, workspace, "workspace.renamed", target=workspace, changes={"name": [before, name]}, via=via
        )
    return True


def delete_workspace(actor: Membership, *, via: str) -> None:
    """Its audit log goes with it (entries belong to the workspace); the server log keeps one line."""
    if actor.role != Role.OWNER:
        raise NotAllowed("Only owners can delete the workspace.")
    workspace: Workspace = actor.workspace
    log.warning(
        "workspace deleted: %s (id %s, slug %s) by %s via %s",
        workspace.name, workspace.pk, workspace.slug, actor.user.get_username(), via,
    )  # fmt: skip
    workspace.delete()


def issue_token(user: AbstractBaseUser, name: str, *, via: str) -> tuple[ApiToken, str]:
    """A token acts as its user in every workspace they belong to, so each of those logs gets the entry."""
    with transaction.atomic():
        token, secret = ApiToken.issue(user, name)
        _record_token(user, token, "token.created", via)
    return token, secret


def revoke_token(user: AbstractBaseUser, token: ApiToken, *, via: str) -> bool:
    if token.revoked_at is not None:
        return False
    with transaction.atomic():
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        _record_token(user, token, "token.revoked", via)
    return True


def _record_token(user: AbstractBaseUser, token: ApiToken, action: str, via: str) -> None:
    for workspace_id in Membership.objects.filter(user=user).values_list("workspace_id", flat=True):
        audit.record(user, workspace_id, action, target=token, target_repr=f"{token.name} ({token.prefix}…)", via=via)
