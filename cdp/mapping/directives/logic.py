"""Directives that choose and reshape values: @if, @excludeWhenNull, @merge, @flatten, @json."""

from __future__ import annotations

import json
from typing import Any

from cdp.mapping.compiler import Compiler, child_path, json_type
from cdp.mapping.directives.convert import shown
from cdp.mapping.nodes import missing_node
from cdp.mapping.paths import MISSING
from cdp.mapping.results import Invalid, MappingError, Node


def _blank(value: Any) -> bool:
    if value is MISSING or value is None:
        return True
    if type(value) is str:
        return not value.strip()
    return (type(value) is list or type(value) is dict) and not value


def compile_if(arg: Any, path: str, c: Compiler) -> Node:
    options = c.options(arg, path, "@if", optional=("exists", "blank", "then", "else"))
    if options is None:
        return missing_node
    tests = [key for key in ("exists", "blank") if key in options]
    if len(tests) != 1:
        return c.error(path, "@if needs exactly one test: 'exists' or 'blank'")
    if "then" not in options and "else" not in options:
        return c.error(path, "@if needs 'then', 'else' or both")
    test_name = tests[0]
    subject = c.argument(options, test_name, path, "@if")
    then = c.argument(options, "then", path, "@if")
    otherwise = c.argument(options, "else", path, "@if")

    if test_name == "exists":

        def if_exists(data: Any, errors: list[MappingError]) -> Any:
            value = subject(data, errors)
            if value is not MISSING and value is not None:
                return then(data, errors)
            return otherwise(data, errors)

        return if_exists

    def if_blank(data: Any, errors: list[MappingError]) -> Any:
        if _blank(subject(data, errors)):
            return then(data, errors)
        return otherwise(data, errors)

    return if_blank


def _without_nulls(value: Any) -> Any:
    if type(value) is dict:
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if type(value) is list:
        return [_without_nulls(item) for item in value]
    return value


def compile_exclude_when_null(arg: Any, path: str, c: Compiler) -> Node:
    inner = c.compile(arg, child_path(path, "@excludeWhenNull"))

    def node(data: Any, errors: list[MappingError]) -> Any:
        value = inner(data, errors)
        if value is None:
            return MISSING
        return _without_nulls(value)

    return node


def compile_merge(arg: Any, path: str, c: Compiler) -> Node:
    options = c.options(arg, path, "@merge", required=("objects",), optional=("direction",))
    if options is None:
        return missing_node
    direction = c.choice(options, "direction", path, "@merge", ("right", "left"))
    if type(options["objects"]) is not list:
        return c.error(
            child_path(child_path(path, "@merge"), "objects"), f"must be an array, got {json_type(options['objects'])}"
        )
    parts = c.argument(options, "objects", path, "@merge")
    later_wins = direction == "right"

    def node(data: Any, errors: list[MappingError]) -> Any:
        merged: dict[str, Any] = {}
        objects = parts(data, errors)
        for part in objects if later_wins else reversed(objects):
            if part is None:
                continue
            if type(part) is not dict:
                raise Invalid(f"@merge can only merge objects, got {json_type(part)}")
            merged.update(part)
        return merged

    return node


def _flatten(value: Any, prefix: str, separator: str, omit_arrays: bool, out: dict[str, Any]) -> None:
    if type(value) is dict:
        items: Any = value.items()
    elif type(value) is list and not omit_arrays:
        items = enumerate(value)
    else:
        out[prefix] = value
        return
    if not value and prefix:
        out[prefix] = value  # an empty object or array has no leaves; keep it rather than lose the key
        return
    for key, item in items:
        _flatten(item, f"{prefix}{separator}{key}" if prefix else str(key), separator, omit_arrays, out)


def compile_flatten(arg: Any, path: str, c: Compiler) -> Node:
    options = c.options(arg, path, "@flatten", required=("value",), optional=("separator", "omitArrays"))
    if options is None:
        return missing_node
    separator = options.get("separator", ".")
    if type(separator) is not str:
        return c.error(child_path(child_path(path, "@flatten"), "separator"), "must be a string")
    omit_arrays = c.flag(options, "omitArrays", path, "@flatten", False)
    inner = c.argument(options, "value", path, "@flatten")

    def node(data: Any, errors: list[MappingError]) -> Any:
        value = inner(data, errors)
        if value is MISSING or value is None:
            return value
        if type(value) is not dict and type(value) is not list:
            raise Invalid(f"@flatten needs an object or array, got {json_type(value)}")
        out: dict[str, Any] = {}
        _flatten(value, "", separator, omit_arrays, out)
        return out

    return node


def compile_json(arg: Any, path: str, c: Compiler) -> Node:
    options = c.options(arg, path, "@json", required=("mode", "value"))
    if options is None:
        return missing_node
    mode = c.choice(options, "mode", path, "@json", ("encode", "decode"))
    inner = c.argument(options, "value", path, "@json")
    if mode == "encode":

        def encode(data: Any, errors: list[MappingError]) -> Any:
            value = inner(data, errors)
            if value is MISSING:
                return value
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

        return encode

    def decode(data: Any, errors: list[MappingError]) -> Any:
        value = inner(data, errors)
        if value is MISSING or value is None:
            return value
        if type(value) is not str:
            raise Invalid(f"@json decode needs a string, got {json_type(value)}")
        try:
            return json.loads(value)
        except ValueError:
            raise Invalid(f"@json cannot decode {shown(value)}") from None

    return decode
