"""Delivery through the API: a destination's metrics and replays, dead letters and their re-drive, and
the jobs that re-drive and replay at a capped rate.

    GET  /api/v1/destinations/<id>/metrics/
    POST /api/v1/destinations/<id>/replay/      {"source": 1, "since": "...", "until": "..."}
    GET  /api/v1/dead-letters/?destination=&since=&until=&error_class=&event=
    GET  /api/v1/dead-letters/<id>/
    POST /api/v1/dead-letters/<id>/redrive/
    POST /api/v1/dead-letters/redrive/          {"workspace"|"destination": 1, "since": ..., ...}
    GET  /api/v1/jobs/  and  /api/v1/jobs/<id>/
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from cdp.api.access import EDIT_ROLES, Rule, WorkspaceScopedViewSet, require_role
from cdp.api.pagination import NewestFirstPagination
from cdp.api.serializers import MemberWorkspaceField
from cdp.api.views import id_param, moment_param
from cdp.core.models import Destination, Source, Workspace
from cdp.delivery import jobs
from cdp.delivery.metrics import collect
from cdp.delivery.models import Delivery, DeliveryAttempt, ErrorClass, Job, JobKind, Status
from cdp.delivery.redrive import Selection

REDRIVE_RULE = Rule(EDIT_ROLES, "re-drive dead letters")


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = [
            "number", "started_at", "duration_ms", "request", "response_status", "response_body", "error_class",
            "error", "outcome",
        ]  # fmt: skip
        read_only_fields = fields


class DeadLetterSerializer(serializers.ModelSerializer):
    source = serializers.IntegerField(source="source_id", read_only=True)
    dead_lettered_at = serializers.DateTimeField(source="finished_at", read_only=True)
    attempts = AttemptSerializer(source="attempts_made", many=True, read_only=True, help_text="Oldest first.")

    class Meta:
        model = Delivery
        fields = [
            "id", "destination", "subscription", "source", "event_id", "message_id", "event_name", "action",
            "payload", "error_class", "last_error", "received_at", "created_at", "dead_lettered_at", "attempts",
        ]  # fmt: skip
        read_only_fields = fields


class JobSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Job
        fields = [
            "id", "kind", "status", "workspace", "destination", "parameters", "total", "done", "result", "error",
            "created_by", "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


@extend_schema_field(OpenApiTypes.INT)
class WorkspaceIdField(MemberWorkspaceField):
    """A workspace id of the caller's (typed for the schema: this serializer has no model to tell)."""


@extend_schema_field(OpenApiTypes.INT)
class DestinationIdField(serializers.PrimaryKeyRelatedField):
    """A destination id of the caller's workspaces; any other id reads as unknown, whether or not it exists."""

    default_error_messages = {
        "does_not_exist": "You have no destination with id {pk_value}.",
        "incorrect_type": "Give a destination id (a number), not {data_type}.",
    }

    def get_queryset(self) -> QuerySet[Destination]:
        return Destination.objects.filter(workspace__memberships__user=self.context["request"].user)


class RedriveSerializer(serializers.Serializer):
    workspace = WorkspaceIdField(required=False, help_text="Needed when you have several workspaces.")
    destination = DestinationIdField(required=False)
    since = serializers.DateTimeField(required=False, help_text="Dead-lettered at or after.")
    until = serializers.DateTimeField(required=False, help_text="Dead-lettered before.")
    error_class = serializers.ChoiceField(choices=ErrorClass.choices, required=False)
    event = serializers.CharField(required=False, help_text="Event name, exact.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        workspace, destination = attrs.get("workspace"), attrs.get("destination")
        if workspace is not None and destination is not None and destination.workspace_id != workspace.pk:
            raise ValidationError({"destination": "This destination is not in that workspace."})
        if workspace is None and destination is None:
            mine = list(self.fields["workspace"].get_queryset().values_list("pk", flat=True)[:2])
            if len(mine) != 1:
                raise ValidationError({"workspace": "Give `workspace` or `destination`: which dead letters?"})
            attrs["workspace"] = Workspace(pk=mine[0])
        return attrs


class ReplaySerializer(serializers.Serializer):
    source = serializers.IntegerField(help_text="A source of the destination's workspace.")
    since = serializers.DateTimeField(help_text="Events that happened at or after this time.")
    until = serializers.DateTimeField(required=False, help_text="Events that happened before this time; default now.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        destination: Destination = self.context["destination"]
        source = Source.objects.filter(pk=attrs["source"], workspace_id=destination.workspace_id).first()
        if source is None:
            raise ValidationError({"source": f"This workspace has no source with id {attrs['source']}."})
        connected = set(destination.sources.values_list("pk", flat=True))
        if connected and source.pk not in connected:
            raise ValidationError({"source": "The destination is not connected to this source; connect it first."})
        if not destination.enabled:
            raise ValidationError({"destination": "The destination is disabled; enable it before replaying."})
        attrs.setdefault("until", timezone.now())
        if attrs["since"] >= attrs["until"]:
            raise ValidationError({"until": "Give an `until` later than `since`."})
        attrs["source"] = source
        return attrs


class DestinationDeliveryViewSet(WorkspaceScopedViewSet):
    """What a destination's deliveries did (metrics), and replaying stored events to it."""

    queryset = Destination.objects.select_related("workspace").order_by("id")
    rules = {"replay": Rule(EDIT_ROLES, "replay events"), "load": Rule(EDIT_ROLES, "start a load")}

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="destinations_metrics")
    @action(detail=True, methods=["get"])
    def metrics(self, request: Request, pk: str | None = None) -> Response:
        """Delivered, retried, failed (by reason), dead-lettered (by reason), filtered (by reason) and
        latency p50/p95 over the last 10 minutes, hour, 24 hours and 7 days; deliveries open now."""
        destination = self.get_object()
        now = timezone.now()
        found = collect([destination.pk], now)[destination.pk]
        return Response({"destination": destination.pk, "generated_at": now, **found.as_dict()})

    @extend_schema(request=ReplaySerializer, responses={202: JobSerializer}, operation_id="destinations_replay")
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str | None = None) -> Response:
        """Route a source's stored events of a time range to this destination only, at a capped rate; poll
        the job returned. Events that already have their delivery get no second one."""
        destination = self.get_object()
        serializer = ReplaySerializer(data=request.data, context={"destination": destination})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = jobs.start_replay(
            destination, data["source"].pk, data["since"], data["until"], user=request.user, via="api"
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: JobSerializer}, operation_id="destinations_load")
    @action(detail=True, methods=["post"])
    def load(self, request: Request, pk: str | None = None) -> Response:
        """Send the events waiting for the next batch now (a warehouse load between scheduled loads); poll
        the job returned. `total` is the number of events waiting when it was asked for."""
        destination = self.get_object()
        if not destination.enabled:
            raise ValidationError({"destination": "The destination is disabled: enable it first."})
        job = jobs.start_load(destination, user=request.user, via="api")
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("destination", OpenApiTypes.INT, description="Only dead letters of this destination."),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Dead-lettered at or after this time."),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="Dead-lettered before this time."),
            OpenApiParameter("error_class", OpenApiTypes.STR, enum=ErrorClass.values, description="Last error."),
            OpenApiParameter("event", OpenApiTypes.STR, description="Event name, exact."),
        ]
    )
)
class DeadLetterViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Deliveries that kept failing until their retry window ran out, newest first, each with its attempts."""

    queryset = (
        Delivery.objects.filter(status=Status.DEAD)
        .select_related("destination")
        .prefetch_related(Prefetch("attempts_made", queryset=DeliveryAttempt.objects.order_by("id")))
    )
    serializer_class = DeadLetterSerializer
    pagination_class = NewestFirstPagination
    workspace_path = "destination__workspace"
    lookup_value_regex = "[0-9]+"
    rules = {"redrive": REDRIVE_RULE}

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        if self.action == "list":
            queryset = self.selection().apply(queryset)
        return queryset

    def selection(self) -> Selection:
        error_class = self.request.query_params.get("error_class", "")
        if error_class and error_class not in ErrorClass.values:
            raise ValidationError({"error_class": f"Give one of {', '.join(ErrorClass.values)}."})
        return Selection(
            destination=id_param(self.request, "destination"),
            since=moment_param(self.request, "since"),
            until=moment_param(self.request, "until"),
            error_class=error_class,
            event=self.request.query_params.get("event", ""),
        )

    @extend_schema(request=None, responses=JobSerializer, operation_id="dead_letters_redrive")
    @action(detail=True, methods=["post"])
    def redrive(self, request: Request, pk: str | None = None) -> Response:
        """Re-drive this dead letter now, through its subscription's current trigger and mapping."""
        delivery = self.get_object()
        workspace_id = delivery.destination.workspace_id
        selection = Selection(delivery=delivery.pk)
        job = jobs.start_redrive(
            workspace_id, selection, user=request.user, via="api", destination_id=delivery.destination_id, inline=True
        )
        return Response(JobSerializer(job).data)

    @extend_schema(
        request=RedriveSerializer, responses={202: JobSerializer}, operation_id="dead_letters_redrive_matching"
    )
    @action(detail=False, methods=["post"], url_path="redrive", url_name="redrive-matching")
    def redrive_matching(self, request: Request) -> Response:
        """Re-drive every dead letter that matches the filters (all of a workspace when none is given) at
        CDP_REDRIVE_RATE per second; poll the job returned."""
        serializer = RedriveSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        destination = data.get("destination")
        workspace_id = destination.workspace_id if destination is not None else data["workspace"].pk
        require_role(request.user, workspace_id, REDRIVE_RULE.roles, REDRIVE_RULE.doing)
        selection = Selection(
            destination=destination.pk if destination is not None else None, since=data.get("since"),
            until=data.get("until"), error_class=data.get("error_class", ""), event=data.get("event", ""),
        )  # fmt: skip
        job = jobs.start_redrive(workspace_id, selection, user=request.user, via="api")
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("workspace", OpenApiTypes.INT, description="Only jobs of this workspace."),
            OpenApiParameter("destination", OpenApiTypes.INT, description="Only jobs for this destination."),
            OpenApiParameter("kind", OpenApiTypes.STR, enum=JobKind.values),
        ]
    )
)
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Re-drives and replays, newest first: who asked for what, and how far each got (`done` of `total`)."""

    queryset = Job.objects.select_related("created_by")
    serializer_class = JobSerializer
    pagination_class = NewestFirstPagination

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        if (workspace := id_param(self.request, "workspace")) is not None:
            queryset = queryset.filter(workspace_id=workspace)
        if (destination := id_param(self.request, "destination")) is not None:
            queryset = queryset.filter(destination_id=destination)
        if kind := self.request.query_params.get("kind"):
            if kind not in JobKind.values:
                raise ValidationError({"kind": f"Give one of {', '.join(JobKind.values)}."})
            queryset = queryset.filter(kind=kind)
        return queryset
