from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from cdp.core.admin import ReadOnlyAdmin, pretty_json
from cdp.processing.models import Event, RejectedMessage


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["id", "type", "event", "user_id", "anonymous_id", "source", "timestamp", "received_at"]
    list_filter = ["type", "source"]
    list_select_related = ["source"]
    # Exact matches only (the "=" prefix): they use the indexes, a LIKE over every payload would not.
    search_fields = ["=message_id", "=user_id", "=anonymous_id", "=event"]
    fields = ["source", "type", "event", "user_id", "anonymous_id", "message_id", "timestamp", "received_at",
              "intake_id", "payload_json"]  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        return super().get_queryset(request).defer("payload")

    @admin.display(description="payload")
    def payload_json(self, obj: Event) -> str:
        return pretty_json(obj.payload)


@admin.register(RejectedMessage)
class RejectedMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "code", "reason", "source", "intake_id", "index", "received_at"]
    list_filter = ["code", "source"]
    list_select_related = ["source"]
    search_fields = ["=intake_id", "reason"]
    fields = ["source", "code", "reason", "intake_id", "index", "received_at", "body_text"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RejectedMessage]:
        return super().get_queryset(request).defer("body")

    @admin.display(description="body")
    def body_text(self, obj: RejectedMessage) -> str:
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', obj.body)
