"""The mapping engine's entry points: validate, compile once, resolve many events."""

from __future__ import annotations

import json
from typing import Any

from cdp.mapping.compiler import Compiler
from cdp.mapping.directives import DIRECTIVES
from cdp.mapping.nodes import missing_node, record_error
from cdp.mapping.paths import MISSING
from cdp.mapping.results import InvalidMapping, MappingError, Node, Resolution


class CompiledMapping:
    """A validated mapping turned into closures; resolve() it against as many events as you like."""

    __slots__ = ("mapping", "path", "_root")

    def __init__(self, mapping: Any, root: Node, path: str) -> None:
        self.mapping = mapping
        self.path = path
        self._root = root

    def resolve(self, event: Any) -> Resolution:
        """Never raises: wrong types become errors in the Resolution, missing values are left out."""
        errors: list[MappingError] = []
        try:
            value = self._root(event, errors)
        except Exception as exc:
            record_error(errors, self.path, exc)
            return Resolution(None, errors)
        return Resolution(None if value is MISSING else value, errors)

    def __repr__(self) -> str:
        return f"CompiledMapping({json.dumps(self.mapping)[:80]})"


def _compile(mapping: Any, path: str) -> tuple[Node, list[MappingError]]:
    compiler = Compiler(DIRECTIVES)
    try:
        root = compiler.compile(mapping, path)
    except RecursionError:  # hundreds of levels deep, or an object that contains itself
        return missing_node, [MappingError(path, "the mapping nests too deeply")]
    return root, compiler.errors


def validate(mapping: Any, path: str = "") -> list[MappingError]:
    """Every problem in a mapping, each naming where it is (`path` prefixes them, e.g. "fields")."""
    return _compile(mapping, path)[1]


def compile_mapping(mapping: Any, path: str = "") -> CompiledMapping:
    """Compiles a mapping for fast repeated resolution; raises InvalidMapping if validate() finds problems."""
    root, errors = _compile(mapping, path)
    if errors:
        raise InvalidMapping(errors)
    return CompiledMapping(mapping, root, path)


_RECENT: dict[str, CompiledMapping | list[MappingError]] = {}
_RECENT_SIZE = 256


def resolve(mapping: Any, event: Any) -> Resolution:
    """One-off resolution (previews, tests). Never raises: an invalid mapping comes back as its errors."""
    # Keyed by repr(), which tells 1 from "1" and True from 1 where JSON text would not.
    key = repr(mapping)
    compiled = _RECENT.get(key)
    if compiled is None:
        try:
            compiled = compile_mapping(mapping)
        except InvalidMapping as exc:
            compiled = exc.errors
        if len(_RECENT) >= _RECENT_SIZE:
            _RECENT.clear()
        _RECENT[key] = compiled
    if isinstance(compiled, list):
        return Resolution(None, list(compiled))
    return compiled.resolve(event)
