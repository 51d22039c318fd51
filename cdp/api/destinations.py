"""Management API for destination types, destinations and their subscriptions."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from cdp.api.access import EDIT_ROLES, Rule, WorkspaceScopedViewSet, require_role
from cdp.core import audit
from cdp.core.models import Destination, Source, Workspace
from cdp.destinations import registry
from cdp.destinations.configuration import clean_settings, public_settings
from cdp.destinations.diff import json_diff
from cdp.destinations.framework import DestinationType
from cdp.destinations.models import Subscription
from cdp.destinations.preview import preview, what_if
from cdp.destinations.samples import SAMPLES, sample_event
from cdp.destinations.services import (
    InvalidConfiguration,
    check_subscription,
    create_destination,
    destination_type,
    restore_version,
    save_subscription,
    snapshot,
)
from cdp.processing.models import Event


class DestinationTypeViewSet(viewsets.ViewSet):
    """The catalog: every registered destination type with its settings, actions and presets."""

    lookup_value_regex = "[a-z0-9_-]+"

    @extend_schema(operation_id="destination_types_list", responses=OpenApiTypes.OBJECT)
    def list(self, request: Request) -> Response:
        return Response([t.as_dict() for t in registry.all_types()])

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        found = registry.get(pk or "")
        if found is None:
            raise NotFound(f"No destination type {pk!r}.")
        return Response(found.as_dict())


DELIVERY_FIELDS = ["max_in_flight", "rate_limit", "batch_size", "batch_wait_seconds", "timeout_seconds", "retry_hours"]


def audit_snapshot(destination: Destination) -> dict[str, Any]:
    """A destination as the audit log compares it (the dashboard records the same shape)."""
    return {
        "name": destination.name, "enabled": destination.enabled, "settings": dict(destination.settings),
        "sources": sorted(destination.sources.values_list("name", flat=True)),
        **{field: getattr(destination, field) for field in DELIVERY_FIELDS},
    }  # fmt: skip


def audit_changes(dtype: DestinationType | None, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Field → [before, after], with every secret setting masked (a connection URL included)."""
    if dtype is not None:
        masked = dtype.settings_for_audit(before.get("settings", {}), after.get("settings", {}))
        before, after = {**before, "settings": masked[0]}, {**after, "settings": masked[1]}
    return audit.diff_fields(before, after)


class DestinationSerializer(serializers.ModelSerializer):
    workspace = serializers.PrimaryKeyRelatedField(queryset=Workspace.objects.none())
    settings = serializers.JSONField(required=False)
    sources = serializers.PrimaryKeyRelatedField(queryset=Source.objects.none(), many=True, required=False)

    class Meta:
        model = Destination
        fields = [
            "id", "workspace", "name", "type", "settings", "enabled", "sources", *DELIVERY_FIELDS,
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {
            "max_in_flight": {"min_value": 1, "max_value": 64},
            "batch_size": {"min_value": 1, "max_value": 5000},
            "batch_wait_seconds": {"min_value": 0, "max_value": 3600},
            "timeout_seconds": {"min_value": 0.5, "max_value": 120},
            "retry_hours": {"min_value": 0, "max_value": 24 * 7},
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            self.fields["workspace"].queryset = Workspace.objects.filter(memberships__user=request.user)
            self.fields["sources"].child_relation.queryset = Source.objects.filter(
                workspace__memberships__user=request.user
            )
        if self.instance is not None and not isinstance(self.instance, list):
            self.fields["workspace"].read_only = True
            self.fields["type"].read_only = True

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        workspace = attrs.get("workspace") or getattr(self.instance, "workspace", None)
        foreign = [s.pk for s in attrs.get("sources", []) if workspace is not None and s.workspace_id != workspace.pk]
        if foreign:
            raise serializers.ValidationError({"sources": f"Sources {foreign} are not in this workspace."})
        return attrs

    def validate_type(self, value: str) -> str:
        if registry.get(value) is None:
            known = ", ".join(t.key for t in registry.all_types())
            raise serializers.ValidationError(f"Unknown destination type {value!r}; known types: {known}.")
        return value

    def validate_settings(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Settings must be a JSON object.")
        return value

    def to_representation(self, instance: Destination) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["settings"] = public_settings(registry.get(instance.type), instance.settings)
        return data


class SubscriptionSerializer(serializers.ModelSerializer):
    destination = serializers.PrimaryKeyRelatedField(queryset=Destination.objects.none())

    class Meta:
        model = Subscription
        fields = ["id", "destination", "name", "action", "trigger", "mapping", "enabled", "version", "updated_at"]
        read_only_fields = ["id", "version", "updated_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            # Only destinations of the caller's workspaces can be named; others read as "does not exist".
            self.fields["destination"].queryset = Destination.objects.filter(workspace__memberships__user=request.user)
        if self.instance is not None and not isinstance(self.instance, list):
            self.fields["destination"].read_only = True


def _invalid(exc: InvalidConfiguration) -> ValidationError:
    return ValidationError(exc.errors)


@extend_schema(parameters=[OpenApiParameter("workspace", OpenApiTypes.INT)])
class DestinationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
    mixins.DestroyModelMixin, WorkspaceScopedViewSet,
):  # fmt: skip
    """Configured destinations. Creating one adds a subscription per preset of its type."""

    queryset = Destination.objects.order_by("id")
    serializer_class = DestinationSerializer
    rules = {
        action: Rule(EDIT_ROLES, "add, change or remove destinations")
        for action in ("create", "update", "partial_update", "destroy")
    }

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        workspace = self.request.query_params.get("workspace")
        if workspace:
            if not workspace.isdigit():
                raise ValidationError({"workspace": "Give a workspace id."})
            queryset = queryset.filter(workspace_id=int(workspace))
        return queryset

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        data = serializer.validated_data
        require_role(self.request.user, data["workspace"], EDIT_ROLES, "add destinations")
        try:
            destination = create_destination(
                data["workspace"], name=data["name"], type_key=data["type"], settings=data.get("settings", {}),
                enabled=data.get("enabled", False), user=self.request.user,
            )  # fmt: skip
        except InvalidConfiguration as exc:
            raise _invalid(exc) from None
        options = {key: data[key] for key in DELIVERY_FIELDS if key in data}
        if options:
            Destination.objects.filter(pk=destination.pk).update(**options)
            destination.refresh_from_db()
        destination.sources.set(data.get("sources", []))
        serializer.instance = destination
        changes = audit_changes(registry.get(destination.type), {}, audit_snapshot(destination))
        audit.record(self.request.user, destination.workspace, "destination.created", target=destination,
                     changes=changes, via="api")  # fmt: skip

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        destination = serializer.instance
        data = dict(serializer.validated_data)
        if "settings" in data:
            dtype = registry.get(destination.type)
            clean, errors = clean_settings(dtype, data["settings"], destination.settings)
            if errors:
                raise ValidationError({"settings": errors})
            data["settings"] = clean
        before = audit_snapshot(destination)
        serializer.save(**data)
        changes = audit_changes(registry.get(destination.type), before, audit_snapshot(destination))
        if changes:
            audit.record(self.request.user, destination.workspace, "destination.updated", target=destination,
                         changes=changes, via="api")  # fmt: skip

    def perform_destroy(self, instance: Destination) -> None:
        changes = audit_changes(registry.get(instance.type), audit_snapshot(instance), {})
        audit.record(self.request.user, instance.workspace, "destination.deleted", target=instance,
                     changes=changes, via="api")  # fmt: skip
        instance.delete()

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"])
    def preview(self, request: Request, pk: str | None = None) -> Response:
        """Run one event through every subscription: `{"event": {...}}`, `{"message_id": "..."}` or
        `{"sample": "track"}`."""
        destination = self.get_object()
        event = _event_from_request(request.data, destination.workspace_id)
        return Response({"event": event, "subscriptions": preview(destination, event)})


def _event_from_request(data: Any, workspace_id: int) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationError({"event": "Send a JSON object."})
    if "event" in data:
        if not isinstance(data["event"], dict):
            raise ValidationError({"event": "The event must be a JSON object."})
        return data["event"]
    if "message_id" in data:
        stored = Event.objects.filter(source__workspace_id=workspace_id, message_id=str(data["message_id"]))
        found = stored.order_by("-id").first()
        if found is None:
            raise ValidationError({"message_id": "No stored event of this workspace has that messageId."})
        return found.payload
    if "sample" in data:
        if data["sample"] not in SAMPLES:
            raise ValidationError({"sample": f"Choose one of {', '.join(SAMPLES)}."})
        return sample_event(data["sample"])
    raise ValidationError({"event": "Give `event` (JSON), `message_id` (a stored event) or `sample` (a type)."})


@extend_schema(parameters=[OpenApiParameter("destination", OpenApiTypes.INT)])
class SubscriptionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
    mixins.DestroyModelMixin, WorkspaceScopedViewSet,
):  # fmt: skip
    """Subscriptions: trigger + action + mapping. Every save keeps a version that can be compared and restored."""

    queryset = Subscription.objects.select_related("destination").order_by("id")
    serializer_class = SubscriptionSerializer
    workspace_path = "destination__workspace"
    rules = {
        action: Rule(EDIT_ROLES, "change subscriptions")
        for action in ("update", "partial_update", "destroy", "restore")
    }

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        destination = self.request.query_params.get("destination")
        if destination:
            if not destination.isdigit():
                raise ValidationError({"destination": "Give a destination id."})
            queryset = queryset.filter(destination_id=int(destination))
        return queryset

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        destination = serializer.validated_data["destination"]
        require_role(self.request.user, destination.workspace_id, EDIT_ROLES, "change subscriptions")
        subscription = Subscription(destination=destination)
        self._save(subscription, serializer.validated_data)
        serializer.instance = subscription
        self._audit(subscription, "subscription.created", {}, snapshot(subscription))

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        before = snapshot(serializer.instance)
        self._save(serializer.instance, serializer.validated_data)
        self._audit(serializer.instance, "subscription.updated", before, snapshot(serializer.instance))

    def perform_destroy(self, instance: Subscription) -> None:
        self._audit(instance, "subscription.deleted", snapshot(instance), {})
        instance.delete()

    def _audit(self, subscription: Subscription, action: str, before: dict[str, Any], after: dict[str, Any]) -> None:
        changes = audit.diff_fields(before, after)
        if changes or action != "subscription.updated":
            audit.record(self.request.user, subscription.destination.workspace_id, action, target=subscription,
                         changes=changes, via="api")  # fmt: skip

    def _save(self, subscription: Subscription, data: dict[str, Any]) -> None:
        changes = {k: v for k, v in data.items() if k != "destination"}
        if subscription.pk is None:
            changes.setdefault("name", changes.get("action", "Subscription"))
            for field in ("action", "trigger", "mapping"):
                if field not in changes:
                    raise ValidationError({field: "This field is required."})
            subscription.name, subscription.action = changes["name"], changes["action"]
            subscription.trigger, subscription.mapping = changes["trigger"], changes["mapping"]
        try:
            save_subscription(subscription, changes, self.request.user)
        except InvalidConfiguration as exc:
            raise _invalid(exc) from None

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        rows = subscription.versions.select_related("created_by")
        return Response(
            [
                {"version": v.version, "snapshot": v.snapshot, "created_at": v.created_at,
                 "created_by": v.created_by.username if v.created_by else None}
                for v in rows
            ]
        )  # fmt: skip

    @extend_schema(
        parameters=[OpenApiParameter("from", OpenApiTypes.INT), OpenApiParameter("to", OpenApiTypes.INT)],
        responses=OpenApiTypes.OBJECT,
    )
    @action(detail=True, methods=["get"])
    def diff(self, request: Request, pk: str | None = None) -> Response:
        """Field-level differences between two versions (`to` defaults to the current one)."""
        subscription = self.get_object()
        params = request.query_params
        try:
            first = int(params["from"])
            second = int(params.get("to", subscription.version))
        except (KeyError, ValueError):
            raise ValidationError({"from": "Give version numbers: ?from=1&to=3."}) from None
        snapshots = dict(subscription.versions.filter(version__in=[first, second]).values_list("version", "snapshot"))
        missing = [v for v in (first, second) if v not in snapshots]
        if missing:
            raise ValidationError({"version": f"No version {missing[0]} of this subscription."})
        return Response({"from": first, "to": second, "differences": json_diff(snapshots[first], snapshots[second])})

    @extend_schema(request=OpenApiTypes.OBJECT, responses=SubscriptionSerializer)
    @action(detail=True, methods=["post"])
    def restore(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        version = request.data.get("version") if isinstance(request.data, dict) else None
        if not isinstance(version, int):
            raise ValidationError({"version": "Give the version number to restore."})
        before = snapshot(subscription)
        try:
            restore_version(subscription, version, request.user)
        except InvalidConfiguration as exc:
            raise _invalid(exc) from None
        self._audit(subscription, "subscription.restored", before, snapshot(subscription))
        return Response(self.get_serializer(subscription).data)

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"], url_path="what-if")
    def what_if(self, request: Request, pk: str | None = None) -> Response:
        """Run the saved and a proposed trigger/mapping over the last `limit` stored events (of `source`,
        or of the whole workspace) and list the events whose outcome differs, field by field."""
        subscription = self.get_object()
        data = request.data if isinstance(request.data, dict) else {}
        trigger = data.get("trigger", subscription.trigger)
        mapping = data.get("mapping", subscription.mapping)
        errors = check_subscription(
            destination_type(subscription.destination.type), subscription.action, trigger, mapping
        )
        if errors:
            raise ValidationError(errors)
        limit = data.get("limit", 50)
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValidationError({"limit": "Give a number of events from 1 to 1000."})
        events = Event.objects.filter(source__workspace_id=subscription.destination.workspace_id)
        if "source" in data:
            if not isinstance(data["source"], int):
                raise ValidationError({"source": "Give a source id."})
            events = events.filter(source_id=data["source"])
        rows = list(events.order_by("-id")[:limit])
        return Response(what_if(subscription, trigger=trigger, mapping=mapping, events=rows))
