"""Workspace lookups and roles for dashboard views: a workspace the user is not a member of is a 404."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404

from cdp.core.models import Destination, Membership, Role, Source


def membership_for(user: AbstractBaseUser, slug: str) -> Membership:
    membership = Membership.objects.select_related("workspace").filter(user=user, workspace__slug=slug).first()
    if membership is None:
        raise Http404("No such workspace.")
    return membership


def source_for(membership: Membership, source_id: int) -> Source:
    return get_object_or_404(Source, pk=source_id, workspace=membership.workspace)


def destination_for(membership: Membership, destination_id: int) -> Destination:
    return get_object_or_404(Destination, pk=destination_id, workspace=membership.workspace)


def can_edit(membership: Membership) -> bool:
    """Owners, admins and members create and change sources; read-only users only look."""
    return membership.role in (Role.OWNER, Role.ADMIN, Role.MEMBER)


def require_edit(membership: Membership, doing: str) -> None:
    """Refuse read-only members with a 403 that says what they tried (`doing`: "add destinations")."""
    if not can_edit(membership):
        raise PermissionDenied(f"Read-only members cannot {doing}; ask a member, admin or owner of this workspace.")


def can_manage_keys(membership: Membership) -> bool:
    return membership.role in (Role.OWNER, Role.ADMIN)


def can_manage_members(membership: Membership) -> bool:
    """Owners and admins invite people and change roles (only owners touch owners: cdp.core.members)."""
    return membership.role in (Role.OWNER, Role.ADMIN)
