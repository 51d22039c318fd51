"""Pages not built yet: a plain page saying so, so the navigation always works."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard.access import membership_for
from dashboard.views import page_context


def placeholder(nav: str, title: str):  # noqa: ANN201
    @login_required
    def view(request: HttpRequest, slug: str) -> HttpResponse:
        membership = membership_for(request.user, slug)
        return render(request, "dashboard/placeholder.html", page_context(membership, nav=nav, title=title))

    return view
