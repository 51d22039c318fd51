from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet, TextField, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, NullIf
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST, require_safe

from cdp.core import audit
from cdp.core.models import Membership, Source, SourceKind, Workspace
from cdp.insights import chart, schema, volume
from cdp.insights.health import delivery_health
from cdp.processing.models import Event
from dashboard import snippets
from dashboard.access import can_edit, can_manage_keys, membership_for, source_for
from dashboard.forms import SourceForm

RECENT_EVENTS = 20


def recent_events(events: QuerySet[Event]) -> QuerySet[Event]:
    """The latest events with a one-word label each (event name, page name or group id), without payloads."""
    label = Coalesce(
        NullIf("event", Value("")), KT("payload__name"), KT("payload__groupId"), Value(""), output_field=TextField()
    )
    return (
        events.select_related("source")
        .only(
            "type",
            "event",
            "user_id",
            "anonymous_id",
            "timestamp",
            "received_at",
            "source__name",
            "source__workspace_id",
        )
        .annotate(label=label)
        .order_by("-id")[:RECENT_EVENTS]
    )


def sources_with_counts(workspace: Workspace) -> list[Source]:
    """The workspace's sources, each with `events_24h` from the hourly counts (never the events table)."""
    sources = list(workspace.sources.order_by("name"))
    counts = volume.per_source([s.pk for s in sources], timezone.now()) if sources else {}
    for source in sources:
        source.events_24h = counts.get(source.pk, 0)
    return sources


def ago(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if timezone.now() - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment)} ago"


def page_context(membership: Membership, **extra: object) -> dict[str, object]:
    return {
        "membership": membership,
        "workspace": membership.workspace,
        "can_edit": can_edit(membership),
        "can_manage_keys": can_manage_keys(membership),
        **extra,
    }


@login_required
def home(request: HttpRequest) -> HttpResponse:
    memberships = list(
        Membership.objects.filter(user=request.user)
        .select_related("workspace")
        .annotate(source_count=Count("workspace__sources"))
        .order_by("workspace__name")
    )
    if len(memberships) == 1:
        return redirect("dashboard:workspace", slug=memberships[0].workspace.slug)
    return render(request, "dashboard/home.html", {"memberships": memberships})


@login_required
@require_safe
def workspace(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    sources = sources_with_counts(membership.workspace)
    context = page_context(
        membership,
        nav="workspace",
        sources=sources,
        recent_events=recent_events(Event.objects.filter(source__workspace=membership.workspace)),
        events_24h=sum(s.events_24h for s in sources),
        enabled_sources=sum(1 for s in sources if s.enabled),
    )
    if sources:
        now = timezone.now()
        week = volume.hourly([s.pk for s in sources], now, hours=24 * 7)
        context.update(
            chart_day=chart.hourly_chart(week[-24:], label="hours"),
            chart_week=chart.hourly_chart(week, label="days"),
            health=delivery_health(membership.workspace, now=now),
            mtu=volume.monthly_users(membership.workspace.pk, now),
            month=now,
        )
    return render(request, "dashboard/workspace.html", context)


@login_required
@require_safe
def sources(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    context = page_context(membership, nav="sources", sources=sources_with_counts(membership.workspace))
    return render(request, "dashboard/sources.html", context)


@login_required
def source_new(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    if not can_edit(membership):
        raise PermissionDenied("Read-only members cannot add sources; ask an owner or admin of this workspace.")
    form = SourceForm(request.POST or None, workspace=membership.workspace)
    if request.method == "POST" and form.is_valid():
        source = form.save()
        audit.record(request.user, membership.workspace, "source.created", target=source, via="dashboard")
        messages.success(request, f"Source “{source.name}” created. Install a snippet below to send its first event.")
        return redirect("dashboard:source", slug=slug, source_id=source.pk)
    return render(request, "dashboard/source_new.html", page_context(membership, nav="sources", form=form))


# Install snippets per source kind: the ones that fit first, the others after them.
_SNIPPET_ORDER = {
    SourceKind.WEBSITE: ["browser", "curl", "node", "python"],
    SourceKind.SERVER: ["python", "node", "curl", "browser"],
    SourceKind.MOBILE: ["swift", "kotlin", "curl", "python", "node", "browser"],
    SourceKind.OTHER: ["curl", "python", "node", "browser"],
}


def install_snippets(source: Source, origin: str) -> list[tuple[str, str, str, str]]:
    """(key, label, library, code) of the snippets for this source's kind, the fitting ones first."""
    mobile = {"write_key": source.write_key, "api_host": f"{origin.split('://', 1)[-1]}/v1"}
    makers = {
        "browser": ("Browser", "analytics.js", lambda: snippets.browser_snippet(source, origin)),
        "python": ("Python", "segment-analytics-python", lambda: snippets.python_snippet(source, origin)),
        "node": ("Node.js", "@segment/analytics-node", lambda: snippets.node_snippet(source, origin)),
        "curl": ("curl", "plain HTTP", lambda: snippets.curl_snippet(source, origin)),
        "swift": ("iOS", "analytics-swift", lambda: render_to_string("dashboard/source/swift.txt", mobile).strip()),
        "kotlin": (
            "Android",
            "analytics-kotlin",
            lambda: render_to_string("dashboard/source/kotlin.txt", mobile).strip(),
        ),
    }
    order = _SNIPPET_ORDER.get(source.kind, _SNIPPET_ORDER[SourceKind.OTHER])
    return [(key, makers[key][0], makers[key][1], makers[key][2]()) for key in order]


@login_required
@require_safe
def source_detail(request: HttpRequest, slug: str, source_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    source = source_for(membership, source_id)
    origin = snippets.server_origin(request)
    events = list(recent_events(source.events.all()))
    context = page_context(
        membership,
        nav="sources",
        source=source,
        origin=origin,
        snippets=install_snippets(source, origin),
        recent_events=events,
        events_24h=volume.per_source([source.pk], timezone.now()).get(source.pk, 0),
        # The newest stored event is the latest one received, give or take a processing batch.
        last_received=ago(events[0].received_at) if events else "",
    )
    return render(request, "dashboard/source_detail.html", context)


@login_required
@require_safe
def source_volume(request: HttpRequest, slug: str, source_id: int) -> JsonResponse:
    """Events per minute over the last hour, polled by the source page every few seconds."""
    membership = membership_for(request.user, slug)
    source = source_for(membership, source_id)
    now = timezone.now()
    minutes = volume.per_minute(source.pk, now)
    drawn = chart.minute_chart([(m.minute, m.count) for m in minutes])
    return JsonResponse({"at": now.isoformat(), "lastMinute": minutes[-1].count, **chart.as_json(drawn)})


@login_required
@require_safe
def source_schema(request: HttpRequest, slug: str, source_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    source = source_for(membership, source_id)
    query = request.GET.get("q", "").strip()
    events = schema.events_of(source.pk)
    if query:
        events = [event for event in events if schema.matches(event, query)]
    context = page_context(
        membership,
        nav="sources",
        source=source,
        events=events,
        query=query,
        limits={"depth": schema.MAX_DEPTH, "events": schema.MAX_EVENTS, "fields": schema.MAX_FIELDS},
        events_full=len(events) >= schema.MAX_EVENTS and not query,
    )
    return render(request, "dashboard/source/schema.html", context)


@login_required
@require_POST
def rotate_key(request: HttpRequest, slug: str, source_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    source = source_for(membership, source_id)
    if not can_manage_keys(membership):
        raise PermissionDenied("Only owners and admins of this workspace can rotate write keys.")
    source.rotate_write_key()
    audit.record(request.user, membership.workspace, "source.key_rotated", target=source, via="dashboard")
    messages.success(request, "The write key was rotated. Clients still using the old key are refused within a second.")
    return redirect("dashboard:source", slug=slug, source_id=source.pk)
