"""A destination type is data: settings fields, actions with mapped fields, a default trigger.

Presets are derived from the actions' defaults, so a type's presets can never drift from its
fields. Nothing in the core code branches on a type's key.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from django.utils.module_loading import import_string

# The trigger of actions that take every call, and the mapping of a field that takes the whole event.
EVERY_EVENT_TRIGGER = 'type in ["identify", "track", "page", "screen", "group", "alias"]'
WHOLE_EVENT = {"@path": "$"}

SETTING_TYPES = frozenset({"string", "text", "url", "number", "integer", "boolean", "select", "object"})


@dataclass(frozen=True)
class SettingField:
    key: str
    label: str
    type: str = "string"
    required: bool = False
    secret: bool = False
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "label": self.label, "type": self.type, "required": self.required,
            "secret": self.secret, "default": self.default, "help": self.help, "choices": list(self.choices),
        }  # fmt: skip


@dataclass(frozen=True)
class ActionField:
    """One field of an action's payload; `default` is a mapping (directives allowed)."""

    key: str
    label: str
    type: str = "string"
    required: bool = False
    default: Any = None
    help: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "label": self.label, "type": self.type, "required": self.required,
            "default": self.default, "help": self.help,
        }  # fmt: skip


@dataclass(frozen=True)
class Action:
    key: str
    name: str
    description: str
    fields: tuple[ActionField, ...]
    default_trigger: str
    batchable: bool = False

    def default_mapping(self) -> dict[str, Any]:
        # Copies: a saved subscription must never share (and change) a type's declared defaults.
        return {f.key: copy.deepcopy(f.default) for f in self.fields if f.default is not None}

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "name": self.name, "description": self.description,
            "fields": [f.as_dict() for f in self.fields], "default_trigger": self.default_trigger,
            "batchable": self.batchable,
        }  # fmt: skip


@dataclass(frozen=True)
class Preset:
    name: str
    action: str
    trigger: str
    mapping: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action, "trigger": self.trigger, "mapping": self.mapping}


@dataclass(frozen=True)
class ConnectionCheck:
    """What a connection test found: whether events would get through, and a sentence saying why."""

    ok: bool
    message: str
    duration_ms: float | None = None


# Stands in for a secret in audit entries; a changed secret reads differently so the change still shows.
AUDIT_SECRET = "••••••"
AUDIT_SECRET_CHANGED = "•••••• (changed)"


@dataclass(frozen=True)
class DestinationType:
    key: str
    name: str
    description: str
    category: str
    settings: tuple[SettingField, ...]
    actions: tuple[Action, ...]
    extra_presets: tuple[Preset, ...] = field(default=())
    # Import path of the class that sends deliveries (see cdp.delivery.senders.Sender).
    sender: str = ""
    # Delivery defaults for new destinations of this type (fields of core.Destination).
    delivery_defaults: dict[str, Any] = field(default_factory=dict)
    # Import path of a function (core.Destination) -> ConnectionCheck that tries the saved settings
    # the way deliveries would use them; empty: the type offers no connection test.
    connection_test: str = ""

    def action(self, key: str) -> Action | None:
        return next((a for a in self.actions if a.key == key), None)

    @property
    def presets(self) -> tuple[Preset, ...]:
        derived = tuple(Preset(a.name, a.key, a.default_trigger, a.default_mapping()) for a in self.actions)
        return derived + self.extra_presets

    def secret_keys(self) -> set[str]:
        return {s.key for s in self.settings if s.secret}

    def check_connection(self, destination: Any) -> ConnectionCheck:
        """Run the type's connection test. The test classifies the failures it expects; anything else
        (a bug, a library refusing odd settings) is still reported as a failed test, never an error page."""
        if not self.connection_test:
            return ConnectionCheck(False, f"{self.name} destinations have no connection test.")
        started = time.perf_counter()
        try:
            return import_string(self.connection_test)(destination)
        except Exception as exc:  # reported to the user, who can act on the message
            return ConnectionCheck(False, f"the test could not run: {type(exc).__name__}: {exc}", _ms(started))

    def settings_for_audit(
        self, before: dict[str, Any], after: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Both sides of a settings change with every secret masked (the audit log only masks keys that
        look secret, and a connection URL does not)."""
        secrets = self.secret_keys()

        def hide(settings: dict[str, Any], changed: set[str]) -> dict[str, Any]:
            return {
                key: (AUDIT_SECRET_CHANGED if key in changed else AUDIT_SECRET) if key in secrets and value else value
                for key, value in settings.items()
            }

        changed = {key for key in secrets if before.get(key) and after.get(key) and before[key] != after[key]}
        return hide(before, set()), hide(after, changed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "name": self.name, "description": self.description, "category": self.category,
            "settings": [s.as_dict() for s in self.settings], "actions": [a.as_dict() for a in self.actions],
            "presets": [p.as_dict() for p in self.presets],
        }  # fmt: skip


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
