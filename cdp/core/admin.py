"""The operators' admin for workspaces, members, sources, API tokens and the audit log.

Destinations are in cdp/destinations/admin.py (with their subscriptions), deliveries and jobs in
cdp/delivery/admin.py, pipeline records in cdp/tracking/admin.py and cdp/processing/admin.py."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, IntegerField, Model, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone

from cdp.core import audit
from cdp.core.admin_base import (
    AuditedAdmin,
    ReadOnlyAdmin,
    changelist_links,
    choices_filter,
    pretty_json,
    record_change,
)
from cdp.core.models import ApiToken, AuditEntry, Destination, Invitation, Membership, Source, Workspace
from cdp.processing.models import Event, RejectedMessage
from cdp.tracking.models import IntakeRequest

__all__ = ["ReadOnlyAdmin", "pretty_json"]  # the base classes other apps' admins build on


def _count_of(model: type[Model], field: str) -> Coalesce:
    """Rows of `model` pointing at each row listed, as a subquery: joining several such tables at once
    would multiply rows before counting them."""
    rows = model.objects.filter(**{field: OuterRef("pk")}).order_by().values(field).annotate(n=Count("pk"))
    return Coalesce(Subquery(rows.values("n"), output_field=IntegerField()), 0)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]


@admin.register(Workspace)
class WorkspaceAdmin(AuditedAdmin):
    list_display = ["name", "slug", "member_count", "source_count", "destination_count", "created_at"]
    list_filter = [("created_at", admin.DateFieldListFilter)]
    search_fields = ["name", "slug"]
    date_hierarchy = "created_at"
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "pipeline"]
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workspace]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                members=_count_of(Membership, "workspace"),
                source_total=_count_of(Source, "workspace"),
                destination_total=_count_of(Destination, "workspace"),
            )
        )

    @admin.display(description="members", ordering="members")
    def member_count(self, obj: Workspace) -> int:
        return obj.members

    @admin.display(description="sources", ordering="source_total")
    def source_count(self, obj: Workspace) -> int:
        return obj.source_total

    @admin.display(description="destinations", ordering="destination_total")
    def destination_count(self, obj: Workspace) -> int:
        return obj.destination_total

    @admin.display(description="see also")
    def pipeline(self, obj: Workspace) -> str:
        if obj.pk is None:
            return "-"
        return changelist_links(
            [
                (Source, {"workspace__id__exact": obj.pk}, "sources"),
                (Destination, {"workspace__id__exact": obj.pk}, "destinations"),
                (AuditEntry, {"workspace__id__exact": obj.pk}, "audit log"),
            ]
        )


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    list_select_related = ["user", "workspace"]
    search_fields = ["user__username", "user__email", "workspace__name", "workspace__slug"]
    autocomplete_fields = ["user", "workspace"]
    date_hierarchy = "created_at"
    readonly_fields = ["created_at"]


@admin.register(Source)
class SourceAdmin(AuditedAdmin):
    list_display = ["name", "workspace", "kind", "enabled", "rate_limit", "write_key_rotated_at", "created_at"]
    list_filter = ["enabled", "kind", "workspace"]
    list_select_related = ["workspace"]
    search_fields = ["name", "workspace__name", "workspace__slug", "=write_key"]
    autocomplete_fields = ["workspace"]
    date_hierarchy = "created_at"
    readonly_fields = ["write_key", "write_key_rotated_at", "created_at", "updated_at", "pipeline"]
    actions = ["disable_sources", "enable_sources", "rotate_write_keys"]

    def get_readonly_fields(self, request: HttpRequest, obj: Source | None = None) -> list[str]:
        # A source never moves to another workspace: its events, keys and destinations stay behind.
        return [*self.readonly_fields, "workspace"] if obj is not None else self.readonly_fields

    @admin.display(description="see also")
    def pipeline(self, obj: Source) -> str:
        if obj.pk is None:
            return "-"
        return changelist_links(
            [
                (Event, {"source__id__exact": obj.pk}, "events"),
                (RejectedMessage, {"source__id__exact": obj.pk}, "rejected messages"),
                (IntakeRequest, {"source__id__exact": obj.pk}, "intake requests"),
            ]
        )

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Source], enabled: bool) -> int:
        changed = 0
        for source in queryset.filter(enabled=not enabled).select_related("workspace"):
            source.enabled = enabled
            source.save(update_fields=["enabled", "updated_at"])
            verb = "enabled" if enabled else "disabled"
            record_change(request, source, verb, {"enabled": [not enabled, enabled]})
            changed += 1
        return changed

    @admin.action(description="Disable selected sources (the Tracking API refuses their key)", permissions=["change"])
    def disable_sources(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        count = self._set_enabled(request, queryset, enabled=False)
        message = f"Disabled {count} source(s); the Tracking API refuses their events within seconds."
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(description="Enable selected sources", permissions=["change"])
    def enable_sources(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        count = self._set_enabled(request, queryset, enabled=True)
        self.message_user(request, f"Enabled {count} source(s).", messages.SUCCESS)

    @admin.action(description="Rotate the write key of selected sources", permissions=["change"])
    def rotate_write_keys(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        sources = list(queryset.select_related("workspace"))
        for source in sources:
            old_key = source.write_key
            source.rotate_write_key()
            record_change(request, source, "key_rotated", {"write_key": [old_key, source.write_key]})
        self.message_user(
            request,
            f"Rotated {len(sources)} write key(s); the old keys stop working within seconds. "
            "Give the new keys to the apps that send with them.",
            messages.SUCCESS,
        )


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued with `manage.py create_api_token` or the dashboard (the secret is shown once);
    here they are looked at and revoked."""

    list_display = ["prefix", "name", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), ("last_used_at", admin.DateFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["prefix", "name", "user__username", "user__email"]
    date_hierarchy = "created_at"
    readonly_fields = ["user", "prefix", "created_at", "last_used_at", "revoked_at"]
    exclude = ["token_hash"]
    actions = ["revoke_tokens"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        tokens = list(queryset.filter(revoked_at__isnull=True).select_related("user"))
        now = timezone.now()
        ApiToken.objects.filter(pk__in=[token.pk for token in tokens]).update(revoked_at=now)
        # A token is its user's, across workspaces: each workspace the user works in sees the revocation.
        workspaces = Membership.objects.filter(user__in={token.user_id for token in tokens}).values_list(
            "user_id", "workspace_id"
        )
        for user_id, workspace_id in workspaces:
            for token in (token for token in tokens if token.user_id == user_id):
                audit.record(
                    request.user, workspace_id, "api_token.revoked", target=token, changes={"revoked": [False, True]},
                    via="admin",
                )  # fmt: skip
        self.message_user(request, f"Revoked {len(tokens)} token(s).", messages.SUCCESS)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "workspace", "actor_name", "action", "target_type", "target_repr", "via"]
    list_filter = [
        choices_filter("via", "made through", [(v, v) for v in ("dashboard", "api", "admin", "command")]),
        ("created_at", admin.DateFieldListFilter),
        "workspace",
    ]
    list_select_related = ["workspace"]
    search_fields = ["=actor_name", "=action", "=target_type", "=target_id", "target_repr"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]
    fields = ["created_at", "workspace", "actor", "actor_name", "action", "target_type", "target_id", "target_repr",
              "via", "changes_json"]  # fmt: skip
    readonly_fields = ["changes_json"]

    @admin.display(description="changes (before, after)")
    def changes_json(self, obj: AuditEntry) -> str:
        return pretty_json(obj.changes)


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    """Invitations are made and revoked in the dashboard (Members page), where the link is shown once;
    only the token's hash is stored, so there is nothing here to resend: look, never touch."""

    list_display = ["id", "email", "workspace", "role", "status", "invited_by", "created_at", "expires_at"]
    list_filter = [
        "role",
        ("accepted_at", admin.EmptyFieldListFilter),
        ("revoked_at", admin.EmptyFieldListFilter),
        ("expires_at", admin.DateFieldListFilter),
        "workspace",
    ]
    list_select_related = ["workspace", "invited_by"]
    search_fields = ["email", "workspace__name", "workspace__slug", "invited_by__username"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]
    exclude = ["token_hash"]

    @admin.display(description="status")
    def status(self, obj: Invitation) -> str:
        return obj.status
