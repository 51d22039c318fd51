"""The catalog of destination types. A type is one module under types/ plus one line here."""

from __future__ import annotations

from cdp.destinations.framework import DestinationType

_TYPES: dict[str, DestinationType] = {}
_BUILTIN = [
    "cdp.destinations.types.webhook",
    "cdp.destinations.types.s3_archive",
    "cdp.destinations.types.warehouse",
]


def register(destination_type: DestinationType) -> DestinationType:
    if destination_type.key in _TYPES and _TYPES[destination_type.key] is not destination_type:
        raise ValueError(f"destination type {destination_type.key!r} is registered twice")
    _TYPES[destination_type.key] = destination_type
    return destination_type


def get(key: str) -> DestinationType | None:
    return _TYPES.get(key)


def all_types() -> list[DestinationType]:
    return sorted(_TYPES.values(), key=lambda t: t.name.lower())


def load_builtin_types() -> None:
    import importlib

    for module in _BUILTIN:
        importlib.import_module(module)
