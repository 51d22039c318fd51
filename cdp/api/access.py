"""Workspace scoping: every queryset of the API goes through here, so no view can forget it."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Model, QuerySet
from rest_framework import viewsets
from rest_framework.exceptions import PermissionDenied

from cdp.core.models import Membership, Role, Workspace

EDIT_ROLES = {Role.OWNER, Role.ADMIN, Role.MEMBER}
ADMIN_ROLES = {Role.OWNER, Role.ADMIN}


def role_in(user: AbstractBaseUser, workspace: Workspace | int) -> str | None:
    workspace_id = workspace.pk if isinstance(workspace, Workspace) else workspace
    return Membership.objects.filter(user=user, workspace_id=workspace_id).values_list("role", flat=True).first()


def require_role(user: AbstractBaseUser, workspace: Workspace | int, roles: set[str], action: str) -> None:
    if role_in(user, workspace) not in roles:
        raise PermissionDenied(f"Your role in this workspace does not allow you to {action}.")


class WorkspaceScopedViewSet(viewsets.GenericViewSet):
    """Base for every API viewset: its queryset is cut to the caller's workspaces.

    `workspace_path` is the lookup from the model to its workspace ("" for Workspace itself).
    Objects of other workspaces are simply not there: they answer 404, never 403.
    """

    workspace_path: str = "workspace"

    def scope(self, queryset: QuerySet) -> QuerySet:
        prefix = f"{self.workspace_path}__" if self.workspace_path else ""
        return queryset.filter(**{f"{prefix}memberships__user": self.request.user})

    def get_queryset(self) -> QuerySet:
        return self.scope(super().get_queryset())

    def workspace_of(self, obj: Model) -> int:
        if not self.workspace_path:
            return obj.pk
        target = obj
        for part in self.workspace_path.split("__"):
            target = getattr(target, part)
        return target.pk
