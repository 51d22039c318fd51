"""Aggregates written by `cdp.insights.observe` in the processing transaction, one upsert per table
per batch. Each table stays small whatever the number of events: bounded by sources × hours, by the
schema caps, or by the number of distinct people."""

from __future__ import annotations

from django.db import models


class SourceHour(models.Model):
    """Events received by a source in one hour (UTC), by `receivedAt`."""

    source = models.ForeignKey("core.Source", on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    count = models.BigIntegerField(default=0)

    class Meta:
        db_table = "cdp_insights_source_hour"
        constraints = [models.UniqueConstraint(fields=["source", "hour"], name="insights_source_hour_unique")]

    def __str__(self) -> str:
        return f"source {self.source_id} {self.hour:%Y-%m-%d %H}h: {self.count}"


class SourceMinute(models.Model):
    """Events received by a source in one minute, for the live volume of the last hour. A ring of 60
    slots per source (slot = minute of the hour): a new minute overwrites the slot of an hour ago, so
    the table never grows and needs no purge."""

    source = models.ForeignKey("core.Source", on_delete=models.CASCADE, related_name="+")
    slot = models.PositiveSmallIntegerField()
    minute = models.DateTimeField()
    count = models.BigIntegerField(default=0)

    class Meta:
        db_table = "cdp_insights_source_minute"
        constraints = [models.UniqueConstraint(fields=["source", "slot"], name="insights_source_minute_unique")]

    def __str__(self) -> str:
        return f"source {self.source_id} {self.minute:%H:%M}: {self.count}"


class ObservedEvent(models.Model):
    """One event seen from a source: its type and name (track: event, page/screen: name, else empty)."""

    source = models.ForeignKey("core.Source", on_delete=models.CASCADE, related_name="+")
    event_type = models.CharField(max_length=16)
    event_name = models.CharField(max_length=200, blank=True, default="")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    count = models.BigIntegerField(default=0)

    class Meta:
        db_table = "cdp_insights_observed_event"
        constraints = [
            models.UniqueConstraint(
                fields=["source", "event_type", "event_name"], name="insights_observed_event_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_name}".strip()


class ObservedField(models.Model):
    """A property or trait path seen on an event, with its JSON type; the same path with two types is
    two rows, so a client sending a number as a string shows up."""

    observed_event = models.ForeignKey(ObservedEvent, on_delete=models.CASCADE, related_name="fields")
    path = models.CharField(max_length=255)
    json_type = models.CharField(max_length=8)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    count = models.BigIntegerField(default=0)

    class Meta:
        db_table = "cdp_insights_observed_field"
        constraints = [
            models.UniqueConstraint(
                fields=["observed_event", "path", "json_type"], name="insights_observed_field_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.path}: {self.json_type}"


class IdentityKind(models.TextChoices):
    USER = "user", "userId"
    ANONYMOUS = "anonymous", "anonymousId"


class Identity(models.Model):
    """A userId or anonymousId of a workspace, with the latest month it was counted in.

    `tied` is set for an anonymousId once it is seen together with a userId (identify, alias or any
    event carrying both); from then on it never counts. Ties and sightings update the same row, so
    concurrent batches serialise on it and the monthly counts cannot drift."""

    workspace = models.ForeignKey("core.Workspace", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=IdentityKind.choices)
    value = models.CharField(max_length=255)
    tied = models.BooleanField(default=False)
    counted_month = models.DateField(null=True, blank=True)

    class Meta:
        db_table = "cdp_insights_identity"
        constraints = [models.UniqueConstraint(fields=["workspace", "kind", "value"], name="insights_identity_unique")]

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"


class MonthlyUsers(models.Model):
    """Monthly tracked users of a workspace: distinct userIds, plus anonymousIds never tied to one."""

    workspace = models.ForeignKey("core.Workspace", on_delete=models.CASCADE, related_name="+")
    month = models.DateField(help_text="The first day of the month (UTC).")
    users = models.BigIntegerField(default=0)
    anonymous = models.BigIntegerField(default=0)

    class Meta:
        db_table = "cdp_insights_monthly_users"
        constraints = [models.UniqueConstraint(fields=["workspace", "month"], name="insights_monthly_users_unique")]
        verbose_name_plural = "monthly users"

    def __str__(self) -> str:
        return f"{self.workspace_id} {self.month:%Y-%m}: {self.users + self.anonymous}"

    @property
    def total(self) -> int:
        return self.users + self.anonymous
