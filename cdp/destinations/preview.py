"""Run events through a destination's subscriptions without sending anything."""

from __future__ import annotations

from typing import Any

from cdp.core.models import Destination
from cdp.destinations import engine
from cdp.destinations.diff import json_diff
from cdp.destinations.models import Subscription
from cdp.processing.models import Event


def run_subscription(trigger: str, mapping: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    outcome = engine.run(trigger, mapping, event)
    return {"matched": outcome.matched, "payload": outcome.payload, "errors": outcome.errors}


def preview(destination: Destination, event: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    for subscription in destination.subscriptions.all():
        result = run_subscription(subscription.trigger, subscription.mapping, event)
        results.append(
            {"subscription": subscription.pk, "name": subscription.name, "action": subscription.action,
             "enabled": subscription.enabled, **result}
        )  # fmt: skip
    return results


def what_if(
    subscription: Subscription,
    *,
    trigger: str,
    mapping: dict[str, Any],
    events: list[Event],
) -> dict[str, Any]:
    """Compare the saved subscription with a proposed trigger and mapping over stored events."""
    changed = []
    for event in events:
        saved = run_subscription(subscription.trigger, subscription.mapping, event.payload)
        proposed = run_subscription(trigger, mapping, event.payload)
        differences = json_diff(saved, proposed)
        if differences:
            changed.append(
                {"message_id": event.message_id, "event_id": event.pk, "saved": saved, "proposed": proposed,
                 "differences": differences}
            )  # fmt: skip
    return {"events": len(events), "changed": len(changed), "results": changed}
