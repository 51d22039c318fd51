"""Reading the volume aggregates: events per hour (the overview chart, the 24-hour counts) and per
minute (a source's live volume), and the month's tracked users. Each read is one small query over
the aggregate tables, whatever the number of events."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Sum

from cdp.insights.models import MonthlyUsers, SourceHour, SourceMinute

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def last_hours(now: datetime, hours: int) -> list[datetime]:
    """The starts of the last `hours` hourly buckets, oldest first, the current (partial) hour last."""
    current = hour_of(now)
    return [current - HOUR * back for back in range(hours - 1, -1, -1)]


def hourly(source_ids: Collection[int], now: datetime, hours: int) -> list[tuple[datetime, int]]:
    """(hour, events received) for the last `hours` hours of these sources together, zero-filled."""
    buckets = last_hours(now, hours)
    rows = (
        SourceHour.objects.filter(source_id__in=list(source_ids), hour__gte=buckets[0])
        .order_by()
        .values("hour")
        .annotate(total=Sum("count"))
        .values_list("hour", "total")
    )
    counts = dict(rows)
    return [(hour, counts.get(hour, 0)) for hour in buckets]


def per_source(source_ids: Collection[int], now: datetime, hours: int = 24) -> dict[int, int]:
    """Events received per source in the last `hours` hourly buckets (the current one included)."""
    since = last_hours(now, hours)[0]
    rows = (
        SourceHour.objects.filter(source_id__in=list(source_ids), hour__gte=since)
        .order_by()
        .values("source_id")
        .annotate(total=Sum("count"))
        .values_list("source_id", "total")
    )
    return dict(rows)


@dataclass
class MinuteCount:
    minute: datetime
    count: int


def per_minute(source_id: int, now: datetime) -> list[MinuteCount]:
    """Events received per minute over the last hour (60 minutes, the current one last), zero-filled."""
    current = now.replace(second=0, microsecond=0)
    first = current - MINUTE * 59
    rows = SourceMinute.objects.filter(source_id=source_id, minute__gte=first, minute__lte=current)
    counts = dict(rows.values_list("minute", "count"))
    return [MinuteCount(first + MINUTE * n, counts.get(first + MINUTE * n, 0)) for n in range(60)]


def monthly_users(workspace_id: int, now: datetime) -> MonthlyUsers:
    """This month's tracked users of the workspace (zero when nothing was seen yet)."""
    month = date(now.year, now.month, 1)
    found = MonthlyUsers.objects.filter(workspace_id=workspace_id, month=month).first()
    return found or MonthlyUsers(workspace_id=workspace_id, month=month)
