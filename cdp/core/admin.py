from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from cdp.core.models import ApiToken, Destination, Membership, Source, Workspace


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records the pipeline writes (intake, events, rejections): look, never touch."""

    show_full_result_count = False  # no COUNT(*) over a table of millions on every page

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


def pretty_json(value: Any) -> str:
    """JSON shown indented in a read-only admin field."""
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', json.dumps(value, indent=2))


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    list_filter = ["created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    list_select_related = ["user", "workspace"]
    search_fields = ["user__username", "user__email", "workspace__name"]
    autocomplete_fields = ["user", "workspace"]


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "kind", "enabled", "rate_limit", "created_at"]
    list_filter = ["kind", "enabled", "workspace"]
    list_select_related = ["workspace"]
    search_fields = ["name", "workspace__name", "=write_key"]
    readonly_fields = ["write_key", "write_key_rotated_at", "created_at", "updated_at"]
    actions = ["disable_sources", "enable_sources", "rotate_write_keys"]

    @admin.action(description="Disable selected sources")
    def disable_sources(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        count = queryset.update(enabled=False)
        self.message_user(request, f"Disabled {count} source(s).", messages.SUCCESS)

    @admin.action(description="Enable selected sources")
    def enable_sources(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        count = queryset.update(enabled=True)
        self.message_user(request, f"Enabled {count} source(s).", messages.SUCCESS)

    @admin.action(description="Rotate the write key of selected sources")
    def rotate_write_keys(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        sources = list(queryset)
        for source in sources:
            source.rotate_write_key()
        self.message_user(request, f"Rotated {len(sources)} write key(s).", messages.SUCCESS)


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "type", "enabled", "updated_at"]
    list_filter = ["type", "enabled", "workspace"]
    list_select_related = ["workspace"]
    search_fields = ["name", "type", "workspace__name"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued with `manage.py create_api_token` (the secret is shown once); here they are revoked."""

    list_display = ["prefix", "name", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    list_select_related = ["user"]
    search_fields = ["prefix", "name", "user__username"]
    readonly_fields = ["user", "prefix", "created_at", "last_used_at"]
    exclude = ["token_hash"]
    actions = ["revoke_tokens"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)
