"""Directives that read the event: @path, @template, @literal, @arrayPath."""

from __future__ import annotations

import re
from typing import Any

from cdp.mapping.compiler import Compiler, child_path, json_type
from cdp.mapping.directives.convert import to_text
from cdp.mapping.nodes import constant_node, missing_node, run_guarded
from cdp.mapping.paths import MISSING, Getter, PathError, compile_getter, parse_path
from cdp.mapping.results import Invalid, MappingError, Node

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def _getter(text: str, path: str, name: str, c: Compiler) -> Getter | None:
    try:
        return compile_getter(parse_path(text.strip()))
    except PathError as exc:
        c.error(path, f"{name} {text!r}: {exc.message}")
        return None


def compile_path(arg: Any, path: str, c: Compiler) -> Node:
    if type(arg) is str:
        texts = [arg]
    elif type(arg) is list and arg and all(type(text) is str for text in arg):
        texts = arg
    else:
        return c.error(path, f"@path needs a string path (or a list of them, tried in turn), got {json_type(arg)}")
    getters = [getter for text in texts if (getter := _getter(text, path, "@path", c)) is not None]
    if len(getters) != len(texts):
        return missing_node  # the bad paths are already reported
    if len(getters) == 1:
        # A getter is itself a node: the commonest field costs one call.
        return getters[0]
    return _fallbacks(getters)


def _fallbacks(getters: list[Getter]) -> Node:
    def node(data: Any, errors: list[MappingError]) -> Any:
        seen_null = False
        for get in getters:
            value = get(data)
            if value is None:
                seen_null = True
            elif value is not MISSING:
                return value
        return None if seen_null else MISSING

    return node


def _template_text(value: Any) -> str:
    if type(value) is str:
        return value
    if value is MISSING or value is None:
        return ""
    return to_text(value)


def compile_template(arg: Any, path: str, c: Compiler) -> Node:
    if type(arg) is not str:
        return c.error(path, f"@template needs a string, got {json_type(arg)}")
    literals: list[str] = []
    getters: list[Getter] = []
    position = 0
    for match in _PLACEHOLDER.finditer(arg):
        literals.append(arg[position : match.start()])
        getter = _getter(match.group(1), path, "@template placeholder", c)
        if getter is None:
            return missing_node
        getters.append(getter)
        position = match.end()
    literals.append(arg[position:])
    if any("{{" in literal for literal in literals):
        return c.error(path, "@template has a '{{' without its '}}'")
    if not getters:
        return constant_node(arg)
    return _template(literals, getters)


def _template(literals: list[str], getters: list[Getter]) -> Node:
    head, tails = literals[0], literals[1:]
    if len(getters) == 1:
        get, tail = getters[0], tails[0]

        def single(data: Any, errors: list[MappingError]) -> str:
            value = get(data)
            return head + (value if type(value) is str else _template_text(value)) + tail

        return single
    if len(getters) == 2:
        first, middle, second, tail = getters[0], tails[0], getters[1], tails[1]

        def double(data: Any, errors: list[MappingError]) -> str:
            one, two = first(data), second(data)
            return (
                head
                + (one if type(one) is str else _template_text(one))
                + middle
                + (two if type(two) is str else _template_text(two))
                + tail
            )

        return double
    pairs = list(zip(getters, tails, strict=True))

    def node(data: Any, errors: list[MappingError]) -> str:
        out = [head]
        for get, tail in pairs:
            value = get(data)
            out.append(value if type(value) is str else _template_text(value))
            out.append(tail)
        return "".join(out)

    return node


def compile_literal(arg: Any, path: str, c: Compiler) -> Node:
    return constant_node(arg)


def compile_array_path(arg: Any, path: str, c: Compiler) -> Node:
    if type(arg) is not list or not 1 <= len(arg) <= 2:
        return c.error(path, "@arrayPath needs [source] or [source, item mapping]")
    source_path = child_path(child_path(path, "@arrayPath"), 0)
    if type(arg[0]) is str:
        getter = _getter(arg[0], path, "@arrayPath", c)
        source: Node = getter if getter is not None else missing_node
    else:
        source = c.compile(arg[0], source_path)
    if len(arg) == 1:
        return _array(source, None, "", path)
    shape_path = child_path(child_path(path, "@arrayPath"), 1)
    return _array(source, c.compile(arg[1], shape_path), shape_path, path)


def _array(source: Node, shape: Node | None, shape_path: str, path: str) -> Node:
    def node(data: Any, errors: list[MappingError]) -> Any:
        found = source(data, errors)
        if found is MISSING or found is None:
            return found
        if type(found) is dict:
            items = [found]
        elif type(found) is list:
            items = found
        else:
            raise Invalid(f"@arrayPath expected an array, got {json_type(found)}")
        if shape is None:
            return list(items)
        out = []
        for index, item in enumerate(items):
            mark = len(errors)
            value = run_guarded(shape, item, errors, shape_path)
            if len(errors) > mark:
                _rebase(errors, mark, shape_path, f"{path}[{index}]")
            if value is not MISSING:
                out.append(value)
        return out

    return node


def _rebase(errors: list[MappingError], start: int, old: str, new: str) -> None:
    """Errors inside an item carry the item mapping's location; report the output's (`items[2].price`)."""
    for i in range(start, len(errors)):
        error = errors[i]
        if error.path.startswith(old):
            errors[i] = MappingError(new + error.path[len(old) :], error.message)
