"""Creating destinations with their preset subscriptions, and saving subscriptions with history."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from cdp.core.models import Destination, Workspace
from cdp.destinations import engine, registry
from cdp.destinations.configuration import clean_settings
from cdp.destinations.framework import DestinationType
from cdp.destinations.models import Subscription, SubscriptionVersion

SNAPSHOT_FIELDS = ("name", "action", "trigger", "mapping", "enabled")


class InvalidConfiguration(ValueError):
    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__("invalid configuration")
        self.errors = errors


def destination_type(key: str) -> DestinationType:
    found = registry.get(key)
    if found is None:
        raise InvalidConfiguration({"type": f"unknown destination type {key!r}"})
    return found


def check_subscription(dtype: DestinationType, action: str, trigger: str, mapping: Any) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    spec = dtype.action(action)
    if spec is None:
        errors["action"] = f"{dtype.name} has no action {action!r}; it has {', '.join(a.key for a in dtype.actions)}"
    trigger_problem = engine.trigger_error(trigger)
    if trigger_problem:
        errors["trigger"] = trigger_problem
    if not isinstance(mapping, dict):
        errors["mapping"] = ["the mapping must be a JSON object of fields"]
        return errors
    mapping_problems = engine.mapping_errors(mapping)
    if spec is not None:
        known = {f.key for f in spec.fields}
        mapping_problems += [f"{key}: not a field of {spec.name}" for key in mapping if key not in known]
        mapping_problems += [f"{f.key}: is required" for f in spec.fields if f.required and f.key not in mapping]
    if mapping_problems:
        errors["mapping"] = mapping_problems
    return errors


def snapshot(subscription: Subscription) -> dict[str, Any]:
    return {field: getattr(subscription, field) for field in SNAPSHOT_FIELDS}


def _record_version(subscription: Subscription, user: AbstractBaseUser | None) -> None:
    SubscriptionVersion.objects.create(
        subscription=subscription, version=subscription.version, snapshot=snapshot(subscription), created_by=user
    )


@transaction.atomic
def create_destination(
    workspace: Workspace,
    *,
    name: str,
    type_key: str,
    settings: dict[str, Any],
    enabled: bool = False,
    user: AbstractBaseUser | None = None,
) -> Destination:
    """Create a destination and one subscription per preset of its type."""
    dtype = destination_type(type_key)
    clean, errors = clean_settings(dtype, settings)
    if errors:
        raise InvalidConfiguration({"settings": errors})
    destination = Destination.objects.create(
        workspace=workspace, name=name, type=type_key, settings=clean, enabled=enabled, **dtype.delivery_defaults
    )
    for preset in dtype.presets:
        subscription = Subscription.objects.create(
            destination=destination, name=preset.name, action=preset.action, trigger=preset.trigger,
            mapping=preset.mapping,
        )  # fmt: skip
        _record_version(subscription, user)
    return destination


@transaction.atomic
def save_subscription(
    subscription: Subscription, changes: dict[str, Any], user: AbstractBaseUser | None = None
) -> Subscription:
    """Apply `changes` (any of name, action, trigger, mapping, enabled) as a new version."""
    dtype = destination_type(subscription.destination.type)
    proposed = {**snapshot(subscription), **{k: v for k, v in changes.items() if k in SNAPSHOT_FIELDS}}
    errors = check_subscription(dtype, proposed["action"], proposed["trigger"], proposed["mapping"])
    if errors:
        raise InvalidConfiguration(errors)
    if proposed == snapshot(subscription) and subscription.pk:
        return subscription
    for field, value in proposed.items():
        setattr(subscription, field, value)
    if subscription.pk:
        subscription.version = (
            Subscription.objects.select_for_update().values_list("version", flat=True).get(pk=subscription.pk) + 1
        )
    subscription.save()
    _record_version(subscription, user)
    return subscription


def restore_version(subscription: Subscription, version: int, user: AbstractBaseUser | None = None) -> Subscription:
    """Save an older version's state again, as the newest version (history is never rewritten)."""
    old = subscription.versions.filter(version=version).first()
    if old is None:
        raise InvalidConfiguration({"version": f"this subscription has no version {version}"})
    return save_subscription(subscription, old.snapshot, user)
