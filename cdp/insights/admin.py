"""The operators' admin for the dashboard aggregates (cdp/insights). The processor writes them with each
batch and `manage.py rebuild_insights` recomputes them from the stored events: here they are only read."""

from __future__ import annotations

from django.contrib import admin

from cdp.core.admin_base import ReadOnlyAdmin, ReadOnlyInline, admin_link, choices_filter
from cdp.insights.models import (
    Identity,
    MonthlyUsers,
    ObservedEvent,
    ObservedField,
    SourceHour,
    SourceMinute,
)
from cdp.insights.schema import TYPE_ORDER

EVENT_TYPES = [(kind, kind) for kind in TYPE_ORDER]
JSON_TYPES = [(kind, kind) for kind in ("string", "number", "boolean", "object", "array", "null")]


@admin.register(SourceHour)
class SourceHourAdmin(ReadOnlyAdmin):
    list_display = ["hour", "source", "count"]
    list_filter = [("hour", admin.DateFieldListFilter), "source"]
    list_select_related = ["source"]
    search_fields = ["source__name", "=source__id"]
    ordering = ["-hour", "source_id"]


@admin.register(SourceMinute)
class SourceMinuteAdmin(ReadOnlyAdmin):
    """A ring of 60 slots per source: a slot holding a minute older than an hour is waiting to be reused."""

    list_display = ["minute", "slot", "source", "count"]
    list_filter = [("minute", admin.DateFieldListFilter), "source"]
    list_select_related = ["source"]
    search_fields = ["source__name", "=source__id"]
    ordering = ["-minute", "source_id"]


class ObservedFieldInline(ReadOnlyInline):
    model = ObservedField
    fields = ["path", "json_type", "count", "first_seen", "last_seen"]
    readonly_fields = fields
    ordering = ["path", "json_type"]
    show_change_link = False


@admin.register(ObservedEvent)
class ObservedEventAdmin(ReadOnlyAdmin):
    list_display = ["event_type", "event_name", "source", "count", "first_seen", "last_seen"]
    list_filter = [
        choices_filter("event_type", "type", EVENT_TYPES),
        ("last_seen", admin.DateFieldListFilter),
        "source",
    ]
    list_select_related = ["source"]
    search_fields = ["event_name", "source__name"]
    ordering = ["-last_seen", "-pk"]
    inlines = [ObservedFieldInline]


@admin.register(ObservedField)
class ObservedFieldAdmin(ReadOnlyAdmin):
    list_display = ["path", "json_type", "event_link", "count", "first_seen", "last_seen"]
    list_filter = [choices_filter("json_type", "JSON type", JSON_TYPES), ("last_seen", admin.DateFieldListFilter)]
    list_select_related = ["observed_event"]
    search_fields = ["path", "observed_event__event_name"]
    ordering = ["-last_seen", "-pk"]

    @admin.display(description="event", ordering="observed_event_id")
    def event_link(self, obj: ObservedField) -> str:
        return admin_link(ObservedEvent, obj.observed_event_id, obj.observed_event)


@admin.register(Identity)
class IdentityAdmin(ReadOnlyAdmin):
    """One row per userId and anonymousId ever seen: a big table, searched by exact value."""

    list_display = ["id", "kind", "value", "workspace", "tied", "counted_month"]
    list_filter = ["kind", "tied", "workspace"]
    list_select_related = ["workspace"]
    search_fields = ["=value"]


@admin.register(MonthlyUsers)
class MonthlyUsersAdmin(ReadOnlyAdmin):
    list_display = ["month", "workspace", "users", "anonymous", "total"]
    list_filter = [("month", admin.DateFieldListFilter), "workspace"]
    list_select_related = ["workspace"]
    search_fields = ["workspace__name", "workspace__slug"]
    ordering = ["-month", "workspace_id"]

    @admin.display(description="monthly tracked users")
    def total(self, obj: MonthlyUsers) -> int:
        return obj.total
