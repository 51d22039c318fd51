"""Per-destination delivery metrics over sliding windows, computed with aggregate SQL from the delivery
records themselves, so they cannot drift from what the API and the dashboard show.

Per window (the last 10 minutes, hour, 24 hours and 7 days):
- delivered, failed permanently and dead-lettered: deliveries that reached that state in the window
  (`finished_at`), failed and dead-lettered by reason (the error class);
- retried: attempts in the window that failed and were scheduled for another try;
- filtered: events the destination did not get, by reason. They are counted per hour, so a window
  counts every hour it overlaps (the 10-minute window holds up to the last two hours);
- latency: p50 and p95 of `finished_at - received_at` of the deliveries delivered in the window.
Plus what is open now: deliveries pending and waiting for a retry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from cdp.delivery.models import OPEN_STATUSES, Delivery, DeliveryAttempt, FilteredCount, Status

WINDOWS: dict[str, timedelta] = {
    "10m": timedelta(minutes=10),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
LONGEST = max(WINDOWS.values())
QUANTILES = (0.5, 0.95)
_HOUR = timedelta(hours=1)


@dataclass
class Window:
    since: datetime
    delivered: int = 0
    retried: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    dead_lettered: Counter[str] = field(default_factory=Counter)
    filtered: Counter[str] = field(default_factory=Counter)
    latency_ms: dict[float, float | None] = field(default_factory=lambda: dict.fromkeys(QUANTILES))

    def as_dict(self) -> dict[str, Any]:
        def by_reason(counts: Counter[str]) -> dict[str, Any]:
            return {"total": sum(counts.values()), "by_reason": dict(sorted(counts.items()))}

        return {
            "since": self.since,
            "delivered": self.delivered,
            "retried": self.retried,
            "failed": by_reason(self.failed),
            "dead_lettered": by_reason(self.dead_lettered),
            "filtered": by_reason(self.filtered),
            "latency_ms": {f"p{round(q * 100)}": _round(v) for q, v in self.latency_ms.items()},
        }


@dataclass
class DestinationMetrics:
    windows: dict[str, Window]
    pending: int = 0
    retrying: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "open": {"pending": self.pending, "retrying": self.retrying},
            "windows": {name: window.as_dict() for name, window in self.windows.items()},
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def collect(destination_ids: Collection[int], now: datetime | None = None) -> dict[int, DestinationMetrics]:
    """The metrics of these destinations, in a handful of queries whatever their number."""
    now = now or timezone.now()
    ids = list(destination_ids)
    metrics = {
        pk: DestinationMetrics(windows={name: Window(now - span) for name, span in WINDOWS.items()}) for pk in ids
    }
    if not ids:
        return metrics
    _count_outcomes(ids, now, metrics)
    _count_retries(ids, now, metrics)
    _count_filtered(ids, now, metrics)
    _count_open(ids, metrics)
    if connection.vendor == "postgresql":
        _latencies_postgresql(ids, now, metrics)
    else:
        _latencies_by_rank(ids, now, metrics)
    return metrics


def _per_window(field_name: str, now: datetime) -> dict[str, Count]:
    """One count per window, in a single pass over the longest window's rows."""
    return {f"w_{name}": Count("id", filter=Q(**{f"{field_name}__gte": now - span})) for name, span in WINDOWS.items()}


def _count_outcomes(ids: list[int], now: datetime, metrics: dict[int, DestinationMetrics]) -> None:
    finished = Delivery.objects.filter(
        destination_id__in=ids,
        status__in=[Status.DELIVERED, Status.FAILED, Status.DEAD],
        finished_at__gte=now - LONGEST,
        finished_at__lte=now,
    )
    rows = (
        finished.order_by()
        .values("destination_id", "status", "error_class")
        .annotate(**_per_window("finished_at", now))
    )
    for row in rows:
        for name, window in metrics[row["destination_id"]].windows.items():
            count = row[f"w_{name}"]
            if row["status"] == Status.DELIVERED:
                window.delivered += count
            elif count:
                counts = window.failed if row["status"] == Status.FAILED else window.dead_lettered
                counts[row["error_class"] or "unknown"] += count


def _count_retries(ids: list[int], now: datetime, metrics: dict[int, DestinationMetrics]) -> None:
    retries = DeliveryAttempt.objects.filter(
        delivery__destination_id__in=ids, outcome="retry", started_at__gte=now - LONGEST, started_at__lte=now
    )
    rows = retries.order_by().values("delivery__destination_id").annotate(**_per_window("started_at", now))
    for row in rows:
        for name, window in metrics[row["delivery__destination_id"]].windows.items():
            window.retried += row[f"w_{name}"]


def _count_filtered(ids: list[int], now: datetime, metrics: dict[int, DestinationMetrics]) -> None:
    # An hourly bucket [hour, hour + 1h) overlaps the window [now - span, now] when hour > now - span - 1h.
    buckets = FilteredCount.objects.filter(destination_id__in=ids, hour__gt=now - LONGEST - _HOUR, hour__lte=now)
    per_window = {f"w_{name}": Sum("count", filter=Q(hour__gt=now - span - _HOUR)) for name, span in WINDOWS.items()}
    for row in buckets.order_by().values("destination_id", "reason").annotate(**per_window):
        for name, window in metrics[row["destination_id"]].windows.items():
            if row[f"w_{name}"]:
                window.filtered[row["reason"]] += row[f"w_{name}"]


def _count_open(ids: list[int], metrics: dict[int, DestinationMetrics]) -> None:
    rows = (
        Delivery.objects.filter(destination_id__in=ids, status__in=OPEN_STATUSES)
        .order_by()
        .values_list("destination_id", "status")
        .annotate(n=Count("id"))
    )
    for destination_id, status, count in rows:
        if status == Status.PENDING:
            metrics[destination_id].pending = count
        else:
            metrics[destination_id].retrying = count


def _delivered(ids: list[int], since: datetime, now: datetime) -> QuerySet:
    return (
        Delivery.objects.filter(
            destination_id__in=ids, status=Status.DELIVERED, finished_at__gte=since, finished_at__lte=now
        )
        .order_by()
        .values("destination_id", "received_at", "finished_at")
    )


def _latencies_postgresql(ids: list[int], now: datetime, metrics: dict[int, DestinationMetrics]) -> None:
    """percentile_cont, every window in one pass over the longest window's delivered rows."""
    inner, params = _delivered(ids, now - LONGEST, now).query.sql_with_params()
    fractions = ", ".join(repr(float(q)) for q in QUANTILES)
    latency = "(EXTRACT(EPOCH FROM (finished_at - received_at)) * 1000)::float8"
    percentiles = f"percentile_cont(ARRAY[{fractions}]::float8[]) WITHIN GROUP (ORDER BY {latency})"
    columns = ", ".join(f"{percentiles} FILTER (WHERE finished_at >= %s)" for _ in WINDOWS)
    sql = f"SELECT destination_id, {columns} FROM ({inner}) AS delivered GROUP BY destination_id"
    bounds = [now - span for span in WINDOWS.values()]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*bounds, *params])
        for destination_id, *per_window in cursor.fetchall():
            for window, values in zip(metrics[destination_id].windows.values(), per_window, strict=True):
                if values is not None:
                    window.latency_ms = dict(zip(QUANTILES, values, strict=True))


def _latencies_by_rank(ids: list[int], now: datetime, metrics: dict[int, DestinationMetrics]) -> None:
    """Databases without percentile_cont (SQLite): per window, number the delivered rows by latency
    with window functions and fetch only the two rows around each quantile's rank, then interpolate
    between them exactly as percentile_cont does. SQLite's date functions keep times to the millisecond,
    so latencies are whole milliseconds (rounded: julianday() is a float of days)."""
    latency = "ROUND((julianday(finished_at) - julianday(received_at)) * 86400000.0)"
    wanted = ", ".join(f"CAST((n - 1) * {q!r} AS INTEGER), CAST((n - 1) * {q!r} AS INTEGER) + 1" for q in QUANTILES)
    for window_name, span in WINDOWS.items():
        inner, params = _delivered(ids, now - span, now).query.sql_with_params()
        sql = f"""
            SELECT destination_id, position, n, latency FROM (
                SELECT destination_id, {latency} AS latency,
                       ROW_NUMBER() OVER (PARTITION BY destination_id ORDER BY {latency}) - 1 AS position,
                       COUNT(*) OVER (PARTITION BY destination_id) AS n
                FROM ({inner}) AS delivered
            ) AS ranked
            WHERE position IN ({wanted})
        """
        ranked: dict[int, tuple[int, dict[int, float]]] = {}
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for destination_id, position, n, value in cursor.fetchall():
                ranked.setdefault(destination_id, (n, {}))[1][position] = value
        for destination_id, (n, values) in ranked.items():
            metrics[destination_id].windows[window_name].latency_ms = {q: interpolate(values, n, q) for q in QUANTILES}


def interpolate(values: dict[int, float], n: int, fraction: float) -> float:
    """percentile_cont: the value at rank (n - 1) × fraction, linear between the two nearest rows."""
    rank = (n - 1) * fraction
    low = int(rank)
    high = min(low + 1, n - 1)
    return values[low] + (rank - low) * (values[high] - values[low])
