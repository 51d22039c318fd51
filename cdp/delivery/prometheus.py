"""`GET /metrics`: the delivery metrics of every destination in the Prometheus text exposition format.

Windowed figures go out as gauges with a `window` label (they fall as time passes, so they are not
counters); compute rates in Prometheus from `window="10m"` or alert on them directly. With
CDP_METRICS_TOKEN set, scrapers must send `Authorization: Bearer <token>`; without it the endpoint is
open, for scrapers on a private network (see docs/configuration.md)."""

from __future__ import annotations

import hmac
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from cdp.core.models import Destination
from cdp.delivery.metrics import QUANTILES, DestinationMetrics, collect

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = dict[str, str]


@dataclass
class Family:
    name: str
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    def lines(self) -> Iterator[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        for labels, value in self.samples:
            rendered = ",".join(f'{key}="{escape(text)}"' for key, text in labels.items())
            yield f"{self.name}{{{rendered}}} {number(value)}"


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return str(value) if isinstance(value, int) else repr(float(value))


def families(destinations: list[Destination], metrics: dict[int, DestinationMetrics]) -> list[Family]:
    open_now = Family("cdp_delivery_open", "Deliveries waiting now: pending, or retrying (waiting for a next try).")
    outcomes = Family(
        "cdp_delivery_outcomes",
        "Deliveries that ended in the window: delivered, failed (permanently) or dead (dead-lettered), "
        "by reason (error class).",
    )
    retries = Family("cdp_delivery_retries", "Attempts in the window that failed and were scheduled for another try.")
    filtered = Family(
        "cdp_delivery_filtered", "Events the destination did not get, by reason, in the hours the window overlaps."
    )
    latency = Family(
        "cdp_delivery_latency_seconds",
        "End-to-end latency, from the event reaching the Tracking API to its delivery, of the deliveries "
        "delivered in the window (NaN when there were none).",
    )
    for destination in destinations:
        base = {
            "workspace": destination.workspace.slug,
            "destination_id": str(destination.pk),
            "destination": destination.name,
        }
        found = metrics[destination.pk]
        open_now.samples += [
            ({**base, "status": "pending"}, found.pending),
            ({**base, "status": "retrying"}, found.retrying),
        ]
        for window_name, window in found.windows.items():
            labels = {**base, "window": window_name}
            outcomes.samples.append(({**labels, "status": "delivered", "reason": ""}, window.delivered))
            for status, counts in (("failed", window.failed), ("dead", window.dead_lettered)):
                outcomes.samples += [({**labels, "status": status, "reason": r}, n) for r, n in sorted(counts.items())]
            retries.samples.append((labels, window.retried))
            filtered.samples += [({**labels, "reason": r}, n) for r, n in sorted(window.filtered.items())]
            for quantile in QUANTILES:
                value = window.latency_ms[quantile]
                seconds = math.nan if value is None else value / 1000
                latency.samples.append(({**labels, "quantile": repr(quantile)}, seconds))
    return [open_now, outcomes, retries, filtered, latency]


def render() -> str:
    destinations = list(Destination.objects.select_related("workspace").order_by("id"))
    metrics = collect([d.pk for d in destinations], timezone.now())
    return "".join(f"{line}\n" for family in families(destinations, metrics) for line in family.lines())


def authorized(request: HttpRequest) -> bool:
    token = settings.CDP_METRICS_TOKEN
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not authorized(request):
        response = HttpResponse(
            "Send `Authorization: Bearer <token>` with the token set in CDP_METRICS_TOKEN.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render(), content_type=CONTENT_TYPE)
