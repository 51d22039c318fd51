from __future__ import annotations

from datetime import UTC, datetime, time

from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from cdp.api.access import ADMIN_ROLES, EDIT_ROLES, Rule, WorkspaceScopedViewSet
from cdp.api.pagination import NewestFirstPagination
from cdp.api.serializers import (
    EventSerializer,
    RejectedMessageSerializer,
    SourceSerializer,
    SourceUpdateSerializer,
    WorkspaceSerializer,
)
from cdp.core import audit
from cdp.core.models import Membership, Role, Source, Workspace
from cdp.processing.models import Event, EventType, RejectedMessage


def id_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise ValidationError({name: f"Give a {name} id (a number), not {value!r}."})
    return int(value)


def moment_param(request: Request, name: str) -> datetime | None:
    """An ISO-8601 date-time (UTC when it has no offset) or a date (its midnight, UTC)."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        moment = parse_datetime(value)
        if moment is None and (day := parse_date(value)) is not None:
            moment = datetime.combine(day, time.min)
    except ValueError:
        moment = None
    if moment is None:
        raise ValidationError({name: f"Give an ISO-8601 date and time such as 2026-01-31T12:00:00Z, not {value!r}."})
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class WorkspaceViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
    WorkspaceScopedViewSet,
):  # fmt: skip
    """The workspaces you are a member of. Creating one makes you its owner; admins and owners change it."""

    queryset = Workspace.objects.order_by("id")
    serializer_class = WorkspaceSerializer
    workspace_path = ""
    rules = {
        "update": Rule(ADMIN_ROLES, "change the workspace"),
        "partial_update": Rule(ADMIN_ROLES, "change the workspace"),
    }

    def get_queryset(self) -> QuerySet:
        own_role = Membership.objects.filter(workspace=OuterRef("pk"), user=self.request.user).values("role")[:1]
        return super().get_queryset().annotate(role=Subquery(own_role))

    def perform_create(self, serializer: BaseSerializer) -> None:
        with transaction.atomic():
            workspace = serializer.save()
            Membership.objects.create(workspace=workspace, user=self.request.user, role=Role.OWNER)
            audit.record(self.request.user, workspace, "workspace.created", target=workspace, via="api")
        workspace.role = Role.OWNER

    def perform_update(self, serializer: BaseSerializer) -> None:
        before = {name: getattr(serializer.instance, name) for name in serializer.validated_data}
        workspace = serializer.save()
        changes = audit.diff_fields(before, {name: getattr(workspace, name) for name in before})
        if changes:
            audit.record(
                self.request.user, workspace, "workspace.updated", target=workspace, changes=changes, via="api"
            )


_SOURCE_RULE = Rule(EDIT_ROLES, "create or change sources")


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("workspace", OpenApiTypes.INT, description="Only sources of this workspace.")]
    ),
    partial_update=extend_schema(request=SourceUpdateSerializer, responses=SourceSerializer),
    update=extend_schema(request=SourceUpdateSerializer, responses=SourceSerializer),
)
class SourceViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
    WorkspaceScopedViewSet,
):  # fmt: skip
    """Sources send events with their write key. Rotating the key stops the old one within about a second."""

    queryset = Source.objects.order_by("id")
    serializer_class = SourceSerializer
    rules = {
        "create": _SOURCE_RULE,
        "update": _SOURCE_RULE,
        "partial_update": _SOURCE_RULE,
        "rotate_key": Rule(ADMIN_ROLES, "rotate write keys"),
    }

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        if self.action == "list" and (workspace := id_param(self.request, "workspace")) is not None:
            queryset = queryset.filter(workspace_id=workspace)
        return queryset

    def perform_create(self, serializer: BaseSerializer) -> None:
        source = serializer.save()
        audit.record(self.request.user, source.workspace_id, "source.created", target=source, via="api")

    def perform_update(self, serializer: BaseSerializer) -> None:
        before = {name: getattr(serializer.instance, name) for name in serializer.validated_data}
        source = serializer.save()
        changes = audit.diff_fields(before, {name: getattr(source, name) for name in before})
        if changes:
            audit.record(
                self.request.user, source.workspace_id, "source.updated", target=source, changes=changes, via="api"
            )

    def get_serializer_class(self) -> type[BaseSerializer]:
        if self.action in ("update", "partial_update"):
            return SourceUpdateSerializer
        return SourceSerializer

    @extend_schema(request=None, responses=SourceSerializer, operation_id="sources_rotate_key")
    @action(detail=True, methods=["post"])
    def rotate_key(self, request: Request, pk: str | None = None) -> Response:
        """Give the source a new write key (admins and owners). Clients with the old key are refused."""
        source = self.get_object()
        source.rotate_write_key()
        audit.record(request.user, source.workspace_id, "source.key_rotated", target=source, via="api")
        return Response(SourceSerializer(source, context=self.get_serializer_context()).data)


_EVENT_TEXT_FILTERS = ["event", "user_id", "anonymous_id", "message_id"]
_EVENT_TIME_FILTERS = {
    "since": ("timestamp__gte", "Events that happened at or after this time (ISO 8601)."),
    "until": ("timestamp__lt", "Events that happened before this time (ISO 8601)."),
    "received_since": ("received_at__gte", "Events received at or after this time (ISO 8601)."),
}


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("source", OpenApiTypes.INT, description="Only events of this source."),
            OpenApiParameter("type", OpenApiTypes.STR, enum=EventType.values, description="Only this message type."),
            *(OpenApiParameter(name, OpenApiTypes.STR, description="Exact match.") for name in _EVENT_TEXT_FILTERS),
            *(OpenApiParameter(n, OpenApiTypes.DATETIME, description=d) for n, (_, d) in _EVENT_TIME_FILTERS.items()),
        ]
    )
)
class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Stored events, newest first, filtered by any of the query parameters."""

    queryset = Event.objects.all()
    serializer_class = EventSerializer
    pagination_class = NewestFirstPagination
    workspace_path = "source__workspace"

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        params = self.request.query_params
        if (source := id_param(self.request, "source")) is not None:
            queryset = queryset.filter(source_id=source)
        if kind := params.get("type"):
            if kind not in EventType.values:
                raise ValidationError({"type": f"Give one of {', '.join(EventType.values)}, not {kind!r}."})
            queryset = queryset.filter(type=kind)
        for name in _EVENT_TEXT_FILTERS:
            if value := params.get(name):
                queryset = queryset.filter(**{name: value})
        for name, (lookup, _) in _EVENT_TIME_FILTERS.items():
            if (moment := moment_param(self.request, name)) is not None:
                queryset = queryset.filter(**{lookup: moment})
        return queryset


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("source", OpenApiTypes.INT, description="Only messages sent to this source."),
            OpenApiParameter("code", OpenApiTypes.STR, description="Only messages rejected for this reason code."),
        ]
    )
)
class RejectedMessageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Messages of accepted requests that were not stored, with the reason; newest first."""

    queryset = RejectedMessage.objects.all()
    serializer_class = RejectedMessageSerializer
    pagination_class = NewestFirstPagination
    workspace_path = "source__workspace"

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        if (source := id_param(self.request, "source")) is not None:
            queryset = queryset.filter(source_id=source)
        if code := self.request.query_params.get("code"):
            queryset = queryset.filter(code=code)
        return queryset
