import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_destination_delivery"),
        ("delivery", "0006_attempts_without_row_checks"),
    ]

    operations = [
        migrations.CreateModel(
            name="DrainLease",
            fields=[
                (
                    "destination",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="drain_lease",
                        serialize=False,
                        to="core.destination",
                    ),
                ),
                ("holder", models.CharField(max_length=64)),
                (
                    "backend",
                    models.IntegerField(
                        blank=True, help_text="PostgreSQL process id of the holder's connection.", null=True
                    ),
                ),
                ("until", models.DateTimeField()),
            ],
            options={"db_table": "cdp_delivery_lease"},
        ),
        migrations.RemoveField(model_name="delivery", name="claimed_until"),
        migrations.AlterField(
            model_name="exchange",
            name="destination",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="exchanges",
                to="core.destination",
            ),
        ),
    ]
