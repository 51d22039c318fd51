from django.db import models


class EventType(models.TextChoices):
    IDENTIFY = "identify"
    TRACK = "track"
    PAGE = "page"
    SCREEN = "screen"
    GROUP = "group"
    ALIAS = "alias"


class Event(models.Model):
    """A normalised Segment message, stored once per (source, messageId)."""

    source = models.ForeignKey("core.Source", on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=16, choices=EventType.choices)
    event = models.CharField(max_length=200, blank=True, default="", help_text="Event name of a track call.")
    user_id = models.CharField(max_length=255, blank=True, default="")
    anonymous_id = models.CharField(max_length=255, blank=True, default="")
    message_id = models.CharField(max_length=255)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField()
    intake_id = models.BigIntegerField(help_text="The intake request this message arrived in.")
    payload = models.JSONField()

    class Meta:
        db_table = "cdp_event"
        constraints = [models.UniqueConstraint(fields=["source", "message_id"], name="event_source_message_unique")]
        indexes = [
            models.Index(fields=["source", "-timestamp"], name="event_source_time"),
            models.Index(fields=["source", "type", "-timestamp"], name="event_source_type_time"),
            models.Index(fields=["source", "event", "-timestamp"], name="event_source_name_time"),
            models.Index(fields=["source", "user_id"], name="event_source_user"),
            models.Index(fields=["source", "anonymous_id"], name="event_source_anon"),
            models.Index(fields=["message_id"], name="event_message_id"),
            models.Index(fields=["received_at"], name="event_received_at"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event or ''} {self.message_id}".strip()


class RejectedMessage(models.Model):
    """A message of an accepted batch that could not be stored, with the reason."""

    source = models.ForeignKey("core.Source", on_delete=models.CASCADE, related_name="rejected_messages")
    intake_id = models.BigIntegerField()
    index = models.PositiveIntegerField(help_text="Position of the message in its request.")
    code = models.CharField(max_length=40)
    reason = models.TextField()
    body = models.TextField(help_text="The message as received, cut at 64 KB.")
    received_at = models.DateTimeField()

    class Meta:
        db_table = "cdp_rejected_message"
        indexes = [models.Index(fields=["source", "-received_at"], name="rejected_source_time")]

    def __str__(self) -> str:
        return f"{self.code} in intake #{self.intake_id}[{self.index}]"
