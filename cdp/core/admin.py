from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from cdp.core.models import ApiToken, Destination, Membership, Source, Workspace


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    search_fields = ["user__username", "user__email", "workspace__name"]
    autocomplete_fields = ["user", "workspace"]


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "kind", "enabled", "rate_limit", "created_at"]
    list_filter = ["kind", "enabled", "workspace"]
    search_fields = ["name", "workspace__name", "write_key"]
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
        for source in queryset:
            source.rotate_write_key()
        self.message_user(request, f"Rotated {queryset.count()} write key(s).", messages.SUCCESS)


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "type", "enabled", "updated_at"]
    list_filter = ["type", "enabled", "workspace"]
    search_fields = ["name", "type", "workspace__name"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "name", "user__username"]
    readonly_fields = ["prefix", "token_hash", "created_at", "last_used_at"]
