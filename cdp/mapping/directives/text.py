"""Directives that rewrite text: @case, @replace."""

from __future__ import annotations

import re
from typing import Any

from cdp.mapping.compiler import Compiler, child_path, json_type
from cdp.mapping.directives.convert import to_text
from cdp.mapping.nodes import missing_node
from cdp.mapping.paths import MISSING
from cdp.mapping.results import Invalid, MappingError, Node


def compile_case(arg: Any, path: str, c: Compiler) -> Node:
    options = c.options(arg, path, "@case", required=("operator", "value"))
    if options is None:
        return missing_node
    operator = c.choice(options, "operator", path, "@case", ("lower", "upper"))
    inner = c.argument(options, "value", path, "@case")
    change = str.lower if operator == "lower" else str.upper

    def node(data: Any, errors: list[MappingError]) -> Any:
        value = inner(data, errors)
        if type(value) is str:
            return change(value)
        if type(value) is dict or type(value) is list:
            raise Invalid(f"@case needs a string, got {json_type(value)}")
        return value  # numbers, booleans, null and MISSING have no case

    return node


def compile_replace(arg: Any, path: str, c: Compiler) -> Node:
    options = c.options(
        arg, path, "@replace", required=("pattern", "value"), optional=("replacement", "global", "ignoreCase")
    )
    if options is None:
        return missing_node
    pattern, replacement = options["pattern"], options.get("replacement", "")
    if type(pattern) is not str or not pattern:
        return c.error(child_path(child_path(path, "@replace"), "pattern"), "must be a non-empty string")
    if type(replacement) is not str:
        return c.error(child_path(child_path(path, "@replace"), "replacement"), "must be a string")
    every = c.flag(options, "global", path, "@replace", True)
    ignore_case = c.flag(options, "ignoreCase", path, "@replace", False)
    inner = c.argument(options, "value", path, "@replace")
    # The pattern is plain text, never a regular expression: no escaping surprises and no ReDoS.
    matcher = re.compile(re.escape(pattern), re.IGNORECASE) if ignore_case else None
    count = 0 if every else 1

    def node(data: Any, errors: list[MappingError]) -> Any:
        value = inner(data, errors)
        if value is MISSING or value is None:
            return value
        if type(value) is dict or type(value) is list:
            raise Invalid(f"@replace needs a string, got {json_type(value)}")
        text = to_text(value)
        if matcher is not None:
            return matcher.sub(lambda _match: replacement, text, count=count)
        return text.replace(pattern, replacement, -1 if every else 1)

    return node
