"""PostgreSQL warehouse: events loaded in batches into tables, a schema per source (Redshift-ready SQL)."""

from cdp.destinations.framework import (
    EVERY_EVENT_TRIGGER,
    WHOLE_EVENT,
    Action,
    ActionField,
    DestinationType,
    SettingField,
)
from cdp.destinations.registry import register

POSTGRES_WAREHOUSE = register(
    DestinationType(
        key="postgres_warehouse",
        name="PostgreSQL warehouse",
        description=(
            "Load events into PostgreSQL tables, a schema per source: identifies, tracks, pages, screens, groups, "
            "aliases, users with the latest traits, and a table per track event with its properties as columns."
        ),
        category="Warehouse",
        settings=(
            SettingField(
                "connection_url",
                "Connection URL",
                secret=True,
                help="postgresql://user:password@host:5432/database?sslmode=require. "
                "Empty: the host, port, database, user and password below.",
            ),  # fmt: skip
            SettingField("host", "Host", help="e.g. warehouse.internal; used when the connection URL is empty."),
            SettingField("port", "Port", type="integer", default=5432),
            SettingField("database", "Database"),
            SettingField("user", "User", help="Needs CREATE on the database, or on the schemas it loads into."),
            SettingField("password", "Password", secret=True),
            SettingField(
                "sslmode",
                "SSL mode",
                type="select",
                default="prefer",
                choices=("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
                help="With the host settings; put sslmode in the connection URL otherwise.",
            ),  # fmt: skip
            SettingField(
                "schema_prefix",
                "Schema prefix",
                default="cdp",
                help="Each source loads into the schema <prefix>_<source id>, e.g. cdp_12.",
            ),  # fmt: skip
        ),
        actions=(
            Action(
                key="load",
                name="Load events",
                description="Load the event, shaped by the mapping, into the tables of its source's schema.",
                fields=(
                    ActionField(
                        "event",
                        "Event",
                        type="object",
                        required=True,
                        default=WHOLE_EVENT,
                        help="A Segment event (type, messageId, …); by default the whole normalised event.",
                    ),  # fmt: skip
                ),
                default_trigger=EVERY_EVENT_TRIGGER,
                batchable=True,
            ),
        ),
        sender="cdp.destinations.types.warehouse.sender.WarehouseSender",
        connection_test="cdp.destinations.types.warehouse.check.check",
        # Loads run on a schedule: a batch goes when 1000 events are waiting, or when its oldest event
        # has waited batch_wait_seconds (the load interval, five minutes unless changed). One load at a
        # time keeps a schema's changes in order.
        delivery_defaults={
            "batch_size": 1000,
            "batch_wait_seconds": 300.0,
            "timeout_seconds": 60.0,
            "max_in_flight": 1,
        },
    )
)
