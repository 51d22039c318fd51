from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from cdp.api.access import ADMIN_ROLES, EDIT_ROLES, WorkspaceScopedViewSet, require_role
from cdp.api.pagination import NewestFirstPagination
from cdp.api.serializers import EventSerializer, RejectedMessageSerializer, SourceSerializer, WorkspaceSerializer
from cdp.core.models import Membership, Role, Source, Workspace
from cdp.processing.models import Event, RejectedMessage


class WorkspaceViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
    WorkspaceScopedViewSet,
):  # fmt: skip
    """The workspaces you are a member of. Creating one makes you its owner."""

    queryset = Workspace.objects.prefetch_related("memberships").order_by("id")
    serializer_class = WorkspaceSerializer
    workspace_path = ""

    def perform_create(self, serializer: BaseSerializer) -> None:
        with transaction.atomic():
            workspace = serializer.save()
            Membership.objects.create(workspace=workspace, user=self.request.user, role=Role.OWNER)

    def perform_update(self, serializer: BaseSerializer) -> None:
        require_role(self.request.user, serializer.instance, ADMIN_ROLES, "change the workspace")
        serializer.save()


_SOURCE_FILTERS = [OpenApiParameter("workspace", OpenApiTypes.INT, description="Only sources of this workspace.")]


@extend_schema(parameters=_SOURCE_FILTERS)
class SourceViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
    WorkspaceScopedViewSet,
):  # fmt: skip
    """Sources send events with their write key. Rotating the key stops the old one within about a second."""

    queryset = Source.objects.order_by("id")
    serializer_class = SourceSerializer

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        workspace = self.request.query_params.get("workspace")
        if workspace:
            if not workspace.isdigit():
                raise ValidationError({"workspace": "Give a workspace id."})
            queryset = queryset.filter(workspace_id=int(workspace))
        return queryset

    def perform_create(self, serializer: BaseSerializer) -> None:
        require_role(self.request.user, serializer.validated_data["workspace"], EDIT_ROLES, "create sources")
        serializer.save()

    def perform_update(self, serializer: BaseSerializer) -> None:
        require_role(self.request.user, serializer.instance.workspace_id, EDIT_ROLES, "change sources")
        serializer.save()

    @extend_schema(request=None, responses=SourceSerializer)
    @action(detail=True, methods=["post"])
    def rotate_key(self, request: Request, pk: str | None = None) -> Response:
        source = self.get_object()
        require_role(request.user, source.workspace_id, ADMIN_ROLES, "rotate write keys")
        source.rotate_write_key()
        return Response(self.get_serializer(source).data, status=status.HTTP_200_OK)


_EVENT_FILTERS = {
    "source": "source_id",
    "type": "type",
    "event": "event",
    "user_id": "user_id",
    "anonymous_id": "anonymous_id",
    "message_id": "message_id",
}
_EVENT_TIME_FILTERS = {"since": "timestamp__gte", "until": "timestamp__lt", "received_since": "received_at__gte"}


@extend_schema(
    parameters=[OpenApiParameter(name, OpenApiTypes.STR) for name in _EVENT_FILTERS]
    + [OpenApiParameter(name, OpenApiTypes.DATETIME) for name in _EVENT_TIME_FILTERS]
)
class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Stored events, newest first, filtered by any of the query parameters."""

    queryset = Event.objects.all()
    serializer_class = EventSerializer
    pagination_class = NewestFirstPagination
    workspace_path = "source__workspace"

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        params = self.request.query_params
        for param, lookup in _EVENT_FILTERS.items():
            value = params.get(param)
            if value is None:
                continue
            if param == "source" and not value.isdigit():
                raise ValidationError({"source": "Give a source id."})
            queryset = queryset.filter(**{lookup: value})
        for param, lookup in _EVENT_TIME_FILTERS.items():
            value = params.get(param)
            if value is None:
                continue
            moment = parse_datetime(value)
            if moment is None:
                raise ValidationError({param: "Give an ISO-8601 date and time, e.g. 2026-01-31T12:00:00Z."})
            queryset = queryset.filter(**{lookup: moment})
        return queryset


@extend_schema(parameters=[OpenApiParameter("source", OpenApiTypes.INT)])
class RejectedMessageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Messages of accepted batches that were not stored, with the reason."""

    queryset = RejectedMessage.objects.all()
    serializer_class = RejectedMessageSerializer
    pagination_class = NewestFirstPagination
    workspace_path = "source__workspace"

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        source = self.request.query_params.get("source")
        if source is not None:
            if not source.isdigit():
                raise ValidationError({"source": "Give a source id."})
            queryset = queryset.filter(source_id=int(source))
        return queryset
