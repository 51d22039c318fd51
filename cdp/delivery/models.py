from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    RETRYING = "retrying", "Retrying"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed permanently"
    DEAD = "dead", "Dead-lettered"


OPEN_STATUSES = (Status.PENDING, Status.RETRYING)


class ErrorClass(models.TextChoices):
    NETWORK = "network", "Network error"
    TIMEOUT = "timeout", "Timeout"
    RATE_LIMITED = "rate_limited", "Rate limited (429)"
    SERVER = "server_error", "Server error (5xx)"
    RETRYABLE_4XX = "retryable_client_error", "Retryable client error (408, 423)"
    CLIENT = "client_error", "Client error (4xx)"
    CONFIGURATION = "configuration", "Destination misconfigured"
    PAYLOAD = "payload", "Payload refused"


class Delivery(models.Model):
    """One event for one subscription of one destination, with its retry state.

    The database, not the broker, holds this state: a worker sends a destination's due rows while it
    holds that destination's drain lease (`DrainLease`), so a killed worker or a flushed Redis only
    delays a delivery."""

    # No index of their own: the indexes below start with the destination, the unique constraint with the
    # subscription. Every index costs a write per row version, and a delivery is written twice (made, then
    # answered).
    destination = models.ForeignKey(
        "core.Destination", on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    subscription = models.ForeignKey(
        "destinations.Subscription", null=True, on_delete=models.SET_NULL, related_name="deliveries", db_index=False
    )
    event_id = models.BigIntegerField()
    source_id = models.BigIntegerField()
    message_id = models.CharField(max_length=255)
    event_name = models.CharField(max_length=200, blank=True, default="")
    action = models.CharField(max_length=100)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    error_class = models.CharField(max_length=32, blank=True, default="", choices=ErrorClass.choices)
    last_error = models.TextField(blank=True, default="")
    received_at = models.DateTimeField(help_text="When the event reached the Tracking API.")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True, help_text="Delivered, failed or dead-lettered at.")

    class Meta:
        db_table = "cdp_delivery"
        verbose_name_plural = "deliveries"
        constraints = [
            # The same event never makes two deliveries for one subscription (routing is idempotent).
            models.UniqueConstraint(fields=["subscription", "event_id"], name="delivery_subscription_event_unique")
        ]
        indexes = [
            models.Index(
                fields=["destination", "next_attempt_at"],
                condition=Q(status__in=["pending", "retrying"]),
                name="delivery_due",
            ),
            models.Index(fields=["destination", "status", "-finished_at"], name="delivery_dest_status"),
            models.Index(fields=["message_id"], name="delivery_message_id"),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} → {self.destination_id} ({self.status})"


class DrainLease(models.Model):
    """Which drain may send a destination's deliveries, and until when: one row per destination, taken
    for a whole drain and renewed while it runs, instead of a lease written on every delivery it claims.

    A lease is free once `until` has passed; on PostgreSQL also as soon as the holder's database
    connection (`backend`, its server process id) is gone, as when its worker was killed."""

    destination = models.OneToOneField(
        "core.Destination", primary_key=True, on_delete=models.CASCADE, related_name="drain_lease"
    )
    holder = models.CharField(max_length=64)
    backend = models.IntegerField(null=True, blank=True, help_text="PostgreSQL process id of the holder's connection.")
    until = models.DateTimeField()

    class Meta:
        db_table = "cdp_delivery_lease"

    def __str__(self) -> str:
        return f"destination #{self.destination_id} held by {self.holder} until {self.until:%H:%M:%S}"


class Exchange(models.Model):
    """One request to a destination and what came back: the evidence shared by every delivery it carried.

    A batch of 500 events is one exchange and 500 small attempt rows pointing at it, not 500 copies of the
    request; a single-event request is one exchange and one attempt."""

    # No index of its own: exchange_destination_recent starts with the destination.
    destination = models.ForeignKey(
        "core.Destination", on_delete=models.CASCADE, related_name="exchanges", db_index=False
    )
    started_at = models.DateTimeField()
    duration_ms = models.FloatField()
    request = models.JSONField(default=dict, help_text="Method, URL, headers (secrets masked) and body excerpt.")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, default="")
    error_class = models.CharField(max_length=32, blank=True, default="")
    error = models.TextField(blank=True, default="")
    events = models.PositiveIntegerField(default=1, help_text="Deliveries this request carried.")

    class Meta:
        db_table = "cdp_delivery_exchange"
        indexes = [models.Index(fields=["destination", "-started_at"], name="exchange_destination_recent")]

    def __str__(self) -> str:
        status = self.response_status or self.error_class or "no answer"
        return f"request to destination #{self.destination_id} at {self.started_at:%Y-%m-%d %H:%M:%S} ({status})"


class DeliveryAttempt(models.Model):
    """Evidence of one try of one delivery: its outcome, and the exchange (request and response) it went in."""

    # Attempts go in by the hundred per request. Neither foreign key is checked by the database (a check
    # per row would lock each delivery row once more); the engine writes attempts only for deliveries it
    # holds, and deleting a delivery or destination through the application deletes its attempts.
    # The (delivery, number) index below serves lookups by delivery: no index of its own.
    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="attempts_made", db_constraint=False, db_index=False
    )
    number = models.PositiveIntegerField()
    # Read from the delivery side; attempts go away with their delivery or destination, never with the
    # exchange alone.
    exchange = models.ForeignKey(
        Exchange, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="attempts",
        db_constraint=False, db_index=False,
    )  # fmt: skip
    started_at = models.DateTimeField()
    duration_ms = models.FloatField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_class = models.CharField(max_length=32, blank=True, default="")
    error = models.TextField(blank=True, default="", help_text="This event's own error (a batch may fail per event).")
    outcome = models.CharField(max_length=16, help_text="delivered, retry, failed or dead")

    class Meta:
        db_table = "cdp_delivery_attempt"
        ordering = ["delivery_id", "number"]
        indexes = [
            models.Index(fields=["delivery", "number"], name="attempt_delivery_number"),
            # Metrics count retried attempts per window; a partial index keeps that cheap to maintain.
            models.Index(fields=["started_at"], condition=Q(outcome="retry"), name="attempt_retry_time"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery #{self.delivery_id}: {self.outcome}"

    # The request and response live on the exchange; read them through these (select_related("exchange")).
    @property
    def request(self) -> dict:
        exchange = self._exchange()
        return exchange.request if exchange is not None else {}

    @property
    def response_body(self) -> str:
        exchange = self._exchange()
        return exchange.response_body if exchange is not None else ""

    def _exchange(self) -> Exchange | None:
        if not self.exchange_id:
            return None
        try:
            return self.exchange
        except Exchange.DoesNotExist:
            return None


class FilteredCount(models.Model):
    """Events a destination did not get, counted per hour and reason (never silently dropped)."""

    destination = models.ForeignKey("core.Destination", on_delete=models.CASCADE, related_name="filtered_counts")
    hour = models.DateTimeField()
    reason = models.CharField(max_length=32)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "cdp_delivery_filtered"
        constraints = [models.UniqueConstraint(fields=["destination", "hour", "reason"], name="filtered_unique")]

    def __str__(self) -> str:
        return f"{self.destination_id} {self.hour:%Y-%m-%d %H}h {self.reason}: {self.count}"


class JobKind(models.TextChoices):
    REDRIVE = "redrive", "Re-drive dead letters"
    REPLAY = "replay", "Replay stored events"
    LOAD = "load", "Load now"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Job(models.Model):
    """A re-drive or a replay, worked through in chunks at a capped rate: who asked for what, and how far
    it got. `cursor` (the last id worked through) lets a killed worker's job resume where it stopped."""

    workspace = models.ForeignKey("core.Workspace", on_delete=models.CASCADE, related_name="delivery_jobs")
    destination = models.ForeignKey(
        "core.Destination", null=True, blank=True, on_delete=models.SET_NULL, related_name="delivery_jobs"
    )
    kind = models.CharField(max_length=16, choices=JobKind.choices)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    parameters = models.JSONField(default=dict, help_text="The selection, as asked for.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0, help_text="Rows selected when the job was made.")
    done = models.PositiveIntegerField(default=0, help_text="Rows worked through so far.")
    result = models.JSONField(default=dict, help_text="What became of the rows worked through, by outcome.")
    error = models.TextField(blank=True, default="")
    cursor = models.BigIntegerField(default=0)
    up_to_id = models.BigIntegerField(default=0, help_text="The selection ends at this id: later rows are not in it.")
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "cdp_delivery_job"
        indexes = [models.Index(fields=["workspace", "-created_at"], name="job_workspace_created")]

    def __str__(self) -> str:
        return f"{self.kind} job #{self.pk} ({self.status}, {self.done}/{self.total})"
