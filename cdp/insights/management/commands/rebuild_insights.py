"""Rebuild the dashboard aggregates from the stored events: after installing them on a server that
already holds events, or to repair them. Stop the Celery workers first: an event processed while this
runs could be counted twice."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from cdp.delivery.routing import RoutableEvent
from cdp.insights.models import Identity, MonthlyUsers, ObservedEvent, SourceHour, SourceMinute
from cdp.insights.observe import forget, record
from cdp.processing.models import Event


class Command(BaseCommand):
    help = "Rebuild events per hour/minute, the observed schema and monthly tracked users from the stored events."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=1000, help="Events per transaction (default 1000).")

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            for model in (SourceHour, SourceMinute, ObservedEvent, Identity, MonthlyUsers):
                model.objects.all().delete()  # observed fields go with their events
        forget()
        last, total = 0, 0
        while True:
            rows = list(
                Event.objects.filter(id__gt=last)
                .order_by("id")
                .values_list("id", "source_id", "message_id", "payload", "received_at")[: options["batch"]]
            )
            if not rows:
                break
            with transaction.atomic():
                record([RoutableEvent(*row) for row in rows], hold_fields=False)
            last, total = rows[-1][0], total + len(rows)
        self.stdout.write(f"Rebuilt the aggregates from {total} event(s).")
