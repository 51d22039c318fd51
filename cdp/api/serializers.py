from __future__ import annotations

from typing import Any

from django.utils.text import slugify
from rest_framework import serializers

from cdp.core.models import Source, Workspace
from cdp.processing.models import Event, RejectedMessage


class WorkspaceSerializer(serializers.ModelSerializer):
    slug = serializers.SlugField(required=False, max_length=100)
    role = serializers.SerializerMethodField()

    class Meta:
        model = Workspace
        fields = ["id", "name", "slug", "created_at", "role"]
        read_only_fields = ["id", "created_at", "role"]

    def get_role(self, obj: Workspace) -> str | None:
        user = self.context["request"].user
        return next((m.role for m in obj.memberships.all() if m.user_id == user.pk), None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is None and not attrs.get("slug"):
            attrs["slug"] = slugify(attrs.get("name", ""))[:100]
        slug = attrs.get("slug")
        if slug is not None:
            if not slug:
                raise serializers.ValidationError({"slug": "Give a name or slug with letters or digits."})
            taken = Workspace.objects.filter(slug=slug).exclude(pk=getattr(self.instance, "pk", None)).exists()
            if taken:
                raise serializers.ValidationError({"slug": f"The slug {slug!r} is taken."})
        return attrs


class SourceSerializer(serializers.ModelSerializer):
    workspace = serializers.PrimaryKeyRelatedField(queryset=Workspace.objects.none())

    class Meta:
        model = Source
        fields = [
            "id", "workspace", "name", "kind", "enabled", "write_key", "write_key_rotated_at",
            "rate_limit", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "write_key", "write_key_rotated_at", "created_at", "updated_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            # Only the caller's workspaces can be named; another one reads as "does not exist".
            self.fields["workspace"].queryset = Workspace.objects.filter(memberships__user=request.user)
        if self.instance is not None and not isinstance(self.instance, list):
            self.fields["workspace"].read_only = True

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        workspace = attrs.get("workspace") or getattr(self.instance, "workspace", None)
        name = attrs.get("name")
        if workspace is not None and name:
            clash = Source.objects.filter(workspace=workspace, name=name).exclude(pk=getattr(self.instance, "pk", None))
            if clash.exists():
                raise serializers.ValidationError({"name": "This workspace already has a source with that name."})
        return attrs


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
