"""Turns a mapping (JSON whose leaves may be directives) into closures, validating it on the way.

Validation and compilation are one pass: each directive's compile function checks its argument,
records problems on the Compiler and returns a node. validate() keeps the problems; compile_mapping()
refuses a mapping that has any, so a compiled mapping never meets a malformed directive at run time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cdp.mapping.nodes import constant_node, list_node, missing_node, object_node
from cdp.mapping.paths import MISSING
from cdp.mapping.results import MappingError, Node

DirectiveCompiler = Callable[[Any, str, "Compiler"], Node]

_PLAIN_KEY = re.compile(r"[A-Za-z_@$][\w@$-]*")
_SCALARS = (str, int, float, bool)


def child_path(path: str, key: str | int) -> str:
    """`fields` + `email` -> `fields.email`; `items` + 2 -> `items[2]`; odd keys are quoted."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'{path}["{escaped}"]'


class Compiler:
    """Compiles one mapping; collects every problem rather than stopping at the first."""

    def __init__(self, directives: Mapping[str, DirectiveCompiler]) -> None:
        self.directives = directives
        self.errors: list[MappingError] = []

    def error(self, path: str, message: str) -> Node:
        """Records a problem; returns a node that resolves to MISSING so compilation can carry on."""
        self.errors.append(MappingError(path, message))
        return missing_node

    def compile(self, mapping: Any, path: str) -> Node:
        kind = type(mapping)
        if kind is dict:
            return self._dict(mapping, path)
        if kind is list:
            items = []
            for index, item in enumerate(mapping):
                item_path = child_path(path, index)
                items.append((item_path, self.compile(item, item_path)))
            return list_node(items)
        if mapping is None or kind in _SCALARS:
            return constant_node(mapping)
        return self.error(path, f"not a JSON value: {kind.__name__}")

    def _dict(self, mapping: dict[Any, Any], path: str) -> Node:
        bad_keys = [key for key in mapping if not isinstance(key, str)]
        if bad_keys:
            return self.error(path, f"object keys must be strings, got {bad_keys[0]!r}")
        names = [key for key in mapping if key.startswith("@")]
        if not names:
            fields = []
            for key, value in mapping.items():
                field_path = child_path(path, key)
                fields.append((key, field_path, self.compile(value, field_path)))
            return object_node(fields)
        if len(mapping) > 1:
            others = ", ".join(sorted(key for key in mapping if key != names[0]))
            return self.error(path, f"{names[0]} must be the only key in its object, found also: {others}")
        name = names[0]
        compile_directive = self.directives.get(name)
        if compile_directive is None:
            return self.error(path, f"unknown directive {name}")
        return compile_directive(mapping[name], path, self)

    def options(
        self,
        arg: Any,
        path: str,
        name: str,
        required: Iterable[str] = (),
        optional: Iterable[str] = (),
    ) -> dict[str, Any] | None:
        """Checks a directive's object argument: keys known, required keys present. None if unusable."""
        if type(arg) is not dict:
            self.error(path, f"{name} needs an object, got {json_type(arg)}")
            return None
        required = tuple(required)
        known = set(required) | set(optional)
        for key in arg:
            if key not in known:
                self.error(path, f"{name} has no option {key!r} (options: {', '.join(sorted(known))})")
        missing = [key for key in required if key not in arg]
        for key in missing:
            self.error(path, f"{name} needs {key!r}")
        # Unknown options are reported but the rest is still checked, so one pass shows every problem.
        return None if missing else arg

    def argument(self, options: dict[str, Any], key: str, path: str, name: str) -> Node:
        """Compiles the sub-mapping under `key` of a directive's options (missing key -> MISSING)."""
        if key not in options:
            return missing_node
        return self.compile(options[key], child_path(child_path(path, name), key))

    def choice(self, options: dict[str, Any], key: str, path: str, name: str, allowed: tuple[str, ...]) -> str | None:
        """A string option that must be one of `allowed` (the first is the default); None if it is not."""
        value = options.get(key, allowed[0])
        if type(value) is not str or value not in allowed:
            self.error(child_path(child_path(path, name), key), f"must be one of {', '.join(allowed)}, got {value!r}")
            return None
        return value

    def flag(self, options: dict[str, Any], key: str, path: str, name: str, default: bool) -> bool:
        value = options.get(key, default)
        if type(value) is not bool:
            self.error(child_path(child_path(path, name), key), f"must be true or false, got {value!r}")
            return default
        return value


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is MISSING:
        return "nothing"
    if value is None:
        return "null"
    if type(value) is bool:
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
