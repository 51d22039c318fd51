"""The mapping editor's form: action fields as rows (an event field, a fixed value, a template, keys of an
object, or raw JSON) turned into a mapping and back, the trigger builder's rows read from a condition,
and the event fields offered by the pickers.

Validation stays with cdp.destinations.services.check_subscription; this module only reports what it
cannot even turn into a mapping (JSON that does not parse, a number that is not one).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

from cdp.conditions import ParseError, parse
from cdp.conditions.syntax import And, Compare, Constant, Exists, Literal, Not, Or, Path
from cdp.destinations.framework import Action, ActionField
from cdp.processing.models import Event

MODES = [
    ("", "Leave out"),
    ("path", "Field of the event"),
    ("literal", "Fixed value"),
    ("template", "Template"),
    ("object", "Object, key by key"),
    ("json", "Advanced (JSON mapping)"),
]
KEY_MODES = [("path", "Event field"), ("literal", "Fixed text"), ("template", "Template"), ("json", "JSON")]
SCHEMA_EVENTS = 50  # recent events read for field paths when no observed schema is kept
SCHEMA_DEPTH = 4
COMMON_FIELDS = ["type", "event", "name", "userId", "anonymousId", "messageId", "timestamp", "context.page.path"]


@dataclass
class Row:
    """One editable value: a whole action field, or one key of an object field."""

    mode: str = ""
    value: str = ""
    key: str = ""
    keys: list[Row] = field(default_factory=list)


def _literal_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def row_for(mapping: Any, spec_type: str = "string", nested: bool = False) -> Row:
    """How a stored mapping value is shown in the editor."""
    if isinstance(mapping, dict) and len(mapping) == 1:
        name, argument = next(iter(mapping.items()))
        if name == "@path" and isinstance(argument, str):
            return Row("path", argument)
        if name == "@template" and isinstance(argument, str):
            return Row("template", argument)
    if _is_literal(mapping, spec_type):
        return Row("literal", _literal_text(mapping))
    plain_object = isinstance(mapping, dict) and not any(str(k).startswith("@") for k in mapping)
    if not nested and spec_type == "object" and plain_object:
        return Row("object", keys=[Row(**vars(row_for(v, nested=True)) | {"key": k}) for k, v in mapping.items()])
    return Row("json", json.dumps(mapping, indent=2, ensure_ascii=False))


def _is_literal(mapping: Any, spec_type: str) -> bool:
    """Whether a raw value reads back the same from a "fixed value" row of a field of this type."""
    if spec_type == "boolean":
        return isinstance(mapping, bool)
    if spec_type in ("number", "integer"):
        kinds = (int,) if spec_type == "integer" else (int, float)
        return isinstance(mapping, kinds) and not isinstance(mapping, bool)
    return isinstance(mapping, str) and spec_type != "object"


def rows_for(action: Action, mapping: dict[str, Any]) -> dict[str, Row]:
    return {f.key: row_for(mapping[f.key], f.type) if f.key in mapping else Row() for f in action.fields}


def _prefix(name: str) -> str:
    return f"m.{name}"


def _value(mode: str, text: str, spec_type: str) -> Any:
    """The mapping for one row; ValueError says what is wrong with the text."""
    if mode == "path":
        path = text.strip()
        if not path:
            raise ValueError("choose a field of the event")
        return {"@path": path}
    if mode == "template":
        return {"@template": text}
    if mode == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if mode == "literal":
        return _typed_literal(text, spec_type)
    raise ValueError(f"unknown kind of value {mode!r}")


def _typed_literal(text: str, spec_type: str) -> Any:
    if spec_type == "boolean":
        if text.strip().lower() not in ("true", "false"):
            raise ValueError("give true or false")
        return text.strip().lower() == "true"
    if spec_type in ("number", "integer"):
        try:
            return int(text.strip())
        except ValueError:
            if spec_type == "integer":
                raise ValueError("give a whole number, e.g. 42") from None
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ValueError("give a number, e.g. 42 or 9.99")
        return number
    if spec_type == "object":
        raise ValueError("a fixed value of an object field is written as JSON: choose Advanced")
    return text


def submitted_rows(action: Action, data: QueryDict) -> dict[str, Row]:
    """The rows as submitted, so a form with errors shows exactly what was typed."""
    rows = {}
    for spec in action.fields:
        prefix = _prefix(spec.key)
        keys = [
            Row(mode, value, key)
            for key, mode, value in zip(
                data.getlist(f"{prefix}.key"), data.getlist(f"{prefix}.kmode"), data.getlist(f"{prefix}.kvalue"),
                strict=False,
            )
            if key.strip() or value.strip()
        ]  # fmt: skip
        mode = data.get(f"{prefix}.mode", "")
        # Raw JSON has its own text area, so switching kinds back and forth loses nothing typed.
        value = data.get(f"{prefix}.json" if mode == "json" else f"{prefix}.value", "")
        rows[spec.key] = Row(mode, value, keys=keys)
    return rows


def mapping_from_rows(action: Action, rows: dict[str, Row]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The mapping the rows describe, and what could not be read, by action field key."""
    mapping: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    specs = {spec.key: spec for spec in action.fields}
    for key, row in rows.items():
        problems: list[str] = []
        try:
            if row.mode == "object":
                mapping[key] = _object(row.keys, problems)
            elif row.mode:
                mapping[key] = _value(row.mode, row.value, specs[key].type)
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            errors[key] = problems
    return mapping, errors


def _object(keys: list[Row], problems: list[str]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for row in keys:
        name = row.key.strip()
        if not name:
            problems.append("give every key a name")
            continue
        if name in value:
            problems.append(f"{name}: appears twice")
            continue
        try:
            value[name] = _value(row.mode, row.value, "string")
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    return value


def errors_by_field(action: Action, messages: Iterable[str]) -> tuple[dict[str, list[str]], list[str]]:
    """check_subscription's mapping errors ("payload.email: ...") under the action field they are about."""
    keys = sorted((f.key for f in action.fields), key=len, reverse=True)
    placed: dict[str, list[str]] = {}
    general: list[str] = []
    for message in messages:
        owner = next((k for k in keys if message.startswith((f"{k}:", f"{k}.", f"{k}["))), None)
        if owner is None:
            general.append(message)
        else:
            placed.setdefault(owner, []).append(message.removeprefix(f"{owner}: "))
    return placed, general


# --- Trigger builder ------------------------------------------------------------------------------------


def _builder_test(expr: Any) -> dict[str, Any] | None:
    negate = isinstance(expr, Not)
    inner = expr.operand if negate else expr
    if isinstance(inner, Exists) and isinstance(inner.operand, Path):
        return {"field": inner.operand.text, "op": "not exists" if negate else "exists", "value": ""}
    if not (isinstance(inner, Compare) and isinstance(inner.left, Path) and isinstance(inner.right, Literal)):
        return None
    operator = {"==": "="}.get(inner.operator, inner.operator)
    if negate:
        if operator not in ("in", "contains", "starts_with", "ends_with"):
            return None
        operator = f"not {operator}"
    return {"field": inner.left.text, "op": operator, "value": _builder_value(inner.right.value)}


def _builder_value(value: Any) -> str:
    """Text shows unquoted in the builder unless it would read as something else (a number, true, a list)."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            if value.strip() == value and value and value[0] not in "\"'[":
                return value
    return json.dumps(value, ensure_ascii=False)


def builder_rows(trigger: str) -> dict[str, Any] | None:
    """The trigger as builder rows ({"join": "all" | "any", "rows": [...]}) when it is a flat list of
    field-operator-value tests; None when it is not (or does not parse): then only the text box edits it."""
    try:
        tree = parse(trigger)
    except ParseError:
        return None
    if isinstance(tree, Constant):
        return {"join": "all", "rows": []} if tree.value else None
    if isinstance(tree, Or):
        join, tests = "any", tree.operands
    else:
        join, tests = "all", tree.operands if isinstance(tree, And) else (tree,)
    rows = [_builder_test(test) for test in tests]
    return None if any(row is None for row in rows) else {"join": join, "rows": rows}


# --- Event fields for the pickers -------------------------------------------------------------------------


def _walk(value: Any, prefix: str, depth: int, found: dict[str, str]) -> None:
    if isinstance(value, dict) and depth < SCHEMA_DEPTH:
        for key, item in value.items():
            if isinstance(key, str) and key.replace("_", "").replace("-", "").isalnum():
                _walk(item, f"{prefix}.{key}" if prefix else key, depth + 1, found)
        return
    if prefix:
        found.setdefault(prefix, _json_type(value))


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}.get(type(value), "value")


def event_fields(source_ids: list[int]) -> list[tuple[str, str]]:
    """(path, JSON types) of the fields seen in events of these sources: from the observed schema (most
    frequent first), or, when it holds nothing yet (events stored before it was kept), from the latest
    stored events."""
    try:
        from cdp.insights.schema import field_paths
    except ImportError:  # an installation without the insights app
        observed: list[tuple[str, str]] = []
    else:
        observed = [(str(path).removeprefix("$."), str(kind)) for path, kind in field_paths(source_ids)]
    if not observed:
        found: dict[str, str] = {}
        events = Event.objects.filter(source_id__in=source_ids).order_by("-id").values_list("payload", flat=True)
        for payload in events[:SCHEMA_EVENTS]:
            _walk(payload, "", 0, found)
        observed = sorted(found.items())
    kinds: dict[str, list[str]] = {}
    for path, kind in observed:
        kinds.setdefault(path, []).append(kind)
    return [(path, ", ".join(found_kinds)) for path, found_kinds in kinds.items()]


def field_label(spec: ActionField) -> str:
    return f"{spec.label} ({spec.key})" if spec.label.lower() != spec.key.lower() else spec.label
