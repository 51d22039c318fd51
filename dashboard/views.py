from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from cdp.core.models import Membership
from cdp.processing.models import Event
from dashboard import snippets
from dashboard.access import can_manage_keys, membership_for, source_for


@login_required
def home(request: HttpRequest) -> HttpResponse:
    memberships = list(
        Membership.objects.filter(user=request.user).select_related("workspace").order_by("workspace__name")
    )
    if len(memberships) == 1:
        return redirect("dashboard:workspace", slug=memberships[0].workspace.slug)
    return render(request, "dashboard/home.html", {"memberships": memberships})


@login_required
def workspace(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    since = timezone.now() - timedelta(hours=24)
    sources = list(
        membership.workspace.sources.annotate(
            events_24h=Count("events", filter=Q(events__received_at__gte=since))
        ).order_by("name")
    )
    recent = (
        Event.objects.filter(source__workspace=membership.workspace)
        .select_related("source")
        .only("type", "event", "user_id", "anonymous_id", "timestamp", "source__name")
        .order_by("-id")[:20]
    )
    context = {
        "membership": membership,
        "workspace": membership.workspace,
        "sources": sources,
        "recent_events": recent,
        "events_24h": sum(s.events_24h for s in sources),
    }
    return render(request, "dashboard/workspace.html", context)


@login_required
def sources(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    rows = membership.workspace.sources.order_by("name")
    return render(
        request,
        "dashboard/sources.html",
        {"membership": membership, "workspace": membership.workspace, "sources": rows},
    )


@login_required
def source_detail(request: HttpRequest, slug: str, source_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    source = source_for(membership, source_id)
    origin = snippets.server_origin(request)
    context = {
        "membership": membership,
        "workspace": membership.workspace,
        "source": source,
        "can_manage_keys": can_manage_keys(membership),
        "origin": origin,
        "snippets": [
            ("browser", "Browser (analytics.js)", snippets.browser_snippet(source, origin)),
            ("python", "Python", snippets.python_snippet(source, origin)),
            ("node", "Node.js", snippets.node_snippet(source, origin)),
            ("curl", "HTTP (curl)", snippets.curl_snippet(source, origin)),
        ],
        "recent_events": source.events.order_by("-id")[:20],
    }
    return render(request, "dashboard/source_detail.html", context)


@login_required
@require_POST
def rotate_key(request: HttpRequest, slug: str, source_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    source = source_for(membership, source_id)
    if not can_manage_keys(membership):
        return HttpResponseForbidden("Only owners and admins can rotate write keys.")
    source.rotate_write_key()
    messages.success(request, "The write key was rotated. The old key stops working within a second.")
    return redirect("dashboard:source", slug=slug, source_id=source.pk)
