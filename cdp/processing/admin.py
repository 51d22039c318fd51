"""The operators' admin for stored events and rejected messages: read-only, written by the processor."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from cdp.core.admin_base import ReadOnlyAdmin, changelist_links, pretty_json
from cdp.delivery.models import Delivery
from cdp.processing.models import Event, RejectedMessage


def _is_changelist(request: HttpRequest) -> bool:
    return bool(request.resolver_match and request.resolver_match.url_name.endswith("changelist"))


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["id", "type", "event", "user_id", "anonymous_id", "source", "timestamp", "received_at"]
    list_filter = ["type", ("received_at", admin.DateFieldListFilter), "source"]
    list_select_related = ["source"]
    # Exact matches only (the "=" prefix): they use the indexes, a LIKE over every payload would not.
    search_fields = ["=message_id", "=user_id", "=anonymous_id", "=event"]
    fields = ["source", "type", "event", "user_id", "anonymous_id", "message_id", "timestamp", "received_at",
              "intake_link", "see_also", "payload_json"]  # fmt: skip
    readonly_fields = ["intake_link", "see_also", "payload_json"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        queryset = super().get_queryset(request)
        return queryset.defer("payload") if _is_changelist(request) else queryset.select_related("source__workspace")

    @admin.display(description="intake request")
    def intake_link(self, obj: Event) -> str:
        url = reverse("admin:tracking_intakerequest_change", args=[obj.intake_id])
        return format_html('<a href="{}">intake #{}</a> (kept for a few days after processing)', url, obj.intake_id)

    @admin.display(description="see also")
    def see_also(self, obj: Event) -> str:
        xray = reverse("dashboard:event-xray", kwargs={"slug": obj.source.workspace.slug, "event_id": obj.pk})
        links = changelist_links([(Delivery, {"event_id": obj.pk}, "its deliveries")])
        return format_html('{} · <a href="{}">X-ray in the dashboard</a>', links, xray)

    @admin.display(description="payload")
    def payload_json(self, obj: Event) -> str:
        return pretty_json(obj.payload)


@admin.register(RejectedMessage)
class RejectedMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "code", "reason", "source", "intake_id", "index", "received_at"]
    list_filter = ["code", ("received_at", admin.DateFieldListFilter), "source"]
    list_select_related = ["source"]
    search_fields = ["=intake_id", "=code", "reason"]
    fields = ["source", "code", "reason", "intake_link", "index", "received_at", "body_text"]
    readonly_fields = ["intake_link", "body_text"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RejectedMessage]:
        queryset = super().get_queryset(request)
        return queryset.defer("body") if _is_changelist(request) else queryset

    @admin.display(description="intake request")
    def intake_link(self, obj: RejectedMessage) -> str:
        url = reverse("admin:tracking_intakerequest_change", args=[obj.intake_id])
        return format_html('<a href="{}">intake #{}</a>', url, obj.intake_id)

    @admin.display(description="body")
    def body_text(self, obj: RejectedMessage) -> str:
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', obj.body)
