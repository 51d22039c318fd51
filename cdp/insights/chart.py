"""A bar chart as plain numbers for an inline SVG drawn by a template: no chart library, nothing to
load, and every bar carries a title that says its hour and count (read out by screen readers and
shown on hover)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

WIDTH = 960
HEIGHT = 200
LEFT = 48  # room for the axis numbers
BOTTOM = 22  # room for the hour or day labels
TOP = 8


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    title: str


@dataclass
class Tick:
    position: float
    label: str


@dataclass
class BarChart:
    bars: list[Bar]
    y_ticks: list[Tick]
    x_labels: list[Tick]
    total: int
    peak: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    plot_height: int = HEIGHT - BOTTOM - TOP


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 × 10^n at least `value` (and at least 1), for a readable axis."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= max(value, 1):
                return step * factor
        step *= 10


def hourly_chart(points: list[tuple[datetime, int]], label: str) -> BarChart:
    """Bars for (hour start, count) points; `label` picks the x labels: "hours" (every 3 hours) or
    "days" (each midnight)."""

    def title(hour: datetime, count: int) -> str:
        end = hour + timedelta(hours=1)
        return f"{hour:%a %Y-%m-%d %H:%M}–{end:%H:%M} UTC: {_events(count)}"

    def axis(hour: datetime) -> str | None:
        if label == "hours":
            return f"{hour:%H}:00" if hour.hour % 3 == 0 else None
        return f"{hour:%a %d}" if hour.hour == 0 else None

    return bar_chart(points, title, axis, centred=label == "hours")


def minute_chart(points: list[tuple[datetime, int]]) -> BarChart:
    """Bars for the last hour's minutes, labelled every 10 minutes."""

    def title(minute: datetime, count: int) -> str:
        return f"{minute:%H:%M} UTC: {_events(count)}"

    def axis(minute: datetime) -> str | None:
        return f"{minute:%H:%M}" if minute.minute % 10 == 0 else None

    return bar_chart(points, title, axis, centred=True)


def bar_chart(
    points: list[tuple[datetime, int]],
    title: Callable[[datetime, int], str],
    axis: Callable[[datetime], str | None],
    centred: bool,
) -> BarChart:
    plot_width = WIDTH - LEFT
    plot_height = HEIGHT - BOTTOM - TOP
    peak = max((count for _, count in points), default=0)
    top = nice_ceiling(peak)
    slot = plot_width / max(len(points), 1)
    gap = min(2.0, slot * 0.2)
    bars, labels = [], []
    for index, (moment, count) in enumerate(points):
        height = plot_height * count / top
        x = LEFT + index * slot
        bars.append(Bar(round(x + gap / 2, 2), round(TOP + plot_height - height, 2), round(slot - gap, 2),
                        round(height, 2), count, title(moment, count)))  # fmt: skip
        text = axis(moment)
        if text is not None:
            labels.append(Tick(round(x + slot / 2 if centred else x, 2), text))
    shares = (0, 0.5, 1) if top % 2 == 0 else (0, 1)  # a middle line only where it is a whole number
    ticks = [Tick(round(TOP + plot_height * (1 - share), 2), _short(round(top * share))) for share in shares]
    return BarChart(bars, ticks, labels, sum(count for _, count in points), peak)


def as_json(chart: BarChart) -> dict[str, Any]:
    """What the live volume script needs to redraw the chart drawn by the same code."""
    return {
        "bars": [{"y": b.y, "height": b.height, "title": b.title, "count": b.count} for b in chart.bars],
        "yTicks": [{"position": t.position, "label": t.label} for t in chart.y_ticks],
        "xLabels": [{"position": t.position, "label": t.label} for t in chart.x_labels],
        "total": chart.total,
        "peak": chart.peak,
    }


def _events(count: int) -> str:
    return f"{count} event{'' if count == 1 else 's'}"


def _short(number: int) -> str:
    if number >= 1_000_000:
        return f"{number / 1_000_000:g}M"
    if number >= 1_000:
        return f"{number / 1_000:g}k"
    return str(number)
