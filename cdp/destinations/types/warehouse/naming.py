"""Safe warehouse identifiers from event names, property keys and sources.

Every name is lower snake_case ASCII (`Order Completed` → `order_completed`, `orderId` → `order_id`),
never starts with a digit, and fits the dialect's identifier length: a name cut short ends with a
digest of the whole name, so two long names that share a beginning stay apart."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from cdp.destinations.types.warehouse.dialect import POSTGRES

EVENT_TABLES = {
    "identify": "identifies", "track": "tracks", "page": "pages", "screen": "screens", "group": "groups",
    "alias": "aliases",
}  # fmt: skip
USERS, CONFLICTS = "users", "conflicts"
RESERVED_TABLES = frozenset(EVENT_TABLES.values()) | {USERS, CONFLICTS}

_CAMEL_LOWER_UPPER = re.compile(r"([a-z0-9])([A-Z])")
_CAMEL_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:8]


def identifier(name: str, fallback: str = "column", max_length: int = POSTGRES.max_identifier_length) -> str:
    """`name` as a snake_case identifier; a name with no ASCII letter or digit becomes
    `<fallback>_<digest>` (e.g. an event named in Japanese)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    spaced = _CAMEL_ACRONYM.sub(r"\1_\2", _CAMEL_LOWER_UPPER.sub(r"\1_\2", ascii_name))
    snake = _NOT_WORD.sub("_", spaced.lower()).strip("_")
    if not snake:
        snake = f"{fallback}_{_digest(name)}"
    elif snake[0].isdigit():
        snake = f"_{snake}"
    if len(snake) > max_length:
        snake = f"{snake[: max_length - 9].rstrip('_')}_{_digest(snake)}"
    return snake


def joined(*parts: str, max_length: int = POSTGRES.max_identifier_length) -> str:
    """Column name of a nested key: parent_child, shortened like identifier() when too long."""
    name = "_".join(parts)
    if len(name) > max_length:
        name = f"{name[: max_length - 9].rstrip('_')}_{_digest(name)}"
    return name


def event_table(event: str) -> str:
    """The table of a track event: its name as an identifier, kept clear of the standard tables."""
    name = identifier(event, fallback="event")
    return joined("track", name) if name in RESERVED_TABLES else name


def schema_name(prefix: str, source_id: int) -> str:
    """One schema per source, named by its id so renaming a source never splits its data."""
    return identifier(f"{prefix}_{source_id}", fallback="cdp")
