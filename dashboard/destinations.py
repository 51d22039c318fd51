"""Dashboard pages: the destination catalog, adding a destination from its type's settings fields, and a
destination's settings page with enable/disable, a connection test and delete.

Settings are checked by `clean_settings` and the delivery options by the API serializer's limits, so the
dashboard and the API accept and refuse exactly the same things."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import transaction
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from cdp.api.destinations import DELIVERY_FIELDS, DestinationSerializer, audit_changes, audit_snapshot
from cdp.core import audit
from cdp.core.models import Destination, Membership, Role, Workspace
from cdp.delivery.models import Delivery, Status
from cdp.destinations import registry
from cdp.destinations.configuration import clean_settings, public_settings
from cdp.destinations.framework import DestinationType, SettingField
from cdp.destinations.services import create_destination
from dashboard.access import can_edit, destination_for, membership_for, require_edit
from dashboard.views import page_context

DELIVERY_LIMITS = DestinationSerializer.Meta.extra_kwargs
HEALTH_WINDOW = timedelta(hours=24)
SETTING_PREFIX = "setting_"
CLEAR_PREFIX = "clear_"


def can_delete_destinations(membership: Membership) -> bool:
    """Deleting a destination drops its subscriptions and delivery history: owners and admins only."""
    return membership.role in (Role.OWNER, Role.ADMIN)


# --- The settings form -------------------------------------------------------------------------------


def setting_field(spec: SettingField, is_set: bool) -> forms.Field:
    """A form field for one setting. Fields only turn text into values; whether a value is required or
    valid is decided by clean_settings, as for the API."""
    options: dict[str, Any] = {"label": spec.label, "help_text": spec.help, "required": False}
    if spec.secret:
        placeholder = "Set — leave empty to keep it" if is_set else ""
        widget = forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "new-password", "placeholder": placeholder}
        )
        return forms.CharField(widget=widget, strip=False, **options)
    if spec.type == "boolean":
        return forms.BooleanField(**options)
    if spec.type == "integer":
        return forms.IntegerField(**options)
    if spec.type == "number":
        return forms.FloatField(**options)
    if spec.type == "object":
        return forms.JSONField(widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}), **options)
    if spec.type == "text":
        return forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), **options)
    if spec.type == "select":
        choices = ([] if spec.required or spec.default else [("", "—")]) + [(c, c) for c in spec.choices]
        return forms.CharField(widget=forms.Select(choices=choices), **options)
    widget = forms.URLInput(attrs={"placeholder": "https://…"}) if spec.type == "url" else forms.TextInput()
    return forms.CharField(widget=widget, **options)


class DestinationForm(forms.ModelForm):
    """Name, sources, the type's settings and the delivery options of a new or existing destination."""

    class Meta:
        model = Destination
        fields = ["name", "sources", *DELIVERY_FIELDS]
        widgets = {
            "name": forms.TextInput(attrs={"placeholder": "e.g. Order webhook"}),
            "sources": forms.CheckboxSelectMultiple,
        }
        labels = {
            "max_in_flight": "Requests in flight",
            "rate_limit": "Rate limit (requests per second)",
            "batch_size": "Batch size",
            "batch_wait_seconds": "Batch wait (seconds)",
            "timeout_seconds": "Timeout (seconds)",
            "retry_hours": "Retry for (hours)",
        }

    def __init__(self, *args: Any, destination_type: DestinationType, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.destination_type = destination_type
        self.settings: dict[str, Any] = {}
        self.fields["sources"].queryset = self.instance.workspace.sources.order_by("name")
        self.fields["sources"].required = False
        self.fields["sources"].help_text = "None ticked: every source of the workspace, including ones added later."
        for name in DELIVERY_FIELDS:
            self._limit(name)
        stored = self.instance.settings if self.instance.pk else {}
        for spec in destination_type.settings:
            is_set = bool(stored.get(spec.key))
            field = self.fields[SETTING_PREFIX + spec.key] = setting_field(spec, is_set)
            if not spec.secret:
                field.initial = stored.get(spec.key, spec.default) if self.instance.pk else spec.default
            elif is_set:
                self.fields[CLEAR_PREFIX + spec.key] = forms.BooleanField(required=False, label="Remove")

    def _limit(self, name: str) -> None:
        field = self.fields[name]
        limits = DELIVERY_LIMITS.get(name, {})
        if "min_value" in limits:
            field.validators.append(MinValueValidator(limits["min_value"]))
            field.widget.attrs["min"] = limits["min_value"]
        if "max_value" in limits:
            field.validators.append(MaxValueValidator(limits["max_value"]))
            field.widget.attrs["max"] = limits["max_value"]

    def setting_rows(self) -> list[dict[str, Any]]:
        """What the template shows per setting: its field, whether it is required, and a Remove box for a
        secret that is set."""
        rows = []
        for spec in self.destination_type.settings:
            clear = self[CLEAR_PREFIX + spec.key] if CLEAR_PREFIX + spec.key in self.fields else None
            rows.append({"spec": spec, "field": self[SETTING_PREFIX + spec.key], "clear": clear})
        return rows

    def delivery_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in DELIVERY_FIELDS]

    def has_delivery_errors(self) -> bool:
        return any(name in self.errors for name in DELIVERY_FIELDS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        current = dict(self.instance.settings) if self.instance.pk else {}
        submitted: dict[str, Any] = {}
        for spec in self.destination_type.settings:
            name = SETTING_PREFIX + spec.key
            if name in self.errors:  # not even a value of the field's kind; already said next to it
                continue
            if spec.secret and cleaned.get(CLEAR_PREFIX + spec.key):
                current.pop(spec.key, None)
                submitted[spec.key] = ""
                continue
            value = cleaned.get(name)
            submitted[spec.key] = "" if value is None else value
        self.settings, errors = clean_settings(self.destination_type, submitted, current)
        labels = {spec.key: spec.label for spec in self.destination_type.settings}
        for key, problem in errors.items():
            if SETTING_PREFIX + key in self.fields and SETTING_PREFIX + key not in self.errors:
                self.add_error(SETTING_PREFIX + key, f"{labels[key]} {problem}.")
        return cleaned


# --- Pages -------------------------------------------------------------------------------------------


def delivery_health(destination_ids: list[int]) -> dict[int, dict[str, int]]:
    """Failures in the last 24 hours and deliveries waiting for a retry, per destination. Both counts
    only read failed or open rows through their indexes, never the delivered ones."""
    health = {pk: {"failed": 0, "retrying": 0} for pk in destination_ids}
    failed = (
        Delivery.objects.filter(
            destination_id__in=destination_ids,
            status__in=[Status.FAILED, Status.DEAD],
            finished_at__gte=timezone.now() - HEALTH_WINDOW,
        )
        .order_by()
        .values_list("destination_id")
        .annotate(n=Count("id"))
    )
    for pk, count in failed:
        health[pk]["failed"] = count
    retrying = (
        Delivery.objects.filter(destination_id__in=destination_ids, status=Status.RETRYING)
        .order_by()
        .values_list("destination_id")
        .annotate(n=Count("id"))
    )
    for pk, count in retrying:
        health[pk]["retrying"] = count
    return health


@login_required
@require_safe
def destinations(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    rows = list(membership.workspace.destinations.prefetch_related("sources").order_by("name", "id"))
    health = delivery_health([d.pk for d in rows])
    for destination in rows:
        destination.type_spec = registry.get(destination.type)
        destination.health = health[destination.pk]
    context = page_context(membership, nav="destinations", destinations=rows)
    return render(request, "dashboard/destinations/list.html", context)


@login_required
@require_safe
def destination_catalog(request: HttpRequest, slug: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    types = registry.all_types()
    configured = dict(
        membership.workspace.destinations.order_by()
        .values_list("type")
        .annotate(n=Count("id"))
        .values_list("type", "n")
    )
    cards = [{"type": t, "configured": configured.get(t.key, 0)} for t in types]
    categories = sorted({t.category for t in types})
    context = page_context(membership, nav="destinations", cards=cards, categories=categories)
    return render(request, "dashboard/destinations/catalog.html", context)


@login_required
def destination_new(request: HttpRequest, slug: str, type_key: str) -> HttpResponse:
    membership = membership_for(request.user, slug)
    dtype = registry.get(type_key)
    if dtype is None:
        raise Http404("No such destination type.")
    require_edit(membership, "add destinations")
    instance = Destination(workspace=membership.workspace, type=dtype.key, **dtype.delivery_defaults)
    form = DestinationForm(request.POST or None, instance=instance, destination_type=dtype)
    if request.method == "POST" and form.is_valid():
        destination = _create(request, membership.workspace, dtype, form)
        subscriptions = destination.subscriptions.count()
        messages.success(
            request,
            f"“{destination.name}” was added with {subscriptions} subscription{'s' if subscriptions != 1 else ''}. "
            "It is disabled: test the connection, then enable it to start sending events.",
        )
        return redirect("dashboard:destination", slug=slug, destination_id=destination.pk)
    context = page_context(membership, nav="destinations", form=form, dtype=dtype)
    return render(request, "dashboard/destinations/new.html", context)


@transaction.atomic
def _create(request: HttpRequest, workspace: Workspace, dtype: DestinationType, form: DestinationForm) -> Destination:
    data = form.cleaned_data
    destination = create_destination(
        workspace, name=data["name"], type_key=dtype.key, settings=form.settings, user=request.user
    )
    for name in DELIVERY_FIELDS:
        setattr(destination, name, data[name])
    destination.save(update_fields=[*DELIVERY_FIELDS, "updated_at"])
    destination.sources.set(data["sources"])
    changes = audit_changes(dtype, {}, audit_snapshot(destination))
    audit.record(request.user, workspace, "destination.created", target=destination, changes=changes, via="dashboard")
    return destination


@login_required
def destination(request: HttpRequest, slug: str, destination_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    found = destination_for(membership, destination_id)
    dtype = registry.get(found.type)
    if request.method == "POST":
        require_edit(membership, "change destinations")
        if dtype is None:
            raise Http404("This destination's type is not installed.")
    form = None
    if dtype is not None and can_edit(membership):
        form = DestinationForm(request.POST or None, instance=found, destination_type=dtype)
        if request.method == "POST" and form.is_valid():
            _save(request, found, dtype, form)
            request.session.pop(_test_key(found), None)  # it tried the settings as they were
            messages.success(request, "Settings saved.")
            return redirect("dashboard:destination", slug=slug, destination_id=found.pk)
    context = page_context(
        membership,
        nav="destinations",
        tab="settings",
        destination=found,
        dtype=dtype,
        form=form,
        settings_shown=_settings_shown(dtype, found),
        sources=list(found.sources.order_by("name")),
        subscriptions=found.subscriptions.count(),
        connection=request.session.get(_test_key(found)),
        can_delete=can_delete_destinations(membership),
    )
    return render(request, "dashboard/destinations/detail.html", context)


def _settings_shown(dtype: DestinationType | None, found: Destination) -> list[tuple[str, Any]]:
    """The settings as read-only members see them: secrets only say whether they are set."""
    shown = {
        key: json.dumps(value) if isinstance(value, dict | list) else value
        for key, value in public_settings(dtype, found.settings).items()
    }
    if dtype is None:
        return sorted(shown.items())
    return [(spec.label, shown.get(spec.key)) for spec in dtype.settings]


@transaction.atomic
def _save(request: HttpRequest, found: Destination, dtype: DestinationType, form: DestinationForm) -> None:
    before = audit_snapshot(Destination.objects.select_for_update().get(pk=found.pk))
    destination = form.save(commit=False)
    destination.settings = form.settings
    destination.save()
    form.save_m2m()
    changes = audit_changes(dtype, before, audit_snapshot(destination))
    if changes:
        audit.record(
            request.user, destination.workspace, "destination.updated", target=destination, changes=changes,
            via="dashboard",
        )  # fmt: skip


@login_required
@require_POST
def destination_toggle(request: HttpRequest, slug: str, destination_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    found = destination_for(membership, destination_id)
    require_edit(membership, "enable or disable destinations")
    dtype = registry.get(found.type)
    if not found.enabled:
        problems = clean_settings(dtype, {}, found.settings)[1] if dtype else {"type": "is not installed"}
        if problems:
            listed = "; ".join(f"{_label(dtype, key)} {problem}" for key, problem in problems.items())
            messages.error(request, f"Not enabled: fix the settings first ({listed}).")
            return redirect("dashboard:destination", slug=slug, destination_id=found.pk)
    with transaction.atomic():
        Destination.objects.filter(pk=found.pk).update(enabled=not found.enabled, updated_at=timezone.now())
        action = "destination.disabled" if found.enabled else "destination.enabled"
        changes = {"enabled": [found.enabled, not found.enabled]}
        audit.record(request.user, found.workspace, action, target=found, changes=changes, via="dashboard")
    if found.enabled:
        messages.success(request, f"“{found.name}” is disabled: new events are no longer sent to it.")
    else:
        messages.success(request, f"“{found.name}” is enabled: matching events are sent to it from now on.")
    return redirect("dashboard:destination", slug=slug, destination_id=found.pk)


def _label(dtype: DestinationType | None, key: str) -> str:
    spec = next((s for s in dtype.settings if s.key == key), None) if dtype else None
    return spec.label if spec else key


def _test_key(found: Destination) -> str:
    return f"destination-test-{found.pk}"


@login_required
@require_POST
def destination_test(request: HttpRequest, slug: str, destination_id: int) -> HttpResponse:
    """Try the saved settings. The result stays on the destination's page until the settings change (it is
    kept in the session: reloading the page sends no other test)."""
    membership = membership_for(request.user, slug)
    found = destination_for(membership, destination_id)
    require_edit(membership, "test destinations")
    dtype = registry.get(found.type)
    if dtype is None:
        raise Http404("This destination's type is not installed.")
    result = dtype.check_connection(found)
    request.session[_test_key(found)] = {
        "ok": result.ok,
        "message": result.message,
        "duration_ms": result.duration_ms,
        "at": timezone.now().strftime("%H:%M:%S UTC"),
    }
    return redirect(reverse("dashboard:destination", kwargs={"slug": slug, "destination_id": found.pk}) + "#connection")


@login_required
@require_POST
def destination_delete(request: HttpRequest, slug: str, destination_id: int) -> HttpResponse:
    membership = membership_for(request.user, slug)
    found = destination_for(membership, destination_id)
    if not can_delete_destinations(membership):
        raise PermissionDenied("Only owners and admins of this workspace can delete destinations.")
    with transaction.atomic():
        changes = audit_changes(registry.get(found.type), audit_snapshot(found), {})
        audit.record(request.user, found.workspace, "destination.deleted", target=found, changes=changes,
                     via="dashboard")  # fmt: skip
        found.delete()
    messages.success(request, f"“{found.name}” was deleted, with its subscriptions and delivery history.")
    return redirect("dashboard:destinations", slug=slug)


_BASE = "w/<slug:slug>/destinations/"
_ONE = _BASE + "<int:destination_id>/"

urlpatterns: list[URLPattern] = [
    path(_BASE, destinations, name="destinations"),
    path(_BASE + "catalog/", destination_catalog, name="destination-catalog"),
    path(_BASE + "new/<str:type_key>/", destination_new, name="destination-new"),
    path(_ONE, destination, name="destination"),
    path(_ONE + "toggle/", destination_toggle, name="destination-toggle"),
    path(_ONE + "test/", destination_test, name="destination-test"),
    path(_ONE + "delete/", destination_delete, name="destination-delete"),
]
