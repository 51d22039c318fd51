"""The operators' admin for deliveries, their attempts, filtered counts and re-drive/replay jobs.

All of it is written by the pipeline and only read here, with one exception: dead letters can be
re-driven, through the same job path as the API and the dashboard (cdp/delivery/jobs.py).

Attempts are read through `attempt.request`, `.response_status`, `.response_body` and `.duration_ms`
only, never as columns of the list: that evidence is heavy and may live in a related record."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from cdp.core.admin_base import (
    ReadOnlyAdmin,
    ReadOnlyInline,
    admin_link,
    changelist_links,
    choices_filter,
    pretty_json,
)
from cdp.core.models import Source
from cdp.delivery import jobs
from cdp.delivery.models import (
    Delivery,
    DeliveryAttempt,
    DrainLease,
    ErrorClass,
    Exchange,
    FilteredCount,
    Job,
    JobStatus,
    Status,
)
from cdp.delivery.redrive import Selection
from cdp.processing.models import Event

# At most this many dead letters are re-driven within the request: a destination's whole set as one job,
# or a part of it one by one (one small job each, as the API re-drives one). A larger set of one
# destination is one job worked by Celery at CDP_REDRIVE_RATE; a larger part of one is refused.
MAX_ONE_BY_ONE = 100
OUTCOMES = [("delivered", "delivered"), ("retry", "retry"), ("failed", "failed"), ("dead", "dead")]


def _attempt_evidence(attempt: DeliveryAttempt) -> str:
    status = attempt.response_status if attempt.response_status is not None else "no response"
    return f"{status} in {attempt.duration_ms:.0f} ms"


class AttemptInline(ReadOnlyInline):
    model = DeliveryAttempt
    fields = ["number", "started_at", "outcome", "error_class", "error", "evidence"]
    readonly_fields = fields
    ordering = ["number"]

    @admin.display(description="response")
    def evidence(self, obj: DeliveryAttempt) -> str:
        return _attempt_evidence(obj)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "message_id", "event_name", "destination", "action", "status", "attempts", "error_class",
                    "next_attempt_at", "finished_at"]  # fmt: skip
    list_filter = [
        "status",  # "Dead-lettered" is the dead letters
        "error_class",
        ("finished_at", admin.DateFieldListFilter),
        ("received_at", admin.DateFieldListFilter),
        "destination",
    ]
    list_select_related = ["destination"]
    search_fields = ["=message_id", "=event_name"]
    fields = ["destination", "subscription", "event_link", "source_link", "message_id", "event_name", "action",
              "status", "attempts", "next_attempt_at", "error_class", "last_error", "received_at",
              "created_at", "finished_at", "payload_json"]  # fmt: skip
    readonly_fields = ["event_link", "source_link", "payload_json"]
    inlines = [AttemptInline]
    actions = ["redrive_dead_letters"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.defer("payload")  # mapped payloads are read on a delivery's own page
        return queryset

    def has_redrive_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("delivery.change_delivery")

    @admin.display(description="event")
    def event_link(self, obj: Delivery) -> str:
        return admin_link(Event, obj.event_id, f"event #{obj.event_id}")

    @admin.display(description="source")
    def source_link(self, obj: Delivery) -> str:
        return admin_link(Source, obj.source_id, f"source #{obj.source_id}")

    @admin.display(description="payload")
    def payload_json(self, obj: Delivery) -> str:
        return pretty_json(obj.payload)

    @admin.action(description="Re-drive selected dead letters", permissions=["redrive"])
    def redrive_dead_letters(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        dead = queryset.filter(status=Status.DEAD)
        others = queryset.exclude(status=Status.DEAD).count()
        if others:
            self.message_user(
                request, f"{others} selected deliveries are not dead letters and were left as they are.", messages.INFO
            )
        per_destination = {
            row["destination_id"]: row
            for row in dead.order_by().values("destination_id", "destination__workspace_id").annotate(n=Count("pk"))
        }
        if not per_destination:
            self.message_user(request, "No dead letters selected: nothing to re-drive.", messages.WARNING)
            return
        all_dead = dict(
            Delivery.objects.filter(status=Status.DEAD, destination_id__in=per_destination)
            .order_by()
            .values("destination_id")
            .annotate(n=Count("pk"))
            .values_list("destination_id", "n")
        )
        started: list[Job] = []
        one_by_one: list[tuple[int, int, int]] = []
        too_many = 0
        for destination_id, row in per_destination.items():
            workspace_id = row["destination__workspace_id"]
            if row["n"] >= all_dead.get(destination_id, 0):
                # Every dead letter of the destination: one job, worked here when small, else by Celery.
                selection = Selection(destination=destination_id)
                started.append(
                    jobs.start_redrive(
                        workspace_id, selection, user=request.user, via="admin", inline=row["n"] <= MAX_ONE_BY_ONE
                    )
                )
            elif len(one_by_one) + row["n"] <= MAX_ONE_BY_ONE:
                one_by_one += [(pk, destination_id, workspace_id) for pk in dead.filter(destination_id=destination_id)
                               .values_list("pk", flat=True)]  # fmt: skip
            else:
                too_many += row["n"]
        for pk, destination_id, workspace_id in one_by_one:
            started.append(
                jobs.start_redrive(
                    workspace_id,
                    Selection(delivery=pk),
                    user=request.user,
                    via="admin",
                    destination_id=destination_id,
                    inline=True,
                )  # fmt: skip
            )
        if started:
            self.message_user(request, self._started_message(started), messages.SUCCESS)
        if too_many:
            self.message_user(
                request,
                f"{too_many} dead letters were not re-driven: select at most {MAX_ONE_BY_ONE} one by one, or "
                "every dead letter of a destination (filter by destination and status, then select all).",
                messages.ERROR,
            )

    def _started_message(self, started: list[Job]) -> str:
        queued = sum(job.total for job in started if job.status != JobStatus.DONE)
        redriven = sum(job.result.get("redriven", 0) for job in started if job.status == JobStatus.DONE)
        kept = sum(job.done - job.result.get("redriven", 0) for job in started if job.status == JobStatus.DONE)
        url = reverse("admin:delivery_job_changelist") + "?id__in=" + ",".join(str(job.pk) for job in started)
        parts = [f"Re-drove {redriven} dead letter(s) now"]
        if queued:
            parts.append(f"{queued} more are being re-driven by a job")
        if kept:
            parts.append(f"{kept} stayed dead (see the job for why)")
        return format_html('{}: <a href="{}">see the job(s)</a>.', "; ".join(parts), url)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyAdmin):
    list_display = ["id", "delivery_link", "number", "outcome", "error_class", "started_at", "exchange_link"]
    list_filter = [
        choices_filter("outcome", "outcome", OUTCOMES),
        choices_filter("error_class", "error class", ErrorClass.choices),
        ("started_at", admin.DateFieldListFilter),
    ]
    search_fields = ["=delivery__id", "=delivery__message_id"]
    fields = ["delivery_link", "number", "started_at", "outcome", "error_class", "error", "duration", "status",
              "exchange_link", "request_sent", "response_received"]  # fmt: skip
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeliveryAttempt]:
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            # The list links to the exchange by its id alone: its request and response stay unread.
            return queryset.only("id", "delivery_id", "number", "outcome", "error_class", "started_at", "exchange_id")
        return queryset.select_related("exchange")  # the request and response shown live on the exchange

    @admin.display(description="delivery", ordering="delivery_id")
    def delivery_link(self, obj: DeliveryAttempt) -> str:
        return admin_link(Delivery, obj.delivery_id, f"delivery #{obj.delivery_id}")

    @admin.display(description="request", ordering="exchange_id")
    def exchange_link(self, obj: DeliveryAttempt) -> str:
        return admin_link(Exchange, obj.exchange_id, f"exchange #{obj.exchange_id}")

    @admin.display(description="duration")
    def duration(self, obj: DeliveryAttempt) -> str:
        return f"{obj.duration_ms:.1f} ms"

    @admin.display(description="response status")
    def status(self, obj: DeliveryAttempt) -> str:
        return str(obj.response_status) if obj.response_status is not None else "no response"

    @admin.display(description="request (secrets masked)")
    def request_sent(self, obj: DeliveryAttempt) -> str:
        return pretty_json(obj.request)

    @admin.display(description="response body")
    def response_received(self, obj: DeliveryAttempt) -> str:
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', obj.response_body)


@admin.register(Exchange)
class ExchangeAdmin(ReadOnlyAdmin):
    """One HTTP request to a destination and its response, shared by the attempts of every delivery it
    carried (a batch of 500 events is one exchange)."""

    list_display = ["id", "destination", "started_at", "status", "events", "duration", "error_class"]
    list_filter = [
        choices_filter("error_class", "error class", ErrorClass.choices),
        ("started_at", admin.DateFieldListFilter),
        "destination",
    ]
    list_select_related = ["destination"]
    search_fields = ["=id", "=response_status"]
    fields = ["destination", "started_at", "duration", "status", "events", "error_class", "error", "request_sent",
              "response_received", "see_also"]  # fmt: skip
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Exchange]:
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.defer("request", "response_body", "error")  # read on an exchange's own page
        return queryset

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, obj: Exchange) -> str:
        return f"{obj.duration_ms:.1f} ms"

    @admin.display(description="response status", ordering="response_status")
    def status(self, obj: Exchange) -> str:
        return str(obj.response_status) if obj.response_status is not None else "no response"

    @admin.display(description="request (secrets masked)")
    def request_sent(self, obj: Exchange) -> str:
        return pretty_json(obj.request)

    @admin.display(description="response body")
    def response_received(self, obj: Exchange) -> str:
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', obj.response_body)

    @admin.display(description="see also")
    def see_also(self, obj: Exchange) -> str:
        return changelist_links([(DeliveryAttempt, {"exchange__id__exact": obj.pk}, "the attempts it carried")])


@admin.register(DrainLease)
class DrainLeaseAdmin(ReadOnlyAdmin):
    """Which drain sends a destination's deliveries now, and until when (a lease ends by itself at its
    time, or on PostgreSQL as soon as its holder's connection is gone)."""

    list_display = ["destination", "holder", "backend", "until"]
    list_filter = [("until", admin.DateFieldListFilter), "destination"]
    list_select_related = ["destination"]
    search_fields = ["=holder", "destination__name"]


@admin.register(FilteredCount)
class FilteredCountAdmin(ReadOnlyAdmin):
    list_display = ["hour", "destination", "reason", "count"]
    list_filter = ["reason", ("hour", admin.DateFieldListFilter), "destination"]
    list_select_related = ["destination"]
    search_fields = ["=reason", "destination__name"]
    date_hierarchy = "hour"
    ordering = ["-hour", "destination_id", "reason"]


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "status", "progress", "workspace", "destination", "created_by", "created_at",
                    "finished_at"]  # fmt: skip
    list_filter = ["status", "kind", ("created_at", admin.DateFieldListFilter), "workspace"]
    list_select_related = ["workspace", "destination", "created_by"]
    search_fields = ["=id", "created_by__username", "workspace__name", "workspace__slug", "destination__name"]
    date_hierarchy = "created_at"
    fields = ["kind", "status", "progress", "workspace", "destination", "created_by", "created_at", "started_at",
              "finished_at", "parameters_json", "result_json", "error", "see_also"]  # fmt: skip
    readonly_fields = ["progress", "parameters_json", "result_json", "see_also"]

    @admin.display(description="progress")
    def progress(self, obj: Job) -> str:
        percent = f" ({100 * obj.done // obj.total}%)" if obj.total else ""
        return f"{obj.done}/{obj.total}{percent}"

    @admin.display(description="selection")
    def parameters_json(self, obj: Job) -> str:
        return pretty_json(obj.parameters)

    @admin.display(description="result, by outcome")
    def result_json(self, obj: Job) -> str:
        return pretty_json(obj.result)

    @admin.display(description="see also")
    def see_also(self, obj: Job) -> str:
        if obj.destination_id is None:
            return "-"
        return changelist_links(
            [(Delivery, {"destination__id__exact": obj.destination_id, "status__exact": Status.DEAD}, "dead letters")]
        )
