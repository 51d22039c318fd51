"""Delivery health per destination for the workspace overview, from the delivery metrics themselves
(cdp.delivery.metrics.collect), so the overview and the delivery pages cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cdp.core.models import Destination, Workspace
from cdp.delivery.metrics import collect

WINDOW = "24h"


@dataclass
class DestinationHealth:
    destination: Destination
    delivered: int
    failed: int
    dead_lettered: int
    success_rate: float | None  # percent of finished deliveries that were delivered; None: nothing finished
    p95_ms: float | None
    dead_letters_7d: int
    open: int

    @property
    def level(self) -> str:
        """ok, warn or bad, for the badge next to the success rate."""
        if self.success_rate is None:
            return "idle"
        if self.success_rate >= 99:
            return "ok"
        return "warn" if self.success_rate >= 90 else "bad"


def delivery_health(workspace: Workspace, now: datetime | None = None) -> list[DestinationHealth]:
    destinations = list(Destination.objects.filter(workspace=workspace).order_by("name"))
    metrics = collect([d.pk for d in destinations], now=now)
    rows = []
    for destination in destinations:
        m = metrics[destination.pk]
        window = m.windows[WINDOW]
        failed = sum(window.failed.values())
        dead = sum(window.dead_lettered.values())
        finished = window.delivered + failed + dead
        rows.append(
            DestinationHealth(
                destination=destination,
                delivered=window.delivered,
                failed=failed,
                dead_lettered=dead,
                success_rate=100.0 * window.delivered / finished if finished else None,
                p95_ms=window.latency_ms.get(0.95),
                dead_letters_7d=sum(m.windows["7d"].dead_lettered.values()),
                open=m.pending + m.retrying,
            )
        )
    return rows
