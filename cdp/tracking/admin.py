from __future__ import annotations

import json

from django.contrib import admin
from django.db.models import QuerySet
from django.db.models.functions import Length
from django.http import HttpRequest
from django.utils.html import format_html

from cdp.core.admin import ReadOnlyAdmin, pretty_json
from cdp.tracking.models import IntakeRequest

_BODY_PREVIEW_BYTES = 64 * 1024


@admin.register(IntakeRequest)
class IntakeRequestAdmin(ReadOnlyAdmin):
    list_display = ["id", "source", "endpoint", "received_at", "processed_at", "attempts", "body_bytes", "error"]
    list_filter = [("processed_at", admin.EmptyFieldListFilter), "endpoint", "source"]
    list_select_related = ["source"]
    search_fields = ["=id", "source__name", "error"]
    fields = ["source", "endpoint", "received_at", "ip", "processed_at", "attempts", "error", "body_bytes", "body_text"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[IntakeRequest]:
        # Bodies can be 500 KB each: the list shows their size, only the detail page reads one.
        return super().get_queryset(request).defer("body").annotate(body_size=Length("body"))

    @admin.display(description="body bytes", ordering="body_size")
    def body_bytes(self, obj: IntakeRequest) -> int:
        return obj.body_size

    @admin.display(description="body")
    def body_text(self, obj: IntakeRequest) -> str:
        raw = bytes(obj.body)
        try:
            return pretty_json(json.loads(raw))
        except ValueError:
            return format_html("<pre>{}</pre>", raw[:_BODY_PREVIEW_BYTES].decode(errors="replace"))
