"""Building blocks of compiled mappings: constants, objects, arrays, and error capture.

A node is a function (data, errors) -> value | MISSING. A node raises Invalid for a value of the
wrong type; the nearest object field or array element catches it, records it and leaves itself out.
"""

from __future__ import annotations

import copy
from typing import Any

from cdp.mapping.paths import MISSING
from cdp.mapping.results import Invalid, MappingError, Node


def missing_node(data: Any, errors: list[MappingError]) -> Any:
    return MISSING


def constant_node(value: Any) -> Node:
    if isinstance(value, dict | list):
        # Hand out a fresh copy so that a caller mutating one payload cannot change the next one.
        def node(data: Any, errors: list[MappingError]) -> Any:
            return copy.deepcopy(value)

        return node

    def const(data: Any, errors: list[MappingError]) -> Any:
        return value

    return const


def record_error(errors: list[MappingError], path: str, exc: Exception) -> None:
    if isinstance(exc, Invalid):
        errors.append(MappingError(path, exc.message))
    else:
        errors.append(MappingError(path, f"unexpected error: {type(exc).__name__}: {exc}"))


def run_guarded(node: Node, data: Any, errors: list[MappingError], path: str) -> Any:
    """Runs a node where a failure must be reported rather than raised (array items, the root)."""
    try:
        return node(data, errors)
    # Any exception, not only Invalid: a bug in one directive must cost one field, not the event.
    except Exception as exc:
        record_error(errors, path, exc)
        return MISSING


def object_node(fields: list[tuple[str, str, Node]]) -> Node:
    """Builds a dict; a field resolving to MISSING is left out, a field that fails is reported and left out.

    The node's code is generated once per mapping object, unrolled field by field. A field that is a
    path of plain names (the commonest kind) becomes inline `.get()` steps instead of a call, and
    first steps shared by several fields (`properties`, `context`, `traits`) are looked up once:
    together this halves the cost of a typical mapping. Keys enter the code only as repr() of a str,
    which always reads back as the same string; everything else is passed in by reference.
    """
    namespace: dict[str, Any] = {"MISSING": MISSING, "record_error": record_error, "EMPTY": {}}
    plain = {index: getattr(field, "plain_segments", None) for index, (_key, _path, field) in enumerate(fields)}
    firsts = list(dict.fromkeys(segments[0] for segments in plain.values() if segments and len(segments) > 1))
    hoisted = {first: f"step_{number}" for number, first in enumerate(firsts)}
    lines = ["def node(data, errors):", "    out = {}"]
    if any(plain.values()):
        # EMPTY (never written to) stands in for data that is not an object: every .get() then misses.
        lines.append("    top = data if type(data) is dict else EMPTY")
        lines += [f"    {name} = top.get({first!r}, MISSING)" for first, name in hoisted.items()]
    for index, (key, path, field) in enumerate(fields):
        segments = plain[index]
        if segments:
            lines += _inline_path(key, segments, hoisted)
            continue
        namespace[f"field_{index}"], namespace[f"path_{index}"] = field, path
        lines += [
            "    try:",
            f"        value = field_{index}(data, errors)",
            "    except Exception as exc:",  # any exception: a bug in one directive costs one field
            f"        record_error(errors, path_{index}, exc)",
            "    else:",
            "        if value is not MISSING:",
            f"            out[{key!r}] = value",
        ]
    lines.append("    return out")
    exec(compile("\n".join(lines), "<mapping object>", "exec"), namespace)
    return namespace["node"]


def _inline_path(key: str, segments: tuple[str, ...], hoisted: dict[str, str]) -> list[str]:
    if len(segments) == 1:
        return [
            f"    value = top.get({segments[0]!r}, MISSING)",
            "    if value is not MISSING:",
            f"        out[{key!r}] = value",
        ]
    lines = [f"    value = {hoisted[segments[0]]}"]
    indent = "    "
    for segment in segments[1:]:
        lines += [f"{indent}if type(value) is dict:", f"{indent}    value = value.get({segment!r}, MISSING)"]
        indent += "    "
    return lines + [f"{indent}if value is not MISSING:", f"{indent}    out[{key!r}] = value"]


def list_node(items: list[tuple[str, Node]]) -> Node:
    def node(data: Any, errors: list[MappingError]) -> Any:
        out = []
        for path, item in items:
            try:
                value = item(data, errors)
            except Exception as exc:
                record_error(errors, path, exc)
                continue
            if value is not MISSING:
                out.append(value)
        return out

    return node
