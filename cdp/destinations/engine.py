"""The destination framework's use of the mapping engine and trigger conditions, with caches of
compiled forms so previews and routing compile each trigger and mapping once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from cdp.conditions import Condition, ParseError, compile_condition
from cdp.conditions import check as check_condition
from cdp.mapping import CompiledMapping, InvalidMapping, compile_mapping, validate


@dataclass(frozen=True)
class Outcome:
    matched: bool
    payload: Any
    errors: list[str]


def trigger_error(trigger: Any) -> str | None:
    if not isinstance(trigger, str) or not trigger.strip():
        return 'give a condition, e.g. type = "track"'
    problem = check_condition(trigger)
    return str(problem) if problem else None


def mapping_errors(mapping: Any) -> list[str]:
    return [str(error) for error in validate(mapping)]


@lru_cache(maxsize=1024)
def _trigger(text: str) -> Condition:
    return compile_condition(text)


@lru_cache(maxsize=1024)
def _mapping(text: bytes) -> CompiledMapping:
    return compile_mapping(orjson.loads(text))


def compiled_trigger(trigger: str) -> Condition:
    return _trigger(trigger)


def compiled_mapping(mapping: Any) -> CompiledMapping:
    return _mapping(orjson.dumps(mapping, option=orjson.OPT_SORT_KEYS))


def run(trigger: str, mapping: Any, event: dict[str, Any]) -> Outcome:
    """Whether the trigger matches the event and, if it does, the mapped payload. Never raises."""
    try:
        condition = compiled_trigger(trigger)
    except ParseError as exc:
        return Outcome(False, None, [f"trigger: {exc}"])
    if not condition(event):
        return Outcome(False, None, [])
    try:
        compiled = compiled_mapping(mapping)
    except InvalidMapping as exc:
        return Outcome(True, None, [str(error) for error in exc.errors])
    result = compiled.resolve(event)
    return Outcome(True, result.value, [str(error) for error in result.errors])
