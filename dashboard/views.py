from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Q, QuerySet, TextField, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, NullIf
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from cdp.core.models import Membership, Source, Workspace
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
        .only("type", "event", "user_id", "anonymous_id", "timestamp", "source__name", "source__workspace_id")
        .annotate(label=label)
        .order_by("-id")[:RECENT_EVENTS]
    )


def sources_with_counts(workspace: Workspace) -> list[Source]:
    since = timezone.now() - timedelta(hours=24)
    return list(
        workspace.sources.annotate(events_24h=Count("events", filter=Q(events__received_at__gte=since))).order_by(
            "name"
        )
    )


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
    return render(request, "dashboard/workspace.html", context)


@login_required
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
        messages.success(request, f"Source “{source.name}” created. Install a snippet below to send its first event.")
        return redirect("dashboard:source", slug=slug, source_id=source.pk)
    return render(request, "dashboard/source_new.html", page_context(membership, nav="sources", form=form))


@login_required
def source_detail(request: HttpRequest, slug: str, source_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    source = source_for(membership, source_id)
    origin = snippets.server_origin(request)
    since = timezone.now() - timedelta(hours=24)
    activity = source.events.aggregate(
        events_24h=Count("id", filter=Q(received_at__gte=since)), last_received_at=Max("received_at")
    )
    context = page_context(
        membership,
        nav="sources",
        source=source,
        origin=origin,
        snippets=[
            ("browser", "Browser", "analytics.js", snippets.browser_snippet(source, origin)),
            ("python", "Python", "segment-analytics-python", snippets.python_snippet(source, origin)),
            ("node", "Node.js", "@segment/analytics-node", snippets.node_snippet(source, origin)),
            ("curl", "curl", "plain HTTP", snippets.curl_snippet(source, origin)),
        ],
        recent_events=recent_events(source.events.all()),
        events_24h=activity["events_24h"],
        last_received=ago(activity["last_received_at"]),
    )
    return render(request, "dashboard/source_detail.html", context)


@login_required
@require_POST
def rotate_key(request: HttpRequest, slug: str, source_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    source = source_for(membership, source_id)
    if not can_manage_keys(membership):
        raise PermissionDenied("Only owners and admins of this workspace can rotate write keys.")
    source.rotate_write_key()
    messages.success(request, "The write key was rotated. Clients still using the old key are refused within a second.")
    return redirect("dashboard:source", slug=slug, source_id=source.pk)
