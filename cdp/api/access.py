"""Workspace scoping and roles: every API view goes through here, so no view can forget them.

Two rules, in this order:
1. Scoping: a viewset's queryset only holds objects of the caller's workspaces, so an object of another
   workspace answers 404 exactly like one that never existed.
2. Roles: an action that changes something names the roles allowed to do it; any other member gets a
   403 that says which role is needed. Reading needs nothing beyond membership.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Model, QuerySet
from rest_framework import viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from cdp.api.schema import ErrorResponsesAutoSchema
from cdp.core.models import Membership, Role, Workspace

EDIT_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER})
ADMIN_ROLES = frozenset({Role.OWNER, Role.ADMIN})


@dataclass(frozen=True)
class Rule:
    """Who may run one action, and what it is called in the refusal ("rotate write keys")."""

    roles: frozenset[str]
    doing: str

    def refusal(self, role: str | None) -> str:
        names = [f"{member.label.lower()}s" for member in Role if member in self.roles]
        allowed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        current = Role(role).label.lower() if role else "none"
        return f"Only {allowed} can {self.doing}; your role in this workspace is {current}."


def role_in(user: AbstractBaseUser, workspace: Workspace | int) -> str | None:
    workspace_id = workspace.pk if isinstance(workspace, Workspace) else workspace
    return Membership.objects.filter(user=user, workspace_id=workspace_id).values_list("role", flat=True).first()


def require_role(user: AbstractBaseUser, workspace: Workspace | int, roles: Collection[str], doing: str) -> None:
    """For checks a `rules` entry cannot express (the workspace is only known after validation)."""
    role = role_in(user, workspace)
    if role not in roles:
        raise PermissionDenied(Rule(frozenset(roles), doing).refusal(role))


class HasWorkspaceRole(BasePermission):
    """Applies the viewset's `rules` (action name → Rule); actions without a rule only need membership."""

    message = "Your role in this workspace does not allow this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        rule = view.rules.get(view.action)
        if rule is None or view.action != "create":
            return True
        # Refuse before validating the body: a read-only user learns about their role, not about fields.
        workspace_id = view.workspace_in_body(request)
        if workspace_id is None:
            return True
        role = role_in(request.user, workspace_id)
        if role is None:
            return True  # not a member: the serializer answers "no such workspace", as for any unknown id
        return self._check(rule, role)

    def has_object_permission(self, request: Request, view: APIView, obj: Model) -> bool:
        rule = view.rules.get(view.action)
        if rule is None:
            return True
        return self._check(rule, role_in(request.user, view.workspace_of(obj)))

    def _check(self, rule: Rule, role: str | None) -> bool:
        if role in rule.roles:
            return True
        self.message = rule.refusal(role)
        return False


class WorkspaceScopedViewSet(viewsets.GenericViewSet):
    """Base for every API viewset: its queryset is cut to the caller's workspaces.

    `workspace_path` is the lookup from the model to its workspace ("" for Workspace itself);
    `rules` maps the actions that change something to the roles allowed to run them.
    """

    workspace_path: str = "workspace"
    rules: Mapping[str, Rule] = {}
    permission_classes = [IsAuthenticated, HasWorkspaceRole]
    schema = ErrorResponsesAutoSchema()

    def scope(self, queryset: QuerySet) -> QuerySet:
        prefix = f"{self.workspace_path}__" if self.workspace_path else ""
        return queryset.filter(**{f"{prefix}memberships__user": self.request.user})

    def get_queryset(self) -> QuerySet:
        return self.scope(super().get_queryset())

    def workspace_of(self, obj: Model) -> int:
        if not self.workspace_path:
            return obj.pk
        *hops, last = self.workspace_path.split("__")
        for hop in hops:
            obj = getattr(obj, hop)
        return getattr(obj, f"{last}_id")

    def workspace_in_body(self, request: Request) -> int | None:
        """The workspace id a create request names, if it names one that could be valid."""
        data = request.data
        value = data.get("workspace") if isinstance(data, Mapping) else None
        if isinstance(value, bool):
            return None
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            return int(value)
        return None
