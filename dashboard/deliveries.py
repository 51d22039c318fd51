"""Dashboard pages: a destination's delivery (metrics per window, recent deliveries and errors), its dead
letters with re-drive, replay, and the re-drive and replay jobs, followed live to the end.

What is accepted and what is done are the management API's: the filters and forms are validated by the
API's serializers, the work is cdp/delivery's (metrics.collect, redrive.dead_letters, jobs.start_*), so
the dashboard and the API never disagree on what a re-drive or a replay selects."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from cdp.api.delivery import RedriveSerializer, ReplaySerializer
from cdp.core.models import Destination, Membership, Source, Workspace
from cdp.delivery import jobs, redrive, replay
from cdp.delivery.engine import sender_for
from cdp.delivery.metrics import Window, collect
from cdp.delivery.models import Delivery, DeliveryAttempt, ErrorClass, Job, JobKind, JobStatus, Status
from cdp.delivery.redrive import Selection, dead_letters
from dashboard.access import destination_for, membership_for, require_edit
from dashboard.views import page_context

RECENT_DELIVERIES = 25
RECENT_ERRORS = 10
RECENT_JOBS = 5
PAGE_SIZE = 50
EVENT_NAME_CHOICES = 200
WINDOW_LABELS = {"10m": "10 min", "1h": "1 hour", "24h": "24 hours", "7d": "7 days"}
# The parts of a window's outcome bar: deliveries that finished, and events the destination did not get.
OUTCOMES = [("delivered", "Delivered"), ("failed", "Failed"), ("dead", "Dead-lettered"), ("filtered", "Filtered")]
FILTER_FIELDS = ("since", "until", "error_class", "event")
LOCAL_MINUTE = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> sends and shows


# --- the delivery page ---------------------------------------------------------------------------------


def duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s" if ms < 60_000 else f"{ms / 60_000:.1f} min"


def shown_request(request: Any) -> str:
    """An HTTP request as a message (request line, headers, body with JSON indented) rather than the stored
    summary, whose body is one escaped string; any other evidence (a warehouse's) as indented JSON."""
    if not isinstance(request, dict) or not {"method", "url"} <= request.keys():
        return json.dumps(request, indent=2, ensure_ascii=False, default=str)
    lines = [f"{request['method']} {request['url']}"]
    lines += [f"{name}: {value}" for name, value in (request.get("headers") or {}).items()]
    body = str(request.get("body") or "")
    size = request.get("body_bytes")
    try:
        body = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        if isinstance(size, int) and size > len(body.encode()):
            body += f"\n… (the first {len(body.encode())} of {size} bytes)"
    return "\n".join([*lines, "", body])


def with_shown_requests(attempts: Any) -> list[DeliveryAttempt]:
    found = list(attempts)
    for attempt in found:
        attempt.shown_request = shown_request(attempt.request)
    return found


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def share(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def window_charts(windows: dict[str, Window]) -> list[dict[str, Any]]:
    """Per window, the outcome bar (the shares of delivered, failed, dead-lettered and filtered) and the latency
    bars, scaled to the slowest p95 of all windows so they compare."""
    slowest = max((w.latency_ms[0.95] or 0 for w in windows.values()), default=0)
    charts = []
    for key, w in windows.items():
        counts = {
            "delivered": w.delivered, "failed": sum(w.failed.values()), "dead": sum(w.dead_lettered.values()),
            "filtered": sum(w.filtered.values()),
        }  # fmt: skip
        whole = sum(counts.values())
        p50, p95 = w.latency_ms[0.5], w.latency_ms[0.95]
        charts.append({
            "label": WINDOW_LABELS[key], "total": whole,
            "bar": [{"key": k, "label": label, "count": counts[k], "percent": share(counts[k], whole)}
                    for k, label in OUTCOMES if counts[k]],
            "p50": duration(p50), "p95": duration(p95),
            "p50_width": share(p50 or 0, slowest), "p95_width": share(p95 or 0, slowest),
        })  # fmt: skip
    return charts


def figure_rows(windows: list[Window]) -> list[dict[str, Any]]:
    """The table under the charts: one row per figure, reasons under their total, a cell per window."""

    def row(key: str, label: str, values: list[int], reason: bool = False) -> dict[str, Any]:
        return {"key": key, "label": label, "values": values, "reason": reason}

    rows = [
        row("delivered", "Delivered", [w.delivered for w in windows]),
        row("retried", "Retried (attempts that failed and wait for another try)", [w.retried for w in windows]),
    ]
    for key, label, attribute in [
        ("failed", "Failed permanently", "failed"),
        ("dead", "Dead-lettered", "dead_lettered"),
        ("filtered", "Filtered (not sent)", "filtered"),
    ]:
        counters = [getattr(w, attribute) for w in windows]
        rows.append(row(key, label, [sum(c.values()) for c in counters]))
        reasons = sorted({reason for counter in counters for reason in counter})
        rows += [row(f"{key}-{r}", reason_label(r), [c[r] for c in counters], reason=True) for r in reasons]
    return rows


REASON_LABELS = {
    **dict(ErrorClass.choices),
    "destination_disabled": "Destination disabled",
    "integrations_off": "Turned off by the event's integrations",
    "no_trigger_matched": "No trigger matched",
    "unknown": "Unknown",
}


def reason_label(reason: str) -> str:
    return REASON_LABELS.get(reason, reason.replace("_", " ").capitalize())


@login_required
@require_GET
def destination_delivery(request: HttpRequest, slug: str, destination_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    destination = destination_for(membership, destination_id)
    found = collect([destination.pk])[destination.pk]
    deliveries = Delivery.objects.filter(destination=destination)
    recent = deliveries.defer("payload").order_by("-id")[:RECENT_DELIVERIES]
    errors = (
        DeliveryAttempt.objects.filter(delivery__destination=destination)
        .exclude(outcome="delivered")
        .select_related("delivery", "exchange")  # the request and response live on the exchange
        .defer("delivery__payload")
        .order_by("-id")[:RECENT_ERRORS]
    )
    context = page_context(
        membership,
        nav="destinations",
        destination=destination,
        tab="delivery",
        metrics=found,
        charts=window_charts(found.windows),
        outcome_legend=OUTCOMES,
        figures=figure_rows(list(found.windows.values())),
        dead_count=deliveries.filter(status=Status.DEAD).count(),
        recent=recent,
        errors=with_shown_requests(errors),
        jobs=job_summaries(Job.objects.filter(destination=destination)[:RECENT_JOBS], membership.workspace),
        can_load=can_load(destination),
    )
    return render(request, "dashboard/deliveries/delivery.html", context)


# --- dead letters --------------------------------------------------------------------------------------


@dataclass
class Filters:
    """Dead-letter filters as typed (to show them again), the selection they make, and what is wrong."""

    raw: dict[str, str]
    selection: Selection
    errors: dict[str, list[str]]

    @property
    def query(self) -> str:
        return urlencode({key: value for key, value in self.raw.items() if value})


def read_filters(data: Any, destination: Destination, request: HttpRequest) -> Filters:
    """Validated by the API's re-drive serializer, so a filter means the same in both places."""
    raw = {key: data.get(key, "").strip() for key in FILTER_FIELDS}
    given = {key: value for key, value in raw.items() if value}
    serializer = RedriveSerializer(data={"destination": destination.pk, **given}, context={"request": request})
    if not serializer.is_valid():
        errors = {key: [str(message) for message in value] for key, value in serializer.errors.items()}
        return Filters(raw, Selection(destination=destination.pk), errors)
    valid = serializer.validated_data
    selection = Selection(
        destination=destination.pk, since=valid.get("since"), until=valid.get("until"),
        error_class=valid.get("error_class", ""), event=valid.get("event", ""),
    )  # fmt: skip
    return Filters(raw, selection, {})


def quick_ranges(now: datetime) -> list[tuple[str, str]]:
    return [(label, (now - span).strftime(LOCAL_MINUTE)) for label, span in [
        ("Last hour", timedelta(hours=1)), ("Last 24 hours", timedelta(hours=24)), ("Last 7 days", timedelta(days=7)),
    ]]  # fmt: skip


@login_required
@require_GET
def destination_dead_letters(request: HttpRequest, slug: str, destination_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    destination = destination_for(membership, destination_id)
    filters = read_filters(request.GET, destination, request)
    rows: QuerySet[Delivery] = dead_letters(destination.workspace_id, filters.selection)
    page = None
    if not filters.errors:
        page = Paginator(rows.defer("payload").order_by("-finished_at", "-id"), PAGE_SIZE).get_page(
            request.GET.get("page")
        )
    all_dead = Delivery.objects.filter(destination=destination, status=Status.DEAD)
    context = page_context(
        membership,
        nav="destinations",
        destination=destination,
        tab="delivery",
        filters=filters,
        page=page,
        any_dead=page is not None and page.paginator.count > 0 or all_dead.exists(),
        error_classes=ErrorClass.choices,
        event_names=all_dead.order_by("event_name")
        .values_list("event_name", flat=True)
        .distinct()[:EVENT_NAME_CHOICES],
        quick_ranges=quick_ranges(timezone.now()),
    )
    return render(request, "dashboard/deliveries/dead_letters.html", context)


@login_required
@require_GET
def dead_letter(request: HttpRequest, slug: str, destination_id: int, delivery_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    destination = destination_for(membership, destination_id)
    delivery = get_object_or_404(Delivery, pk=delivery_id, destination=destination)
    context = page_context(
        membership,
        nav="destinations",
        destination=destination,
        tab="delivery",
        delivery=delivery,
        attempts=with_shown_requests(delivery.attempts_made.select_related("exchange").order_by("number", "id")),
    )
    return render(request, "dashboard/deliveries/dead_letter.html", context)


@login_required
@require_POST
def dead_letter_redrive(request: HttpRequest, slug: str, destination_id: int) -> HttpResponse:
    """One dead letter (`delivery` given) at once, or every one the filters match as a job at the capped rate."""
    membership = membership_for(request.user, slug)
    destination = destination_for(membership, destination_id)
    require_edit(membership, "re-drive dead letters")
    workspace_id = destination.workspace_id
    one = request.POST.get("delivery", "")
    if one:
        if not one.isdigit():
            raise Http404("No such dead letter.")
        delivery = get_object_or_404(Delivery, pk=int(one), destination=destination)
        if delivery.status != Status.DEAD:
            messages.warning(request, f"Delivery #{delivery.pk} is no longer dead-lettered (it is {delivery.status}).")
            return redirect("dashboard:destination-dead-letters", slug=slug, destination_id=destination.pk)
        selection = Selection(destination=destination.pk, delivery=delivery.pk)
        job = jobs.start_redrive(workspace_id, selection, user=request.user, via="dashboard", inline=True)
        messages.success(request, f"Dead letter #{delivery.pk} was re-driven.")
        return redirect("dashboard:job", slug=slug, job_id=job.pk)
    filters = read_filters(request.POST, destination, request)
    if filters.errors:
        messages.error(request, "Nothing was re-driven: fix the filters first.")
        url = reverse("dashboard:destination-dead-letters", kwargs={"slug": slug, "destination_id": destination.pk})
        return redirect(f"{url}?{filters.query}")
    job = jobs.start_redrive(workspace_id, filters.selection, user=request.user, via="dashboard")
    messages.success(request, f"Re-driving {plural(job.total, 'dead letter')}.")
    return redirect("dashboard:job", slug=slug, job_id=job.pk)


# --- replay --------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def destination_replay(request: HttpRequest, slug: str, destination_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    destination = destination_for(membership, destination_id)
    connected = list(destination.sources.order_by("name"))
    sources = connected or list(Source.objects.filter(workspace=membership.workspace).order_by("name"))
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        require_edit(membership, "replay events")
        values = {key: request.POST.get(key, "").strip() for key in ("source", "since", "until")}
        given = {key: value for key, value in values.items() if value}
        serializer = ReplaySerializer(data=given, context={"destination": destination})
        if serializer.is_valid():
            data = serializer.validated_data
            job = jobs.start_replay(
                destination, data["source"].pk, data["since"], data["until"], user=request.user, via="dashboard"
            )
            messages.success(request, f"Replaying {plural(job.total, 'event')} to {destination.name}.")
            return redirect("dashboard:job", slug=slug, job_id=job.pk)
        errors = {key: [str(message) for message in value] for key, value in serializer.errors.items()}
    else:
        first = str(sources[0].pk) if len(sources) == 1 else ""
        since = (timezone.now() - timedelta(hours=24)).strftime(LOCAL_MINUTE)
        values = {"source": first, "since": since, "until": ""}
    context = page_context(
        membership,
        nav="destinations",
        destination=destination,
        tab="delivery",
        sources=sources,
        connected=bool(connected),
        values=values,
        errors=errors,
        general_errors=errors.get("destination", []) + errors.get("non_field_errors", []),
    )
    return render(request, "dashboard/deliveries/replay.html", context, status=400 if errors else 200)


# --- load now ------------------------------------------------------------------------------------------


def can_load(destination: Destination) -> bool:
    """Whether "Load now" means something: the destination sends batches that wait to fill up."""
    sender = sender_for(destination.type)
    return bool(sender and sender.takes_batches(destination) and destination.batch_wait_seconds > 0)


@login_required
@require_POST
def destination_load(request: HttpRequest, slug: str, destination_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    destination = destination_for(membership, destination_id)
    require_edit(membership, "start a load")
    if not destination.enabled:
        messages.error(request, "Enable the destination first: a disabled destination sends nothing.")
        return redirect("dashboard:destination-delivery", slug=slug, destination_id=destination.pk)
    job = jobs.start_load(destination, user=request.user, via="dashboard")
    messages.success(request, f"Loading {plural(job.total, 'waiting event')} into {destination.name} now.")
    return redirect("dashboard:job", slug=slug, job_id=job.pk)


# --- jobs ----------------------------------------------------------------------------------------------

RESULT_LABELS = {
    redrive.REDRIVEN: "Re-driven: pending again",
    redrive.MAPPING_FAILED: "Mapping failed: failed permanently",
    redrive.NO_LONGER_MATCHES: "Trigger no longer matches: left dead-lettered",
    redrive.SUBSCRIPTION_DELETED: "Subscription deleted: left dead-lettered",
    redrive.SUBSCRIPTION_DISABLED: "Subscription disabled: left dead-lettered",
    redrive.EVENT_DELETED: "Stored event deleted: left dead-lettered",
    redrive.NO_LONGER_DEAD: "No longer dead-lettered when reached",
    "left_the_selection": "Left the selection before the job reached them",
    "delivered": "Delivered",
    "retrying": "Failed, waiting for a retry",
    "failed": "Failed permanently",
    "dead": "Dead-lettered",
    "not_sent": "Not sent: the destination is not taking requests (circuit breaker open)",
    replay.CREATED: "Deliveries created",
    replay.EXISTING: "Already had a delivery: not sent again",
}
FINISHED = (JobStatus.DONE, JobStatus.FAILED)


@dataclass
class JobSummary:
    """A job as the pages and the progress endpoint show it."""

    job: Job
    selection: str

    @property
    def finished(self) -> bool:
        return self.job.status in FINISHED

    @property
    def percent(self) -> float:
        if not self.job.total:
            return 100.0 if self.finished else 0.0
        return share(self.job.done, self.job.total)

    @property
    def results(self) -> list[dict[str, Any]]:
        found = sorted(self.job.result.items(), key=lambda item: (-item[1], item[0]))
        return [{"key": key, "label": result_label(key), "count": count} for key, count in found]

    def as_json(self) -> dict[str, Any]:
        job = self.job
        return {
            "id": job.pk, "status": job.status, "status_label": job.get_status_display(), "finished": self.finished,
            "done": job.done, "total": job.total, "percent": self.percent, "results": self.results,
            "error": job.error, "started_at": moment(job.started_at), "finished_at": moment(job.finished_at),
        }  # fmt: skip


def result_label(key: str) -> str:
    return RESULT_LABELS.get(key) or f"Not routed: {reason_label(key).lower()}"


def moment(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else ""


def describe(job: Job, source_names: dict[int, str]) -> str:
    """The selection in words: which dead letters, or which events."""
    p = job.parameters
    if job.kind == JobKind.LOAD:
        return "Events waiting for the next batch, sent now"
    if job.kind == JobKind.REPLAY:
        source = source_names.get(p.get("source"), f"source #{p.get('source')}")
        return f"Events of {source} from {when(p.get('since'))} to {when(p.get('until'))}"
    parts = []
    if p.get("delivery"):
        parts.append(f"dead letter #{p['delivery']}")
    if p.get("error_class"):
        parts.append(f"error class {reason_label(p['error_class']).lower()}")
    if p.get("event"):
        parts.append(f"event “{p['event']}”")
    if p.get("since"):
        parts.append(f"dead-lettered since {when(p['since'])}")
    if p.get("until"):
        parts.append(f"before {when(p['until'])}")
    whose = f" of {job.destination.name}" if job.destination is not None else " of the workspace"
    return f"Dead letters{whose}: {', '.join(parts)}" if parts else f"All dead letters{whose}"


def when(iso: str | None) -> str:
    parsed = parse_datetime(iso) if iso else None
    return moment(parsed) if parsed is not None else "—"


def job_summaries(rows: Any, workspace: Workspace) -> list[JobSummary]:
    """Summaries of these jobs in two queries whatever their number (source names read in one)."""
    found = list(rows.select_related("destination", "created_by"))
    wanted = {job.parameters.get("source") for job in found if job.kind == JobKind.REPLAY}
    names = dict(Source.objects.filter(workspace=workspace, pk__in=wanted - {None}).values_list("pk", "name"))
    return [JobSummary(job, describe(job, names)) for job in found]


def job_for(membership: Membership, job_id: int) -> JobSummary:
    rows = Job.objects.filter(pk=job_id, workspace=membership.workspace)
    found = job_summaries(rows, membership.workspace)
    if not found:
        raise Http404("No such job.")
    return found[0]


@login_required
@require_GET
def job_list(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    rows = Job.objects.filter(workspace=membership.workspace).order_by("-created_at", "-id")
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context = page_context(
        membership, nav="destinations", page=page, jobs=job_summaries(page.object_list, membership.workspace)
    )
    return render(request, "dashboard/deliveries/jobs.html", context)


@login_required
@require_GET
def job_detail(request: HttpRequest, slug: str, job_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    summary = job_for(membership, job_id)
    return render(
        request, "dashboard/deliveries/job.html", page_context(membership, nav="destinations", summary=summary)
    )


@login_required
@require_GET
def job_progress(request: HttpRequest, slug: str, job_id: int) -> JsonResponse:
    """What the job page polls every second until the job is finished."""
    membership = membership_for(request.user, slug)
    response = JsonResponse(job_for(membership, job_id).as_json())
    response["Cache-Control"] = "no-store"
    return response


_DELIVERY = "w/<slug:slug>/destinations/<int:destination_id>/delivery/"

urlpatterns: list[URLPattern] = [
    path(_DELIVERY, destination_delivery, name="destination-delivery"),
    path(_DELIVERY + "dead-letters/", destination_dead_letters, name="destination-dead-letters"),
    path(_DELIVERY + "dead-letters/<int:delivery_id>/", dead_letter, name="dead-letter"),
    path(_DELIVERY + "dead-letters/redrive/", dead_letter_redrive, name="dead-letter-redrive"),
    path(_DELIVERY + "replay/", destination_replay, name="destination-replay"),
    path(_DELIVERY + "load/", destination_load, name="destination-load"),
    path("w/<slug:slug>/jobs/", job_list, name="jobs"),
    path("w/<slug:slug>/jobs/<int:job_id>/", job_detail, name="job"),
    path("w/<slug:slug>/jobs/<int:job_id>/progress/", job_progress, name="job-progress"),
]
