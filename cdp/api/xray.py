"""Event X-ray through the API: one stored event's whole path (see cdp/debugger/xray.py).

    GET /api/v1/events/<id>/xray/
    GET /api/v1/events/xray/?message_id=<messageId>[&source=<id>]

Both are scoped to the caller's workspaces: anything else is a 404, like an event that never existed.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from cdp.api.access import WorkspaceScopedViewSet
from cdp.api.views import id_param
from cdp.debugger.xray import xray
from cdp.processing.models import Event


class EventXrayViewSet(WorkspaceScopedViewSet):
    """The raw request, the normalised event, duplicates, and for every destination of the workspace
    whether its triggers match, the mapped payload, each delivery and attempt, and the outcome."""

    queryset = Event.objects.select_related("source")
    workspace_path = "source__workspace"

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="events_xray")
    @action(detail=True, methods=["get"], url_path="xray", url_name="event")
    def event(self, request: Request, pk: str | None = None) -> Response:
        """The X-ray of one stored event, by its id."""
        return Response(xray(self.get_object()))

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        operation_id="events_xray_by_message_id",
        parameters=[
            OpenApiParameter("message_id", OpenApiTypes.STR, required=True, description="The event's messageId."),
            OpenApiParameter("source", OpenApiTypes.INT, description="Needed when several sources have it."),
        ],
    )
    @action(detail=False, methods=["get"], url_path="xray", url_name="message")
    def message(self, request: Request) -> Response:
        """The X-ray of one stored event, by its messageId."""
        message_id = request.query_params.get("message_id", "")
        if not message_id:
            raise ValidationError({"message_id": "Give the messageId of the event."})
        events = self.get_queryset().filter(message_id=message_id)
        if (source := id_param(request, "source")) is not None:
            events = events.filter(source_id=source)
        found = list(events.order_by("id")[:2])
        if not found:
            raise NotFound("No event has this messageId in your workspaces.")
        if len(found) > 1:
            raise ValidationError({"source": "Several of your sources have an event with this messageId; give one."})
        return Response(xray(found[0]))
