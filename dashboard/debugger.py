"""The live debugger and the event X-ray pages (the streams themselves are websockets, see
cdp/debugger/consumers.py; the X-ray report is cdp/debugger/xray.py, shared with the API)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_safe

from cdp.debugger.xray import xray
from cdp.processing.models import Event
from dashboard import snippets
from dashboard.access import destination_for, membership_for, source_for
from dashboard.views import page_context

MAX_MATCHES = 20
EVENT_TYPES = ["track", "identify", "page", "screen", "group", "alias"]
DELIVERY_STATUSES = ["pending", "retrying", "delivered", "failed", "dead"]


@login_required
@require_safe
def debugger_index(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    workspace = membership.workspace
    context = page_context(
        membership,
        nav="debugger",
        sources=workspace.sources.order_by("name"),
        destinations=workspace.destinations.order_by("name"),
    )
    return render(request, "dashboard/debugger_index.html", context)


@login_required
@require_safe
def source_debugger(request: HttpRequest, slug: str, source_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    source = source_for(membership, source_id)
    context = page_context(
        membership,
        nav="debugger",
        kind="source",
        event_types=EVENT_TYPES,
        target=source,
        ws_path=f"/ws/debug/sources/{source.pk}/",
        write_key=source.write_key,
        origin=snippets.server_origin(request),
        xray_lookup=reverse("dashboard:xray", kwargs={"slug": slug}) + f"?source={source.pk}&message_id=",
        event_xray=reverse("dashboard:event-xray", kwargs={"slug": slug, "event_id": 0}),
    )
    return render(request, "dashboard/debugger.html", context)


@login_required
@require_safe
def destination_debugger(request: HttpRequest, slug: str, destination_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    destination = destination_for(membership, destination_id)
    context = page_context(
        membership,
        nav="debugger",
        kind="destination",
        delivery_statuses=DELIVERY_STATUSES,
        target=destination,
        ws_path=f"/ws/debug/destinations/{destination.pk}/",
        event_xray=reverse("dashboard:event-xray", kwargs={"slug": slug, "event_id": 0}),
    )
    return render(request, "dashboard/debugger.html", context)


@login_required
@require_safe
def xray_lookup(request: HttpRequest, slug: str) -> HttpResponse:
    """Find an event by messageId; one match opens its X-ray."""
    membership = membership_for(request.user, slug)
    message_id = request.GET.get("message_id", "").strip()
    source = request.GET.get("source", "")
    matches: list[Event] = []
    if message_id:
        events = Event.objects.filter(source__workspace=membership.workspace, message_id=message_id)
        if source.isdigit():
            events = events.filter(source_id=int(source))
        matches = list(events.select_related("source").order_by("-id")[:MAX_MATCHES])
        if len(matches) == 1:
            return redirect("dashboard:event-xray", slug=slug, event_id=matches[0].pk)
    context = page_context(membership, nav="debugger", message_id=message_id, matches=matches)
    return render(request, "dashboard/xray_lookup.html", context)


@login_required
@require_safe
def event_xray(request: HttpRequest, slug: str, event_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    event = get_object_or_404(
        Event.objects.select_related("source"), pk=event_id, source__workspace=membership.workspace
    )
    return render(request, "dashboard/xray.html", page_context(membership, nav="debugger", report=xray(event)))
