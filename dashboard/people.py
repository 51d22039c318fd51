"""Dashboard pages: people (members, invitations, roles), workspace settings, personal API tokens and the
audit log. The rules themselves live in cdp.core.members, shared with the API."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from cdp.core import audit
from cdp.core import members as people
from cdp.core.models import ApiToken, AuditEntry, Invitation, Membership, Role
from dashboard.access import can_manage_members, membership_for
from dashboard.snippets import server_origin
from dashboard.views import page_context

AUDIT_PAGE_SIZE = 50
_NEW_LINK = "people.new_invitation_link"
_NEW_TOKEN = "people.new_token"


class InviteForm(forms.Form):
    email = forms.EmailField(required=False, help_text="Optional: a reminder of who the link is for.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args: Any, grantable: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(value, label) for value, label in Role.choices if value in grantable]
        self.fields["email"].widget.attrs["placeholder"] = "name@example.com"


class RenameForm(forms.Form):
    name = forms.CharField(max_length=200)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the workspace a name.")
        return name


class DeleteForm(forms.Form):
    confirm = forms.CharField(label="Type the workspace's slug to confirm")

    def __init__(self, *args: Any, slug: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slug = slug

    def clean_confirm(self) -> str:
        value = self.cleaned_data["confirm"].strip()
        if value != self.slug:
            raise forms.ValidationError(f"Type {self.slug} exactly to delete this workspace.")
        return value


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. “CI deploy” or “reporting script”.")


class SignUpForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        fields = ["username", "email"]


class AuditFilterForm(forms.Form):
    actor = forms.ChoiceField(required=False)
    action = forms.ChoiceField(required=False)
    target_type = forms.ChoiceField(required=False, label="Target")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, entries: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, column in (("actor", "actor_name"), ("action", "action"), ("target_type", "target_type")):
            values = entries.exclude(**{column: ""}).order_by(column).values_list(column, flat=True).distinct()
            self.fields[name].choices = [("", "Anyone" if name == "actor" else "All"), *((v, v) for v in values)]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", "Give a date on or after the “From” date.")
        return data


def _members_context(request: HttpRequest, membership: Membership, invite_form: InviteForm | None = None) -> dict:
    workspace = membership.workspace
    manager = can_manage_members(membership)
    rows = list(workspace.memberships.select_related("user").order_by("user__username"))
    owners = sum(1 for row in rows if row.role == Role.OWNER)
    grantable = people.roles_grantable_by(membership.role)
    for row in rows:
        row.changeable = people.can_change(membership, row) and not (row.role == Role.OWNER and owners == 1)
        row.removable = row.changeable or (row.pk == membership.pk and not (row.role == Role.OWNER and owners == 1))
    invitations = (
        list(
            workspace.invitations.select_related("invited_by")
            .filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())
            .order_by("-created_at")
        )
        if manager
        else []
    )
    return page_context(
        membership,
        nav="people",
        rows=rows,
        can_manage_members=manager,
        role_choices=[(value, label) for value, label in Role.choices if value in grantable],
        invite_form=invite_form or InviteForm(grantable=grantable),
        invitations=invitations,
        new_link=request.session.pop(_NEW_LINK, None),
    )


@login_required
@require_safe
def members(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    return render(request, "dashboard/people/members.html", _members_context(request, membership))


@login_required
@require_POST
def member_role(request: HttpRequest, slug: str, member_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    target = get_object_or_404(Membership.objects.select_related("user"), pk=member_id, workspace=membership.workspace)
    if not can_manage_members(membership):
        raise PermissionDenied("Only owners and admins of this workspace can change roles.")
    try:
        if people.change_role(membership, target, request.POST.get("role", ""), via="dashboard"):
            messages.success(request, f"{target.user.get_username()} is now {target.get_role_display().lower()}.")
    except people.NotAllowed as exc:
        raise PermissionDenied(str(exc)) from None
    except people.Refused as exc:
        messages.error(request, str(exc))
    return redirect("dashboard:members", slug=slug)


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str, member_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    target = get_object_or_404(Membership.objects.select_related("user"), pk=member_id, workspace=membership.workspace)
    try:
        people.remove_member(membership, target, via="dashboard")
    except people.NotAllowed as exc:
        raise PermissionDenied(str(exc)) from None
    except people.Refused as exc:
        messages.error(request, str(exc))
        return redirect("dashboard:members", slug=slug)
    if target.pk == membership.pk:
        messages.success(request, f"You left {membership.workspace.name}.")
        return redirect("dashboard:home")
    messages.success(request, f"{target.user.get_username()} was removed from this workspace.")
    return redirect("dashboard:members", slug=slug)


@login_required
@require_POST
def invitation_new(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    if not can_manage_members(membership):
        raise PermissionDenied("Only owners and admins of this workspace can invite people.")
    form = InviteForm(request.POST, grantable=people.roles_grantable_by(membership.role))
    if not form.is_valid():
        context = _members_context(request, membership, invite_form=form)
        return render(request, "dashboard/people/members.html", context, status=400)
    try:
        invitation, token = people.invite(
            membership, form.cleaned_data["role"], form.cleaned_data["email"], via="dashboard"
        )
    except people.NotAllowed as exc:
        raise PermissionDenied(str(exc)) from None
    link = server_origin(request) + reverse("dashboard:invitation-accept", args=[token])
    request.session[_NEW_LINK] = {"link": link, "email": invitation.email, "role": invitation.get_role_display()}
    return redirect("dashboard:members", slug=slug)


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, slug: str, invitation_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    invitation = get_object_or_404(Invitation, pk=invitation_id, workspace=membership.workspace)
    try:
        people.revoke_invitation(membership, invitation, via="dashboard")
        messages.success(request, "The invitation was revoked; its link no longer works.")
    except people.NotAllowed as exc:
        raise PermissionDenied(str(exc)) from None
    except people.Refused as exc:
        messages.error(request, str(exc))
    return redirect("dashboard:members", slug=slug)


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Open to anyone with the link: a logged-in user joins; a new person signs up here, then joins."""
    invitation = people.invitation_for(token)
    context: dict[str, Any] = {"invitation": invitation, "token": token}
    if invitation is None or invitation.status != "pending":
        context["problem"] = people.refusal(invitation) if invitation else "This invitation link is not valid."
        return render(
            request, "dashboard/people/invitation_accept.html", context, status=404 if not invitation else 410
        )
    try:
        if request.user.is_authenticated:
            existing = Membership.objects.filter(workspace=invitation.workspace, user=request.user).first()
            if request.method == "POST" and existing is None:
                return _join(request, token, request.user)
            context["existing"] = existing
            return render(request, "dashboard/people/invitation_accept.html", context)
        form = SignUpForm(request.POST or None, initial={"email": invitation.email})
        if request.method == "POST" and form.is_valid():
            with transaction.atomic():
                user = form.save()
                response = _join(request, token, user)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return response
    except people.Refused as exc:  # used or revoked between showing the page and sending the form
        context["problem"] = str(exc)
        return render(request, "dashboard/people/invitation_accept.html", context, status=410)
    context["form"] = form
    status = 400 if request.method == "POST" else 200
    return render(request, "dashboard/people/invitation_accept.html", context, status=status)


def _join(request: HttpRequest, token: str, user: Any) -> HttpResponse:
    membership = people.accept(token, user, via="dashboard")
    messages.success(request, f"Welcome to {membership.workspace.name}: you joined as {membership.get_role_display()}.")
    return redirect("dashboard:workspace", slug=membership.workspace.slug)


@login_required
def workspace_settings(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    form = RenameForm(request.POST or None, initial={"name": membership.workspace.name})
    status = 200
    if request.method == "POST":
        if not can_manage_members(membership):
            raise PermissionDenied("Only owners and admins of this workspace can rename it.")
        if form.is_valid():
            if people.rename_workspace(membership, form.cleaned_data["name"], via="dashboard"):
                messages.success(request, f"The workspace is now called “{membership.workspace.name}”.")
            return redirect("dashboard:workspace-settings", slug=slug)
        status = 400
    context = page_context(
        membership,
        nav="people",
        form=form,
        delete_form=DeleteForm(slug=slug),
        can_manage_members=can_manage_members(membership),
    )
    return render(request, "dashboard/people/workspace_settings.html", context, status=status)


@login_required
@require_POST
def workspace_delete(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    if membership.role != Role.OWNER:
        raise PermissionDenied("Only owners can delete this workspace.")
    delete_form = DeleteForm(request.POST, slug=slug)
    if not delete_form.is_valid():
        form = RenameForm(initial={"name": membership.workspace.name})
        context = page_context(membership, nav="people", form=form, delete_form=delete_form, can_manage_members=True)
        return render(request, "dashboard/people/workspace_settings.html", context, status=400)
    name = membership.workspace.name
    people.delete_workspace(membership, via="dashboard")
    messages.success(request, f"The workspace “{name}” and everything in it were deleted.")
    return redirect("dashboard:home")


def _own_tokens(request: HttpRequest) -> QuerySet[ApiToken]:
    """Active tokens first, newest first."""
    return ApiToken.objects.filter(user=request.user).order_by(F("revoked_at").asc(nulls_first=True), "-created_at")


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    rows = _own_tokens(request)
    context = {"tokens": rows, "form": TokenForm(), "new_token": request.session.pop(_NEW_TOKEN, None)}
    return render(request, "dashboard/people/tokens.html", context)


@login_required
@require_POST
def token_new(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST)
    if not form.is_valid():
        rows = _own_tokens(request)
        return render(request, "dashboard/people/tokens.html", {"tokens": rows, "form": form}, status=400)
    token, secret = people.issue_token(request.user, form.cleaned_data["name"], via="dashboard")
    request.session[_NEW_TOKEN] = {"name": token.name, "secret": secret}
    return redirect("dashboard:tokens")


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    if people.revoke_token(request.user, token, via="dashboard"):
        messages.success(request, f"The token “{token.name}” was revoked; requests using it are refused from now on.")
    return redirect("dashboard:tokens")


def _change_rows(changes: Any) -> list[tuple[str, Any, Any]]:
    """(field, before, after); a secret is masked whole, so it shows as masked on both sides."""
    if not isinstance(changes, dict):
        return []
    rows = []
    for field, value in changes.items():
        if isinstance(value, list) and len(value) == 2:
            rows.append((field, *value))
        else:
            rows.append((field, value, value) if value == audit.MASK else (field, None, value))
    return rows


@login_required
@require_safe
def audit_log(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    entries = AuditEntry.objects.filter(workspace=membership.workspace)
    form = AuditFilterForm(request.GET or None, entries=entries)
    if form.is_valid():
        data = form.cleaned_data
        for name, column in (("actor", "actor_name"), ("action", "action"), ("target_type", "target_type")):
            if data.get(name):
                entries = entries.filter(**{column: data[name]})
        if data.get("since"):
            entries = entries.filter(created_at__gte=_day_start(data["since"]))
        if data.get("until"):
            entries = entries.filter(created_at__lt=_day_start(data["until"]) + timedelta(days=1))
    elif form.is_bound:
        entries = entries.none()
    page = Paginator(entries.order_by("-created_at", "-id"), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    for entry in page:
        entry.change_rows = _change_rows(entry.changes)
    query = request.GET.copy()
    query.pop("page", None)
    context = page_context(
        membership, nav="audit", form=form, page=page, filtered=any(query.values()), query=query.urlencode()
    )
    return render(request, "dashboard/people/audit_log.html", context)


def _day_start(day: Any) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


urlpatterns: list[URLPattern] = [
    path("w/<slug:slug>/members/", members, name="members"),
    path("w/<slug:slug>/members/<int:member_id>/role/", member_role, name="member-role"),
    path("w/<slug:slug>/members/<int:member_id>/remove/", member_remove, name="member-remove"),
    path("w/<slug:slug>/invitations/new/", invitation_new, name="invitation-new"),
    path("w/<slug:slug>/invitations/<int:invitation_id>/revoke/", invitation_revoke, name="invitation-revoke"),
    path("invite/<str:token>/", invitation_accept, name="invitation-accept"),
    path("w/<slug:slug>/settings/", workspace_settings, name="workspace-settings"),
    path("w/<slug:slug>/settings/delete/", workspace_delete, name="workspace-delete"),
    path("w/<slug:slug>/audit-log/", audit_log, name="audit-log"),
    path("tokens/", tokens, name="tokens"),
    path("tokens/new/", token_new, name="token-new"),
    path("tokens/<int:token_id>/revoke/", token_revoke, name="token-revoke"),
]
