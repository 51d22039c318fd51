from django.db import models
from django.db.models import Q


class IntakeRequest(models.Model):
    """One accepted Tracking API request, body as received (decompressed); committed before the 200.

    Written by the web fast path with plain SQL (see cdp/tracking/intake.py); read by the processor.
    """

    source = models.ForeignKey("core.Source", on_delete=models.CASCADE, related_name="+")
    received_at = models.DateTimeField()
    endpoint = models.CharField(max_length=16)
    body = models.BinaryField()
    ip = models.CharField(max_length=64, blank=True, default="")
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    retry_at = models.DateTimeField(null=True, blank=True, help_text="After a failure: not retried before this.")
    error = models.TextField(blank=True, default="")

    class Meta:
        db_table = "cdp_intake"
        indexes = [
            models.Index(fields=["id"], condition=Q(processed_at__isnull=True), name="intake_pending"),
            models.Index(fields=["processed_at"], name="intake_processed_at"),
        ]

    def __str__(self) -> str:
        return f"intake #{self.pk} ({self.endpoint})"
