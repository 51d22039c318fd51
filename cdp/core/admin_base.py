"""What every admin page of the project shares: read-only pages for pipeline records, the audit log for
changes an operator saves, and list filters that never scan a big table to draw themselves."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.contrib.admin import ShowFacets
from django.core.paginator import Paginator
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Model, QuerySet
from django.forms import BaseFormSet, ModelForm
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from cdp.core import audit
from cdp.core.models import Workspace

log = logging.getLogger(__name__)


class CappedCountPaginator(Paginator):
    """Counts at most `cap` rows: past that a list says "more than 10000" instead of counting millions
    on every page (templates/admin/pagination.html). Filters narrow a list down to what can be counted."""

    cap = 10_000
    capped = False

    @cached_property
    def count(self) -> int:
        found = self.object_list[: self.cap + 1].count()
        self.capped = found > self.cap
        return min(found, self.cap)


class BigTableAdmin(admin.ModelAdmin):
    """Lists of tables with millions of rows: no COUNT(*) of the whole table and no facet counts on each
    page, newest rows first by primary key (an index walk)."""

    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    ordering = ["-pk"]


class LookOnly:
    """No add, change or delete, whoever asks: for the admins and inlines of records the pipeline writes."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ReadOnlyAdmin(LookOnly, BigTableAdmin):
    """For records the pipeline writes (intake, events, rejections, attempts): look, never touch."""


class ReadOnlyInline(LookOnly, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True


def pretty_json(value: Any) -> str:
    """JSON shown indented in a read-only admin field."""
    text = json.dumps(value, indent=2, cls=DjangoJSONEncoder, ensure_ascii=False)
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)


def admin_link(model: type[Model], pk: Any, text: Any) -> str:
    """A link to an object's admin page, made from its id alone (no query for the object)."""
    if pk is None:
        return "-"
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[pk])
    return format_html('<a href="{}">{}</a>', url, text)


def changelist_links(links: Iterable[tuple[type[Model], dict[str, Any], str]]) -> str:
    """Links to other lists filtered on this object, e.g. a source's events."""
    return format_html_join(
        " · ",
        '<a href="{}?{}">{}</a>',
        (
            (
                reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"),
                "&".join(f"{key}={value}" for key, value in filters.items()),
                text,
            )
            for model, filters, text in links
        ),
    )


def choices_filter(field: str, title: str, choices: Iterable[tuple[str, str]]) -> type[admin.SimpleListFilter]:
    """A list filter with fixed choices: Django's default for a field without `choices` runs SELECT
    DISTINCT over the whole table to draw itself."""
    fixed = list(choices)

    class FixedChoicesFilter(admin.SimpleListFilter):
        parameter_name = field

        def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
            return fixed

        def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
            if self.value():
                return queryset.filter(**{field: self.value()})
            return queryset

    FixedChoicesFilter.title = title
    return FixedChoicesFilter


def workspace_id_of(obj: Model) -> int | None:
    """The workspace whose audit log records a change to `obj`."""
    if isinstance(obj, Workspace):
        return obj.pk
    for path in ("workspace_id", "destination.workspace_id", "source.workspace_id"):
        value: Any = obj
        try:
            for part in path.split("."):
                value = getattr(value, part)
        except AttributeError:
            continue
        return value
    return None


def plain(value: Any) -> Any:
    """A value as the audit log stores it (JSON): dates as ISO strings, related objects as ids."""
    if isinstance(value, Model):
        value = value.pk
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def field_values(obj: Model, names: Iterable[str]) -> dict[str, Any]:
    """The values of the named model fields of `obj` as stored now (many-to-many: the sorted ids)."""
    values = {}
    for name in names:
        try:
            field = obj._meta.get_field(name)
        except Exception:
            continue  # a form field that is not a model field
        if field.many_to_many:
            values[name] = sorted(getattr(obj, name).values_list("pk", flat=True)) if obj.pk else []
        elif field.concrete:
            values[name] = plain(field.value_from_object(obj))
    return values


def record_change(request: HttpRequest, obj: Model, verb: str, changes: dict[str, Any] | None = None) -> None:
    workspace_id = workspace_id_of(obj)
    if workspace_id is None:
        return
    if verb == "deleted" and isinstance(obj, Workspace):
        # The workspace's log goes with it; the server log keeps the trace.
        log.info("workspace %s (%s) deleted by %s in the admin", obj.pk, obj.slug, request.user)
        return
    audit.record(request.user, workspace_id, f"{obj._meta.model_name}.{verb}", target=obj, changes=changes, via="admin")


class AuditedAdmin(admin.ModelAdmin):
    """What an operator saves or deletes here is written to the workspace's audit log (via "admin"),
    like changes made in the dashboard or through the API. Inline rows are recorded the same way."""

    def save_model(self, request: HttpRequest, obj: Model, form: ModelForm, change: bool) -> None:
        names = form.changed_data if change else list(form.fields)
        previous = type(obj)._default_manager.filter(pk=obj.pk).first() if change and obj.pk else None
        obj._audit_names = names  # type: ignore[attr-defined]
        obj._audit_before = field_values(previous, names) if previous is not None else {}  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        obj = form.instance
        after = field_values(obj, getattr(obj, "_audit_names", []))
        changes = audit.diff_fields(getattr(obj, "_audit_before", {}), after)
        if changes or not change:
            record_change(request, obj, "updated" if change else "created", changes)

    def save_formset(self, request: HttpRequest, form: ModelForm, formset: BaseFormSet, change: bool) -> None:
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            record_change(request, obj, "deleted")
            obj.delete()
        changed = {id(obj): names for obj, names in formset.changed_objects}
        for obj in instances:
            if obj.pk and id(obj) in changed:
                names = changed[id(obj)]
                before = field_values(type(obj)._default_manager.get(pk=obj.pk), names)
                obj.save()
                record_change(request, obj, "updated", audit.diff_fields(before, field_values(obj, names)))
            else:
                obj.save()
                after = field_values(obj, formset.form.base_fields)
                record_change(request, obj, "created", audit.diff_fields({}, after))
        formset.save_m2m()

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        record_change(request, obj, "deleted")
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            record_change(request, obj, "deleted")
        super().delete_queryset(request, queryset)
