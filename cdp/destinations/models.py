from django.conf import settings
from django.db import models
from django.utils import timezone


class Subscription(models.Model):
    """Which events go to a destination (trigger) through which action, shaped how (mapping)."""

    destination = models.ForeignKey("core.Destination", on_delete=models.CASCADE, related_name="subscriptions")
    name = models.CharField(max_length=200)
    action = models.CharField(max_length=100)
    trigger = models.TextField()
    mapping = models.JSONField(default=dict)
    enabled = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} → {self.destination}"


class SubscriptionVersion(models.Model):
    """A saved state of a subscription; restoring one saves it again as the newest version."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    snapshot = models.JSONField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["subscription", "version"], name="subscription_version_unique")]

    def __str__(self) -> str:
        return f"{self.subscription} v{self.version}"
