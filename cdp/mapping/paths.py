"""Paths into an event (`$.properties.total`, `properties.products[0].sku`) and fast getters for them.

Shared by the mapping engine and the trigger-condition language, so both read events the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

Segment = str | int
Getter = Callable[..., Any]


class _Missing:
    """The value of a path that is not in the event: distinct from JSON null."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

_NAME = re.compile(r"[^.\[\]\"'\s]+")
_INDEX = re.compile(r"\[(-?\d+)\]")
_QUOTED = re.compile(r"""\[(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\]""")
_ESCAPE = re.compile(r"\\(.)")


class PathError(ValueError):
    """A path string that cannot be parsed; `offset` is where the problem starts."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def parse_path(text: str) -> tuple[Segment, ...]:
    """`$.a.b[0]["c.d"]` -> ("a", "b", 0, "c.d"). A leading `$` or `$.` is optional; `$` alone is the root."""
    if text.startswith("$"):
        pos = 1
        if text.startswith("$."):
            pos = 2
        elif len(text) > 1 and text[1] != "[":
            raise PathError(f"unexpected {text[1]!r} after $", 1)
    else:
        pos = 0
    if pos == len(text):
        if pos == 0:
            raise PathError("empty path", 0)
        if text == "$.":
            raise PathError("expected a name after $.", 2)
        return ()
    segments: list[Segment] = []
    expect_name = pos == 0 or text[pos - 1] == "."
    while pos < len(text):
        if expect_name:
            match = _NAME.match(text, pos)
            if match is None:
                raise PathError(f"expected a name at offset {pos}", pos)
            segments.append(match.group())
            pos = match.end()
        elif (match := _INDEX.match(text, pos)) is not None:
            segments.append(int(match.group(1)))
            pos = match.end()
        elif (match := _QUOTED.match(text, pos)) is not None:
            raw = match.group(1) if match.group(1) is not None else match.group(2)
            segments.append(_ESCAPE.sub(r"\1", raw))
            pos = match.end()
        else:
            raise PathError(f"unexpected {text[pos]!r} at offset {pos}", pos)
        expect_name = False
        if pos < len(text) and text[pos] == ".":
            pos += 1
            expect_name = True
            if pos == len(text):
                raise PathError("path ends with '.'", pos - 1)
        elif pos < len(text) and text[pos] != "[":
            raise PathError(f"unexpected {text[pos]!r} at offset {pos}", pos)
    return tuple(segments)


def format_path(segments: tuple[Segment, ...]) -> str:
    """The canonical spelling of a path, as used in error messages."""
    out = "$"
    for segment in segments:
        if isinstance(segment, int):
            out += f"[{segment}]"
        elif _NAME.fullmatch(segment):
            out += f".{segment}"
        else:
            escaped = segment.replace("\\", "\\\\").replace('"', '\\"')
            out += f'["{escaped}"]'
    return out


def step(value: Any, segment: Segment) -> Any:
    """One step along a path: a key of an object, or an index of an array (a digit string too)."""
    if type(value) is dict:
        return value.get(segment if type(segment) is str else str(segment), MISSING)
    if type(value) is list:
        if type(segment) is str:
            if not segment.isdigit() or not segment.isascii():
                return MISSING
            segment = int(segment)
        if -len(value) <= segment < len(value):
            return value[segment]
    return MISSING


def compile_getter(segments: tuple[Segment, ...]) -> Getter:
    """A function event -> value at the path, or MISSING. Never raises on JSON-like values.

    Getters take an ignored second argument so that the mapping engine can use one directly as a
    compiled node (data, errors) -> value: one Python call per field instead of two.
    """
    if not segments:
        return _identity
    if all(type(s) is str and not (s.isdigit() and s.isascii()) for s in segments):
        getter = _PLAIN_GETTERS[len(segments)](*segments) if len(segments) in _PLAIN_GETTERS else _get_names(segments)
        # Marks a path of plain names, which mapping objects inline as .get() chains (cdp.mapping.nodes).
        getter.plain_segments = segments  # type: ignore[attr-defined]
        return getter
    return _get_any(segments)


# Plain names walk dicts with type(...) is dict and .get(): faster than subscripts in a try even when
# the keys are there, and a missing key (common in events) costs no exception.
def _identity(data: Any, _errors: object = None) -> Any:
    return data


def _get1(k0: str) -> Getter:
    def get(data: Any, _errors: object = None) -> Any:
        return data.get(k0, MISSING) if type(data) is dict else MISSING

    return get


def _get2(k0: str, k1: str) -> Getter:
    def get(data: Any, _errors: object = None) -> Any:
        if type(data) is dict:
            data = data.get(k0, MISSING)
            if type(data) is dict:
                return data.get(k1, MISSING)
        return MISSING

    return get


def _get3(k0: str, k1: str, k2: str) -> Getter:
    def get(data: Any, _errors: object = None) -> Any:
        if type(data) is dict:
            data = data.get(k0, MISSING)
            if type(data) is dict:
                data = data.get(k1, MISSING)
                if type(data) is dict:
                    return data.get(k2, MISSING)
        return MISSING

    return get


def _get_names(segments: tuple[Segment, ...]) -> Getter:
    def get(data: Any, _errors: object = None) -> Any:
        for segment in segments:
            if type(data) is not dict:
                return MISSING
            data = data.get(segment, MISSING)
        return data

    return get


def _get_any(segments: tuple[Segment, ...]) -> Getter:
    def get(data: Any, _errors: object = None) -> Any:
        for segment in segments:
            data = step(data, segment)
            if data is MISSING:
                return MISSING
        return data

    return get


_PLAIN_GETTERS: dict[int, Callable[..., Getter]] = {1: _get1, 2: _get2, 3: _get3}
