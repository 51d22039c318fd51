"""The operators' admin for the intake log: each accepted Tracking API request, read-only."""

from __future__ import annotations

import json

from django.contrib import admin
from django.db.models import QuerySet
from django.db.models.functions import Length
from django.http import HttpRequest
from django.utils.html import format_html

from cdp.core.admin_base import ReadOnlyAdmin, changelist_links, choices_filter, pretty_json
from cdp.processing.models import Event, RejectedMessage
from cdp.tracking.models import IntakeRequest
from cdp.tracking.validation import BATCH_ENDPOINTS, SINGLE_ENDPOINTS

_BODY_PREVIEW_BYTES = 64 * 1024
_ENDPOINTS = sorted({*SINGLE_ENDPOINTS, *BATCH_ENDPOINTS})


@admin.register(IntakeRequest)
class IntakeRequestAdmin(ReadOnlyAdmin):
    list_display = ["id", "source", "endpoint", "received_at", "processed_at", "attempts", "body_bytes", "error"]
    list_filter = [
        ("processed_at", admin.EmptyFieldListFilter),
        ("received_at", admin.DateFieldListFilter),
        choices_filter("endpoint", "endpoint", [(name, f"/v1/{name}") for name in _ENDPOINTS]),
        "source",
    ]
    list_select_related = ["source"]
    # The log holds days of requests and has no index but the id: an exact id is the one fast search.
    search_fields = ["=id"]
    fields = ["source", "endpoint", "received_at", "ip", "processed_at", "attempts", "retry_at", "error",
              "body_bytes", "see_also", "body_text"]  # fmt: skip
    readonly_fields = ["body_bytes", "see_also", "body_text"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[IntakeRequest]:
        # Bodies can be 500 KB each: the list shows their size, only the detail page reads one.
        return super().get_queryset(request).defer("body").annotate(body_size=Length("body"))

    @admin.display(description="body bytes", ordering="body_size")
    def body_bytes(self, obj: IntakeRequest) -> int:
        return obj.body_size

    @admin.display(description="see also")
    def see_also(self, obj: IntakeRequest) -> str:
        return changelist_links(
            [
                (Event, {"intake_id": obj.pk}, "events stored from it"),
                (RejectedMessage, {"intake_id": obj.pk}, "messages rejected from it"),
            ]
        )

    @admin.display(description="body")
    def body_text(self, obj: IntakeRequest) -> str:
        raw = bytes(obj.body)
        try:
            return pretty_json(json.loads(raw))
        except ValueError:
            return format_html("<pre>{}</pre>", raw[:_BODY_PREVIEW_BYTES].decode(errors="replace"))
