"""Attempts keep their outcome; the request and response move to one shared row per HTTP request."""

import django.db.models.deletion
from django.db import migrations, models


def move_evidence(apps, schema_editor):  # noqa: ANN001, ANN201
    """Each existing attempt gets an exchange of its own holding what it recorded."""
    Attempt = apps.get_model("delivery", "DeliveryAttempt")
    Exchange = apps.get_model("delivery", "Exchange")
    rows = Attempt.objects.filter(exchange__isnull=True).select_related("delivery").order_by("id")
    while chunk := list(rows[:1000]):
        exchanges = Exchange.objects.bulk_create(
            Exchange(
                destination_id=a.delivery.destination_id, started_at=a.started_at, duration_ms=a.duration_ms,
                request=a.request, response_status=a.response_status, response_body=a.response_body,
                error_class=a.error_class, error=a.error,
            )
            for a in chunk
        )  # fmt: skip
        for attempt, exchange in zip(chunk, exchanges, strict=True):
            attempt.exchange_id = exchange.pk
        Attempt.objects.bulk_update(chunk, ["exchange"])


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_destination_delivery"),
        ("delivery", "0002_job_attempt_retry_time"),
    ]

    operations = [
        migrations.CreateModel(
            name="Exchange",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("started_at", models.DateTimeField()),
                ("duration_ms", models.FloatField()),
                (
                    "request",
                    models.JSONField(default=dict, help_text="Method, URL, headers (secrets masked) and body excerpt."),
                ),
                ("response_status", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("response_body", models.TextField(blank=True, default="")),
                ("error_class", models.CharField(blank=True, default="", max_length=32)),
                ("error", models.TextField(blank=True, default="")),
                ("events", models.PositiveIntegerField(default=1, help_text="Deliveries this request carried.")),
                (
                    "destination",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="exchanges", to="core.destination"
                    ),
                ),
            ],
            options={"db_table": "cdp_delivery_exchange"},
        ),
        migrations.AddIndex(
            model_name="exchange",
            index=models.Index(fields=["destination", "-started_at"], name="exchange_destination_recent"),
        ),
        migrations.AddField(
            model_name="deliveryattempt",
            name="exchange",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="attempts",
                to="delivery.exchange",
            ),  # fmt: skip
        ),
        migrations.RunPython(move_evidence, migrations.RunPython.noop),
        migrations.RemoveField(model_name="deliveryattempt", name="request"),
        migrations.RemoveField(model_name="deliveryattempt", name="response_body"),
        migrations.AlterField(
            model_name="deliveryattempt",
            name="error",
            field=models.TextField(
                blank=True, default="", help_text="This event's own error (a batch may fail per event)."
            ),
        ),
    ]
