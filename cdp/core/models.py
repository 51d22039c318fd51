from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from cdp.core.keys import hash_token, new_api_token, new_write_key


class Workspace(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    READ_ONLY = "read_only", "Read-only"


class Membership(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"

    @property
    def can_edit(self) -> bool:
        return self.role != Role.READ_ONLY


class SourceKind(models.TextChoices):
    WEBSITE = "website", "Website"
    SERVER = "server", "Server"
    MOBILE = "mobile", "Mobile"
    OTHER = "other", "Other"


class Source(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="sources")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=SourceKind.choices, default=SourceKind.SERVER)
    enabled = models.BooleanField(default=True)
    write_key = models.CharField(max_length=64, unique=True, default=new_write_key, editable=False)
    write_key_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    rate_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Events per second per web process; empty uses the server default."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="source_name_unique")]

    def __str__(self) -> str:
        return self.name

    def rotate_write_key(self) -> str:
        """Give the source a new key; the old one stops working once web caches expire (about a second)."""
        self.write_key = new_write_key()
        self.write_key_rotated_at = timezone.now()
        self.save(update_fields=["write_key", "write_key_rotated_at", "updated_at"])
        return self.write_key


class Destination(models.Model):
    """A configured tool that receives events: its type (see cdp.destinations), settings, the sources
    that feed it, and how it is delivered to."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="destinations")
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=100)
    settings = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=False)
    sources = models.ManyToManyField(
        Source, blank=True, related_name="destinations", help_text="Sources that feed it; none means all of them."
    )
    max_in_flight = models.PositiveSmallIntegerField(default=4, help_text="Requests in flight at once.")
    rate_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per second; empty: none.")
    batch_size = models.PositiveSmallIntegerField(default=100, help_text="Events per request where it takes batches.")
    batch_wait_seconds = models.FloatField(default=0.0, help_text="How long a partial batch may wait to fill up.")
    timeout_seconds = models.FloatField(default=10.0)
    retry_hours = models.FloatField(default=4.0, help_text="How long failed deliveries are retried.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"


class ApiToken(models.Model):
    """A personal token for the management API; only its hash is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=12, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @classmethod
    def issue(cls, user: models.Model, name: str = "default") -> tuple[ApiToken, str]:
        token = new_api_token()
        obj = cls.objects.create(user=user, name=name, prefix=token[:12], token_hash=hash_token(token))
        return obj, token


class AuditEntry(models.Model):
    """Who changed what in a workspace: configuration changes, key rotations, replays, member changes.

    Written through `cdp.core.audit.record`; never edited afterwards."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="audit_entries")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    actor_name = models.CharField(max_length=150, blank=True, default="", help_text="Kept if the user is deleted.")
    action = models.CharField(max_length=64, help_text='Dotted verb, e.g. "destination.updated".')
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    target_repr = models.CharField(max_length=300, blank=True, default="")
    changes = models.JSONField(default=dict, blank=True, help_text="Field → [before, after], secrets masked.")
    via = models.CharField(max_length=16, blank=True, default="", help_text="dashboard, api, admin or command.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["workspace", "-created_at"], name="audit_workspace_recent")]

    def __str__(self) -> str:
        return f"{self.actor_name or 'system'} {self.action} {self.target_repr}".strip()


INVITATION_DAYS = 7


def _invitation_expiry() -> datetime:
    return timezone.now() + timedelta(days=INVITATION_DAYS)


class Invitation(models.Model):
    """A link that lets one person join a workspace with a role; only the token's hash is stored, so the
    link can be shown once, when it is made. Used once; expires after INVITATION_DAYS days."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(blank=True, default="", help_text="Who it is for; a reminder, not a restriction.")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="invitations_sent"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=_invitation_expiry)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.email or 'invitation'} as {self.get_role_display()}"

    @property
    def status(self) -> str:
        """pending, accepted, revoked or expired — the one a person following the link meets."""
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"

    @classmethod
    def issue(
        cls, workspace: Workspace, role: str, invited_by: models.Model, email: str = ""
    ) -> tuple[Invitation, str]:
        token = secrets.token_urlsafe(32)
        invitation = cls.objects.create(
            workspace=workspace, role=role, email=email, invited_by=invited_by, token_hash=hash_token(token)
        )
        return invitation, token
