"""Checking a destination's settings against its type's field definitions, and hiding secrets."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from cdp.destinations.framework import DestinationType, SettingField

SECRET_MASK = "********"


def _check_value(spec: SettingField, value: Any) -> str | None:
    if spec.type in ("string", "text"):
        return None if isinstance(value, str) else "must be a string"
    if spec.type == "url":
        if not isinstance(value, str):
            return "must be a URL"
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return "must be an http:// or https:// URL"
        return None
    if spec.type == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else "must be a number"
    if spec.type == "integer":
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be a whole number"
    if spec.type == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if spec.type == "select":
        return None if value in spec.choices else f"must be one of {', '.join(spec.choices)}"
    if spec.type == "object":
        return None if isinstance(value, dict) else "must be a JSON object"
    return f"has an unknown field type {spec.type!r}"


def clean_settings(
    destination_type: DestinationType, submitted: dict[str, Any], current: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings to store, and errors by field key.

    A secret left out, empty or still masked keeps its current value, so forms and API clients
    never need to know it to change something else.
    """
    current = current or {}
    specs = {s.key: s for s in destination_type.settings}
    errors = {key: "is not a setting of this destination type" for key in submitted if key not in specs}
    clean: dict[str, Any] = {}
    for key, spec in specs.items():
        value = submitted.get(key)
        if spec.secret and value in (None, "", SECRET_MASK):
            value = current.get(key)
        elif key not in submitted:
            value = current.get(key, spec.default)
        if value is None or value == "":
            if spec.required:
                errors[key] = "is required"
            continue
        problem = _check_value(spec, value)
        if problem:
            errors[key] = problem
        else:
            clean[key] = value
    return clean, errors


def public_settings(destination_type: DestinationType | None, stored: dict[str, Any]) -> dict[str, Any]:
    """Settings as shown by the API and the dashboard: secrets only say whether they are set."""
    secrets = destination_type.secret_keys() if destination_type else set()
    return {key: (SECRET_MASK if key in secrets and value else value) for key, value in stored.items()}
