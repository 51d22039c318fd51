"""Dashboard pages: a destination's subscriptions and the mapping editor (trigger builder, field rows,
live preview, the what-if check before saving, versions with restore).

Checking, saving, versions, preview and what-if are cdp.destinations' services, the same the API uses;
dashboard/mapping_editor.py turns the editor's form into a trigger and a mapping and back."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_POST, require_safe

from cdp.core import audit
from cdp.core.models import Destination, Membership
from cdp.destinations import registry
from cdp.destinations.diff import MISSING, json_diff
from cdp.destinations.framework import Action, DestinationType
from cdp.destinations.models import Subscription
from cdp.destinations.preview import run_subscription, what_if
from cdp.destinations.samples import SAMPLES, sample_event
from cdp.destinations.services import InvalidConfiguration, check_subscription, restore_version, save_subscription
from cdp.destinations.services import snapshot as subscription_snapshot
from cdp.processing.models import Event
from dashboard import mapping_editor as editor
from dashboard.access import destination_for, membership_for, require_edit
from dashboard.views import page_context, recent_events

WHAT_IF_EVENTS = 50
WHAT_IF_SHOWN = 20


def _shown(value: Any) -> str:
    """A value of a diff as JSON, so 100 and "100" look different; a left-out field as a dash."""
    if value == MISSING:
        return "— (left out)"
    return json.dumps(value, ensure_ascii=False, indent=2 if isinstance(value, (dict, list)) else None, default=str)


def _shown_diff(before: Any, after: Any) -> list[dict[str, str]]:
    changes = json_diff(before, after)
    return [{"path": c["path"], "before": _text(c["path"], c["before"]), "after": _text(c["path"], c["after"])}
            for c in changes]  # fmt: skip


def _text(path: str, value: Any) -> str:
    # A trigger or a name is read as the text it is; inside mappings quotes tell text from numbers.
    return value if path in ("trigger", "name") and isinstance(value, str) and value != MISSING else _shown(value)


class _Scope:
    """The membership, destination and its type of a request; another workspace's destination is a 404."""

    def __init__(self, request: HttpRequest, slug: str, destination_id: int) -> None:
        self.membership: Membership = membership_for(request.user, slug)
        self.workspace = self.membership.workspace
        self.destination: Destination = destination_for(self.membership, destination_id)
        dtype = registry.get(self.destination.type)
        if dtype is None:
            raise Http404("This destination's type is no longer installed.")
        self.dtype: DestinationType = dtype

    def subscription(self, subscription_id: int) -> Subscription:
        return get_object_or_404(Subscription, pk=subscription_id, destination=self.destination)

    def require_edit(self) -> None:
        require_edit(self.membership, "change mappings")

    def source_ids(self) -> list[int]:
        """The sources that feed the destination (none chosen means every source of the workspace)."""
        chosen = list(self.destination.sources.values_list("id", flat=True))
        return chosen or list(self.workspace.sources.values_list("id", flat=True))

    def context(self, **extra: object) -> dict[str, object]:
        return page_context(
            self.membership, nav="destinations", destination=self.destination, dtype=self.dtype, tab="mappings",
            **extra,
        )  # fmt: skip


def _record(request: HttpRequest, scope: _Scope, verb: str, subscription: Subscription, before: dict) -> None:
    after = subscription_snapshot(subscription) if verb != "deleted" else {}
    audit.record(
        request.user, scope.workspace, f"subscription.{verb}", target=subscription,
        changes=audit.diff_fields(before, after), via="dashboard",
    )  # fmt: skip


# --- List -----------------------------------------------------------------------------------------------


@login_required
@require_safe
def destination_mappings(request: HttpRequest, slug: str, destination_id: int) -> HttpResponse:
    scope = _Scope(request, slug, destination_id)
    subscriptions = list(scope.destination.subscriptions.order_by("name", "id"))
    actions = {a.key: a.name for a in scope.dtype.actions}
    for subscription in subscriptions:
        subscription.action_name = actions.get(subscription.action, subscription.action)
    presets = list(enumerate(scope.dtype.presets))
    return render(request, "dashboard/mappings/list.html", scope.context(subscriptions=subscriptions, presets=presets))


# --- Editor ---------------------------------------------------------------------------------------------


def _form_state(scope: _Scope, action: Action, data: Any) -> dict[str, Any]:
    """What the editor form holds, read into a name, trigger and mapping, with every problem found."""
    rows = editor.submitted_rows(action, data)
    mapping, field_errors = editor.mapping_from_rows(action, rows)
    trigger = data.get("trigger", "")
    name = data.get("name", "").strip()
    problems = check_subscription(scope.dtype, action.key, trigger, mapping)
    placed, general = editor.errors_by_field(action, problems.get("mapping", []))
    for key, found in placed.items():
        field_errors.setdefault(key, []).extend(found)
    name_error = "" if name else "give the subscription a name, e.g. “Orders to the CRM”"
    if len(name) > 200:
        name_error = "keep the name under 200 characters"
    return {
        "name": name, "trigger": trigger, "mapping": mapping, "rows": rows, "field_errors": field_errors,
        "mapping_errors": general, "trigger_error": problems.get("trigger", ""), "name_error": name_error,
        "ok": not (field_errors or general or problems or name_error),
    }  # fmt: skip


def _render_editor(
    request: HttpRequest, scope: _Scope, action: Action, state: dict[str, Any], subscription: Subscription | None
) -> HttpResponse:
    source_ids = scope.source_ids()
    fields = [
        {
            "spec": spec, "label": editor.field_label(spec), "row": state["rows"][spec.key],
            "errors": state["field_errors"].get(spec.key, []),
        }
        for spec in action.fields
    ]  # fmt: skip
    context = scope.context(
        subscription=subscription,
        action=action,
        state=state,
        fields=fields,
        modes=editor.MODES,
        key_modes=editor.KEY_MODES,
        builder=editor.builder_rows(state["trigger"]),
        event_fields=editor.event_fields(source_ids),
        common_fields=editor.COMMON_FIELDS,
        recent_events=recent_events(Event.objects.filter(source_id__in=source_ids)),
        samples=list(SAMPLES),
        what_if_events=WHAT_IF_EVENTS,
    )
    status = 200 if request.method == "GET" or state["ok"] else 400
    return render(request, "dashboard/mappings/editor.html", context, status=status)


def _stored_state(name: str, action: Action, trigger: str, mapping: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name, "trigger": trigger, "mapping": mapping, "rows": editor.rows_for(action, mapping),
        "field_errors": {}, "mapping_errors": [], "trigger_error": "", "name_error": "", "ok": True,
    }  # fmt: skip


@login_required
def subscription_new(request: HttpRequest, slug: str, destination_id: int) -> HttpResponse:
    scope = _Scope(request, slug, destination_id)
    scope.require_edit()
    presets = scope.dtype.presets
    choice = request.GET.get("preset", "0")
    preset = presets[int(choice)] if choice.isdigit() and int(choice) < len(presets) else None
    action_key = request.POST.get("action") or (preset.action if preset else scope.dtype.actions[0].key)
    action = scope.dtype.action(action_key)
    if action is None:
        raise Http404("This destination type has no such action.")
    if request.method != "POST":
        state = _stored_state(
            preset.name if preset else action.name, action, preset.trigger if preset else action.default_trigger,
            preset.mapping if preset else action.default_mapping(),
        )  # fmt: skip
        return _render_editor(request, scope, action, state, None)
    state = _form_state(scope, action, request.POST)
    if not state["ok"]:
        return _render_editor(request, scope, action, state, None)
    subscription = Subscription(destination=scope.destination, action=action.key)
    changes = {"name": state["name"], "trigger": state["trigger"], "mapping": state["mapping"]}
    with transaction.atomic():
        save_subscription(subscription, changes, request.user)
        _record(request, scope, "created", subscription, {})
    messages.success(request, f"Subscription “{subscription.name}” created: matching events are sent from now on.")
    return redirect("dashboard:subscription", slug=slug, destination_id=destination_id, subscription_id=subscription.pk)


@login_required
def subscription_edit(request: HttpRequest, slug: str, destination_id: int, subscription_id: int) -> HttpResponse:
    scope = _Scope(request, slug, destination_id)
    subscription = scope.subscription(subscription_id)
    action = scope.dtype.action(subscription.action)
    if action is None:
        raise Http404("This subscription's action no longer exists.")
    if request.method != "POST":
        state = _stored_state(subscription.name, action, subscription.trigger, subscription.mapping)
        return _render_editor(request, scope, action, state, subscription)
    scope.require_edit()
    state = _form_state(scope, action, request.POST)
    if not state["ok"]:
        return _render_editor(request, scope, action, state, subscription)
    before, version = subscription_snapshot(subscription), subscription.version
    with transaction.atomic():
        changes = {"name": state["name"], "trigger": state["trigger"], "mapping": state["mapping"]}
        save_subscription(subscription, changes, request.user)
        if subscription.version != version:
            _record(request, scope, "updated", subscription, before)
    if subscription.version == version:
        messages.info(request, "Nothing changed, so no new version was saved.")
    else:
        messages.success(request, f"Saved as version {subscription.version}.")
    return redirect("dashboard:subscription", slug=slug, destination_id=destination_id, subscription_id=subscription.pk)


# --- Live preview and what-if -------------------------------------------------------------------------


def _preview_event(scope: _Scope, choice: str) -> dict[str, Any] | None:
    kind, _, value = choice.partition(":")
    if kind == "sample" and value in SAMPLES:
        return sample_event(value)
    if kind == "event" and value.isdigit():
        found = Event.objects.filter(pk=int(value), source_id__in=scope.source_ids()).values_list("payload", flat=True)
        return found.first()
    return None


@login_required
@require_POST
def subscription_preview(request: HttpRequest, slug: str, destination_id: int) -> JsonResponse:
    """The unsaved trigger and mapping of the editor run on one event: matched, payload and errors."""
    scope = _Scope(request, slug, destination_id)
    scope.require_edit()
    action = scope.dtype.action(request.POST.get("action", ""))
    if action is None:
        return JsonResponse({"error": "Unknown action."}, status=400)
    state = _form_state(scope, action, request.POST)
    answer: dict[str, Any] = {
        "trigger_error": state["trigger_error"], "field_errors": state["field_errors"],
        "mapping_errors": state["mapping_errors"], "builder": editor.builder_rows(state["trigger"]),
        "matched": None, "payload": None, "errors": [],
    }  # fmt: skip
    event = _preview_event(scope, request.POST.get("event", ""))
    if event is None:
        answer["event_error"] = "Choose a recent event or a sample event."
        return JsonResponse(answer, status=400)
    if not state["trigger_error"]:
        mapping_ok = not (state["field_errors"] or state["mapping_errors"])
        outcome = run_subscription(state["trigger"], state["mapping"] if mapping_ok else {}, event)
        answer.update(outcome if mapping_ok else {"matched": outcome["matched"]})
    return JsonResponse(answer, json_dumps_params={"ensure_ascii": False})


@login_required
@require_POST
def subscription_what_if(request: HttpRequest, slug: str, destination_id: int, subscription_id: int) -> HttpResponse:
    """An HTML fragment: how the saved and the edited subscription differ over the latest stored events."""
    scope = _Scope(request, slug, destination_id)
    scope.require_edit()
    subscription = scope.subscription(subscription_id)
    action = scope.dtype.action(subscription.action)
    if action is None:
        raise Http404("This subscription's action no longer exists.")
    state = _form_state(scope, action, request.POST)
    context = scope.context(subscription=subscription, state=state)
    if not state["ok"]:
        return render(request, "dashboard/mappings/_what_if.html", context, status=400)
    events = list(Event.objects.filter(source_id__in=scope.source_ids()).order_by("-id")[:WHAT_IF_EVENTS])
    report = what_if(subscription, trigger=state["trigger"], mapping=state["mapping"], events=events)
    proposed = {**subscription_snapshot(subscription), "name": state["name"], "trigger": state["trigger"],
                "mapping": state["mapping"]}  # fmt: skip
    shown = [
        {**result, "differences": _shown_diff(result["saved"], result["proposed"])}
        for result in report["results"][:WHAT_IF_SHOWN]
    ]
    context.update(
        report=report, shown=shown, settings_changes=_shown_diff(subscription_snapshot(subscription), proposed)
    )
    return render(request, "dashboard/mappings/_what_if.html", context)


# --- Versions, restore, toggle, delete --------------------------------------------------------------------


@login_required
@require_safe
def subscription_versions(request: HttpRequest, slug: str, destination_id: int, subscription_id: int) -> HttpResponse:
    scope = _Scope(request, slug, destination_id)
    subscription = scope.subscription(subscription_id)
    versions = list(subscription.versions.select_related("created_by").order_by("-version"))
    for newer, older in zip(versions, [*versions[1:], None], strict=False):
        newer.differences = _shown_diff(older.snapshot, newer.snapshot) if older is not None else None
        newer.shown_mapping = _shown(newer.snapshot.get("mapping"))
    context = scope.context(subscription=subscription, versions=versions)
    return render(request, "dashboard/mappings/versions.html", context)


@login_required
@require_POST
def subscription_restore(request: HttpRequest, slug: str, destination_id: int, subscription_id: int) -> HttpResponse:
    scope = _Scope(request, slug, destination_id)
    scope.require_edit()
    subscription = scope.subscription(subscription_id)
    version = request.POST.get("version", "")
    before, current = subscription_snapshot(subscription), subscription.version
    try:
        with transaction.atomic():
            restore_version(subscription, int(version) if version.isdigit() else -1, request.user)
            if subscription.version != current:
                _record(request, scope, "restored", subscription, before)
    except InvalidConfiguration as exc:
        problem = "; ".join(str(v) for v in exc.errors.values())
        messages.error(request, f"Version {version} cannot be restored: {problem}")
        return redirect("dashboard:subscription-versions", slug, destination_id, subscription_id)
    if subscription.version == current:
        messages.info(request, f"Version {version} is the same as the current one; nothing was saved.")
    else:
        messages.success(request, f"Version {version} restored as version {subscription.version}.")
    return redirect("dashboard:subscription-versions", slug, destination_id, subscription_id)


@login_required
@require_POST
def subscription_toggle(request: HttpRequest, slug: str, destination_id: int, subscription_id: int) -> HttpResponse:
    scope = _Scope(request, slug, destination_id)
    scope.require_edit()
    subscription = scope.subscription(subscription_id)
    before = subscription_snapshot(subscription)
    try:
        with transaction.atomic():
            save_subscription(subscription, {"enabled": not subscription.enabled}, request.user)
            _record(request, scope, "enabled" if subscription.enabled else "disabled", subscription, before)
    except InvalidConfiguration as exc:
        problem = "; ".join(str(v) for v in exc.errors.values())
        messages.error(request, f"Fix this subscription before switching it: {problem}")
    else:
        state = "on: matching events are sent" if subscription.enabled else "off: nothing is sent through it"
        messages.success(request, f"“{subscription.name}” is {state}.")
    if request.POST.get("next") == "editor":
        return redirect("dashboard:subscription", slug, destination_id, subscription_id)
    return redirect("dashboard:destination-mappings", slug, destination_id)


@login_required
@require_POST
def subscription_delete(request: HttpRequest, slug: str, destination_id: int, subscription_id: int) -> HttpResponse:
    scope = _Scope(request, slug, destination_id)
    scope.require_edit()
    subscription = scope.subscription(subscription_id)
    with transaction.atomic():
        _record(request, scope, "deleted", subscription, subscription_snapshot(subscription))
        subscription.delete()
    messages.success(request, f"Subscription “{subscription.name}” deleted; its events are no longer sent.")
    return redirect("dashboard:destination-mappings", slug, destination_id)


_BASE = "w/<slug:slug>/destinations/<int:destination_id>/mappings/"
_ONE = _BASE + "<int:subscription_id>/"

urlpatterns = [
    path(_BASE, destination_mappings, name="destination-mappings"),
    path(_BASE + "new/", subscription_new, name="subscription-new"),
    path(_BASE + "preview/", subscription_preview, name="subscription-preview"),
    path(_ONE, subscription_edit, name="subscription"),
    path(_ONE + "what-if/", subscription_what_if, name="subscription-what-if"),
    path(_ONE + "versions/", subscription_versions, name="subscription-versions"),
    path(_ONE + "restore/", subscription_restore, name="subscription-restore"),
    path(_ONE + "toggle/", subscription_toggle, name="subscription-toggle"),
    path(_ONE + "delete/", subscription_delete, name="subscription-delete"),
]
