"""People and access through the API: members and their roles, invitations, your own API tokens, and the
audit log. The rules are those of the dashboard (cdp.core.members)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from cdp.api.access import ADMIN_ROLES, Rule, WorkspaceScopedViewSet
from cdp.api.pagination import NewestFirstPagination, Pagination
from cdp.api.schema import ErrorResponsesAutoSchema
from cdp.api.serializers import MemberWorkspaceField
from cdp.api.views import id_param, moment_param
from cdp.core import members as people
from cdp.core.models import ApiToken, AuditEntry, Invitation, Membership, Role

_MEMBERS_RULE = Rule(ADMIN_ROLES, "manage members")


def _actor(request: Request, workspace_id: int) -> Membership:
    return Membership.objects.select_related("workspace", "user").get(user=request.user, workspace_id=workspace_id)


def _apply(change: Any) -> Any:
    """Runs a cdp.core.members change, turning its refusals into the API's 403 and 400."""
    try:
        return change()
    except people.NotAllowed as exc:
        raise PermissionDenied(str(exc)) from None
    except people.Refused as exc:
        raise ValidationError({"role": [str(exc)]}) from None


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.CharField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "workspace", "user", "username", "email", "role", "created_at"]
        read_only_fields = ["id", "workspace", "user", "username", "email", "created_at"]


_WORKSPACE_FILTER = OpenApiParameter("workspace", OpenApiTypes.INT, description="Only this workspace.")


@extend_schema_view(list=extend_schema(parameters=[_WORKSPACE_FILTER]))
class MemberViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin,
    WorkspaceScopedViewSet,
):  # fmt: skip
    """Members of your workspaces with their roles. Owners and admins change roles and remove members; only
    owners make owners or change an owner; the last owner stays."""

    queryset = Membership.objects.select_related("user").order_by("id")
    serializer_class = MemberSerializer
    pagination_class = Pagination
    rules = {action: _MEMBERS_RULE for action in ("update", "partial_update", "destroy")}

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        if self.action == "list" and (workspace := id_param(self.request, "workspace")) is not None:
            queryset = queryset.filter(workspace_id=workspace)
        return queryset

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        target = serializer.instance
        role = serializer.validated_data.get("role", target.role)
        _apply(lambda: people.change_role(_actor(self.request, target.workspace_id), target, role, via="api"))

    def perform_destroy(self, instance: Membership) -> None:
        _apply(lambda: people.remove_member(_actor(self.request, instance.workspace_id), instance, via="api"))


class InvitationSerializer(serializers.ModelSerializer):
    workspace = MemberWorkspaceField(help_text="Id of one of your workspaces.")
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)
    status = serializers.CharField(read_only=True, help_text="pending, accepted, revoked or expired.")
    invited_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Invitation
        fields = ["id", "workspace", "email", "role", "status", "invited_by", "created_at", "expires_at"]
        read_only_fields = ["id", "status", "invited_by", "created_at", "expires_at"]


class NewInvitationSerializer(InvitationSerializer):
    link = serializers.CharField(read_only=True, help_text="Send it to the person; shown only in this answer.")

    class Meta(InvitationSerializer.Meta):
        fields = [*InvitationSerializer.Meta.fields, "link"]


@extend_schema_view(list=extend_schema(parameters=[_WORKSPACE_FILTER]))
class InvitationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, WorkspaceScopedViewSet
):
    """Invitation links. Creating one answers its `link` once; whoever opens it joins with the role."""

    queryset = Invitation.objects.select_related("invited_by").order_by("-id")
    serializer_class = InvitationSerializer
    pagination_class = Pagination
    rules = {"create": Rule(ADMIN_ROLES, "invite people"), "revoke": Rule(ADMIN_ROLES, "revoke invitations")}

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        if self.action == "list" and (workspace := id_param(self.request, "workspace")) is not None:
            queryset = queryset.filter(workspace_id=workspace)
        return queryset

    @extend_schema(request=InvitationSerializer, responses={201: NewInvitationSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        actor = _actor(request, data["workspace"].pk)
        invitation, token = _apply(lambda: people.invite(actor, data["role"], data.get("email", ""), via="api"))
        path = reverse("dashboard:invitation-accept", args=[token])
        invitation.link = (
            f"{settings.CDP_PUBLIC_URL}{path}" if settings.CDP_PUBLIC_URL else request.build_absolute_uri(path)
        )
        return Response(NewInvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=InvitationSerializer, operation_id="invitations_revoke")
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """Withdraw a pending invitation: its link stops working."""
        invitation = self.get_object()
        _apply(lambda: people.revoke_invitation(_actor(request, invitation.workspace_id), invitation, via="api"))
        return Response(InvitationSerializer(invitation).data)


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at"]


class NewTokenSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret; shown only in this answer.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]


class TokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your own API tokens (they belong to you, not to a workspace). The secret is answered once, on creation."""

    queryset = ApiToken.objects.order_by("-id")
    serializer_class = TokenSerializer
    pagination_class = Pagination
    permission_classes = [IsAuthenticated]
    schema = ErrorResponsesAutoSchema()

    def get_queryset(self) -> QuerySet:
        return super().get_queryset().filter(user=self.request.user)

    @extend_schema(request=TokenSerializer, responses={201: NewTokenSerializer})
    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, secret = people.issue_token(request.user, serializer.validated_data["name"], via="api")
        token.token = secret
        return Response(NewTokenSerializer(token).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=TokenSerializer, operation_id="tokens_revoke")
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """Revoke the token: requests that use it are refused from now on."""
        token = self.get_object()
        people.revoke_token(request.user, token, via="api")
        return Response(TokenSerializer(token).data)


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = [
            "id", "workspace", "actor", "actor_name", "action", "target_type", "target_id", "target_repr",
            "changes", "via", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


_AUDIT_TEXT_FILTERS = {"actor": "actor_name", "action": "action", "target_type": "target_type"}


@extend_schema_view(
    list=extend_schema(
        parameters=[
            _WORKSPACE_FILTER,
            OpenApiParameter("actor", OpenApiTypes.STR, description="Username of who made the change."),
            OpenApiParameter("action", OpenApiTypes.STR, description='e.g. "source.key_rotated".'),
            OpenApiParameter("target_type", OpenApiTypes.STR, description='e.g. "source", "membership".'),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="At or after this time."),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="Before this time."),
        ]
    )
)
class AuditEntryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Who changed what in your workspaces, newest first; every member may read it."""

    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    pagination_class = NewestFirstPagination

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        if (workspace := id_param(self.request, "workspace")) is not None:
            queryset = queryset.filter(workspace_id=workspace)
        for name, column in _AUDIT_TEXT_FILTERS.items():
            if value := self.request.query_params.get(name):
                queryset = queryset.filter(**{column: value})
        if (since := moment_param(self.request, "since")) is not None:
            queryset = queryset.filter(created_at__gte=since)
        if (until := moment_param(self.request, "until")) is not None:
            queryset = queryset.filter(created_at__lt=until)
        return queryset
