"""Webhook: POST the mapped event as JSON to a URL of the user's, optionally signed."""

from cdp.destinations.framework import (
    EVERY_EVENT_TRIGGER,
    WHOLE_EVENT,
    Action,
    ActionField,
    DestinationType,
    SettingField,
)
from cdp.destinations.registry import register

WEBHOOK = register(
    DestinationType(
        key="webhook",
        name="Webhook",
        description="Send events as JSON POST requests to any HTTP endpoint, signed with HMAC-SHA256.",
        category="Raw data",
        settings=(
            SettingField("url", "URL", type="url", required=True, help="Where events are POSTed, http(s)://…"),
            SettingField(
                "headers",
                "Extra headers",
                type="object",
                default={},
                help='Sent with every request, e.g. {"X-Api-Key": "…"}.',
            ),  # fmt: skip
            SettingField(
                "signing_secret",
                "Signing secret",
                secret=True,
                help="When set, each request carries X-CDP-Signature: t=<unix time>,v1=<HMAC-SHA256 of t.body>.",
            ),  # fmt: skip
            SettingField(
                "batch",
                "Send in batches",
                type="boolean",
                default=False,
                help='POST {"batch": [...]} with up to the batch size of events per request.',
            ),
        ),
        actions=(
            Action(
                key="send",
                name="Send Event",
                description="POST the event, shaped by the mapping, to the URL.",
                fields=(
                    ActionField(
                        "payload",
                        "Payload",
                        type="object",
                        required=True,
                        default=WHOLE_EVENT,
                        help="The JSON body; by default the whole event.",
                    ),  # fmt: skip
                ),
                default_trigger=EVERY_EVENT_TRIGGER,
                batchable=True,
            ),
        ),
        sender="cdp.destinations.types.webhook.sender.WebhookSender",
        connection_test="cdp.destinations.types.webhook.check.check",
    )
)
