"""The operators' admin for destinations and their subscriptions.

Destinations are created, and their settings and mappings edited, in the dashboard or through the API,
which check them against the destination type. Here an operator switches destinations and subscriptions
on and off, tunes delivery (concurrency, rate, batches, retry window) and reads the history."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from cdp.core import audit
from cdp.core.admin_base import (
    AuditedAdmin,
    ReadOnlyAdmin,
    ReadOnlyInline,
    admin_link,
    changelist_links,
    pretty_json,
    record_change,
)
from cdp.core.models import Destination
from cdp.delivery.models import Delivery, FilteredCount, Job, Status
from cdp.delivery.tasks import poke
from cdp.destinations import registry
from cdp.destinations.configuration import public_settings
from cdp.destinations.models import Subscription, SubscriptionVersion
from cdp.destinations.services import InvalidConfiguration, save_subscription


class SubscriptionInline(ReadOnlyInline):
    model = Subscription
    fields = ["name", "action", "enabled", "version", "updated_at"]
    readonly_fields = fields


class DestinationForm(forms.ModelForm):
    class Meta:
        model = Destination
        fields = "__all__"

    def clean_sources(self) -> Any:
        sources = self.cleaned_data.get("sources")
        workspace_id = self.instance.workspace_id
        strangers = [source.name for source in sources or [] if source.workspace_id != workspace_id]
        if strangers:
            raise forms.ValidationError(f"Not sources of this destination's workspace: {', '.join(strangers)}.")
        return sources


@admin.register(Destination)
class DestinationAdmin(AuditedAdmin):
    form = DestinationForm
    list_display = ["name", "workspace", "type", "enabled", "max_in_flight", "rate_limit", "retry_hours", "updated_at"]
    list_filter = ["enabled", "type", "workspace"]
    list_select_related = ["workspace"]
    search_fields = ["name", "=type", "workspace__name", "workspace__slug"]
    date_hierarchy = "created_at"
    autocomplete_fields = ["sources"]
    fieldsets = [
        (None, {"fields": ["name", "workspace", "type", "enabled", "sources", "settings_shown", "see_also"]}),
        (
            "Delivery",
            {
                "fields": [
                    "max_in_flight",
                    "rate_limit",
                    "batch_size",
                    "batch_wait_seconds",
                    "timeout_seconds",
                    "retry_hours",
                ]
            },  # fmt: skip
        ),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]
    readonly_fields = ["workspace", "type", "settings_shown", "see_also", "created_at", "updated_at"]
    inlines = [SubscriptionInline]
    actions = ["disable_destinations", "enable_destinations"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the dashboard and the API check a new destination's settings against its type

    @admin.display(description="settings")
    def settings_shown(self, obj: Destination) -> str:
        return pretty_json(audit.masked(public_settings(registry.get(obj.type), obj.settings)))

    @admin.display(description="see also")
    def see_also(self, obj: Destination) -> str:
        return changelist_links(
            [
                (Delivery, {"destination__id__exact": obj.pk}, "deliveries"),
                (Delivery, {"destination__id__exact": obj.pk, "status__exact": Status.DEAD}, "dead letters"),
                (FilteredCount, {"destination__id__exact": obj.pk}, "filtered counts"),
                (Job, {"destination__id__exact": obj.pk}, "jobs"),
                (Subscription, {"destination__id__exact": obj.pk}, "subscriptions"),
            ]
        )

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Destination], enabled: bool) -> set[int]:
        changed = set()
        for destination in queryset.filter(enabled=not enabled):
            destination.enabled = enabled
            destination.save(update_fields=["enabled", "updated_at"])
            verb = "enabled" if enabled else "disabled"
            record_change(request, destination, verb, {"enabled": [not enabled, enabled]})
            changed.add(destination.pk)
        return changed

    @admin.action(description="Disable selected destinations", permissions=["change"])
    def disable_destinations(self, request: HttpRequest, queryset: QuerySet[Destination]) -> None:
        count = len(self._set_enabled(request, queryset, enabled=False))
        self.message_user(
            request, f"Disabled {count} destination(s); new events are no longer routed to them.", messages.SUCCESS
        )

    @admin.action(description="Enable selected destinations", permissions=["change"])
    def enable_destinations(self, request: HttpRequest, queryset: QuerySet[Destination]) -> None:
        changed = self._set_enabled(request, queryset, enabled=True)
        poke(changed)  # deliveries that waited while it was off go out now, not at the next sweep
        self.message_user(request, f"Enabled {len(changed)} destination(s).", messages.SUCCESS)


class SubscriptionVersionInline(ReadOnlyInline):
    model = SubscriptionVersion
    fields = ["version", "created_by", "created_at", "snapshot_json"]
    readonly_fields = fields
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[SubscriptionVersion]:
        return super().get_queryset(request).select_related("created_by")

    @admin.display(description="snapshot")
    def snapshot_json(self, obj: SubscriptionVersion) -> str:
        return pretty_json(obj.snapshot)


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    """Triggers and mappings are edited in the dashboard or through the API, which check them; here a
    subscription is switched off or on (each switch saved as a new version) and its history read."""

    list_display = ["name", "destination", "action", "enabled", "version", "updated_at"]
    list_filter = ["enabled", "destination__type", "destination__workspace"]
    list_select_related = ["destination"]
    search_fields = ["name", "=action", "destination__name", "=destination__id"]
    date_hierarchy = "updated_at"
    ordering = ["destination_id", "id"]
    fields = ["name", "destination_link", "action", "enabled", "version", "trigger", "mapping_json", "created_at",
              "updated_at"]  # fmt: skip
    readonly_fields = ["destination_link", "mapping_json"]
    inlines = [SubscriptionVersionInline]
    actions = ["disable_subscriptions", "enable_subscriptions"]

    def has_switch_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("destinations.change_subscription")

    @admin.display(description="destination")
    def destination_link(self, obj: Subscription) -> str:
        return admin_link(Destination, obj.destination_id, obj.destination)

    @admin.display(description="mapping")
    def mapping_json(self, obj: Subscription) -> str:
        return pretty_json(obj.mapping)

    def _switch(self, request: HttpRequest, queryset: QuerySet[Subscription], enabled: bool) -> None:
        switched, refused = 0, []
        for subscription in queryset.filter(enabled=not enabled).select_related("destination"):
            before = subscription.version
            try:
                save_subscription(subscription, {"enabled": enabled}, request.user)
            except InvalidConfiguration as problem:
                refused.append(f"{subscription.name}: {problem.errors}")
                continue
            changes = {"enabled": [not enabled, enabled], "version": [before, subscription.version]}
            record_change(request, subscription, "enabled" if enabled else "disabled", changes)
            switched += 1
        verb = "Enabled" if enabled else "Disabled"
        self.message_user(request, f"{verb} {switched} subscription(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not saved, fix them in the dashboard: " + "; ".join(refused), messages.ERROR)

    @admin.action(description="Disable selected subscriptions", permissions=["switch"])
    def disable_subscriptions(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        self._switch(request, queryset, enabled=False)

    @admin.action(description="Enable selected subscriptions", permissions=["switch"])
    def enable_subscriptions(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        self._switch(request, queryset, enabled=True)


@admin.register(SubscriptionVersion)
class SubscriptionVersionAdmin(ReadOnlyAdmin):
    list_display = ["subscription", "version", "created_by", "created_at"]
    list_filter = [("created_at", admin.DateFieldListFilter), "subscription__destination__workspace"]
    list_select_related = ["subscription__destination", "created_by"]
    search_fields = ["subscription__name", "=subscription__id", "created_by__username"]
    date_hierarchy = "created_at"
    fields = ["subscription", "version", "created_by", "created_at", "snapshot_json"]
    readonly_fields = ["snapshot_json"]

    @admin.display(description="snapshot")
    def snapshot_json(self, obj: SubscriptionVersion) -> str:
        return pretty_json(obj.snapshot)
