from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.text import slugify
from rest_framework import serializers

from cdp.core.models import Role, Source, Workspace
from cdp.processing.models import Event, RejectedMessage


class WorkspaceSerializer(serializers.ModelSerializer):
    slug = serializers.SlugField(
        required=False, max_length=100, help_text="Used in dashboard URLs; made from the name when left out."
    )
    # Annotated by the viewset (or set on create): the caller's own role.
    role = serializers.ChoiceField(choices=Role.choices, read_only=True, help_text="Your role in this workspace.")

    class Meta:
        model = Workspace
        fields = ["id", "name", "slug", "created_at", "role"]
        read_only_fields = ["id", "created_at", "role"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is None and not attrs.get("slug"):
            attrs["slug"] = slugify(attrs.get("name", ""))[:100]
            if not attrs["slug"]:
                raise serializers.ValidationError({"name": "Give a name with letters or digits, or give a slug."})
        slug = attrs.get("slug")
        if slug is not None:
            taken = Workspace.objects.filter(slug=slug).exclude(pk=getattr(self.instance, "pk", None)).exists()
            if taken:
                raise serializers.ValidationError({"slug": f"The slug {slug!r} is taken; choose another."})
        return attrs


class MemberWorkspaceField(serializers.PrimaryKeyRelatedField):
    """A workspace id the caller is a member of; any other id reads as unknown, whether or not it exists."""

    default_error_messages = {
        "does_not_exist": "You have no workspace with id {pk_value}.",
        "incorrect_type": "Give a workspace id (a number), not {data_type}.",
    }

    def get_queryset(self) -> QuerySet[Workspace]:
        return Workspace.objects.filter(memberships__user=self.context["request"].user)


_SOURCE_FIELDS = [
    "id", "workspace", "name", "kind", "enabled", "write_key", "write_key_rotated_at",
    "rate_limit", "created_at", "updated_at",
]  # fmt: skip
_SOURCE_READ_ONLY = ["id", "write_key", "write_key_rotated_at", "created_at", "updated_at"]


class SourceSerializer(serializers.ModelSerializer):
    """A source as created: the workspace is chosen once."""

    workspace = MemberWorkspaceField(help_text="Id of one of your workspaces.")

    class Meta:
        model = Source
        fields = _SOURCE_FIELDS
        read_only_fields = _SOURCE_READ_ONLY
        validators: list = []  # the name clash is reported on `name` by validate(), in words

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        workspace = attrs.get("workspace") or getattr(self.instance, "workspace", None)
        name = attrs.get("name")
        if workspace is not None and name:
            clash = Source.objects.filter(workspace=workspace, name=name).exclude(pk=getattr(self.instance, "pk", None))
            if clash.exists():
                raise serializers.ValidationError({"name": f"This workspace already has a source named {name!r}."})
        return attrs


class SourceUpdateSerializer(SourceSerializer):
    """A source as changed: it stays in its workspace."""

    workspace = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta(SourceSerializer.Meta):
        read_only_fields = [*_SOURCE_READ_ONLY, "workspace"]


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = [
            "id", "source", "type", "event", "user_id", "anonymous_id", "message_id", "timestamp",
            "received_at", "payload",
        ]  # fmt: skip
        read_only_fields = fields


class RejectedMessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = RejectedMessage
        fields = ["id", "source", "intake_id", "index", "code", "reason", "body", "received_at"]
        read_only_fields = fields
