"""Type conversions users need for real tools: @toNumber, @toString, @toBoolean, @date."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cdp.mapping.compiler import Compiler, child_path, json_type
from cdp.mapping.nodes import missing_node
from cdp.mapping.paths import MISSING
from cdp.mapping.results import Invalid, MappingError, Node

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off", ""})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS_THRESHOLD = 1e11  # 1e11 seconds is the year 5138; 1e11 ms is March 1973
DATE_FORMATS = ("iso", "date", "unix", "unixMs")


def shown(value: Any) -> str:
    """A short rendering of a value for an error message: enough to recognise, never a whole payload."""
    text = repr(value) if isinstance(value, str) else json_type(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # Python refuses to write out ints of more than 4300 digits
        raise Invalid("number too large to write out") from None


def to_text(value: Any) -> str:
    """The string form of a non-null value: numbers without a needless `.0`, JSON for objects/arrays."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return _int_text(value)
    if kind is float:
        return _float_text(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _unary(name: str, convert: Callable[[Any], Any]) -> Callable[[Any, str, Compiler], Node]:
    """A directive whose argument is one mapping; MISSING and null pass through unconverted."""

    def compile_unary(arg: Any, path: str, c: Compiler) -> Node:
        inner = c.compile(arg, child_path(path, name))

        def node(data: Any, errors: list[MappingError]) -> Any:
            value = inner(data, errors)
            if value is MISSING or value is None:
                return value
            return convert(value)

        return node

    return compile_unary


def to_number(value: Any) -> int | float:
    kind = type(value)
    if kind is int or kind is float:
        return value
    if kind is bool:
        return 1 if value else 0
    if kind is str:
        text = value.strip()
        if _INTEGER.fullmatch(text) and len(text) < 4300:
            return int(text)
        if _NUMBER.fullmatch(text):
            number = float(text)
            if math.isfinite(number):
                return number
        raise Invalid(f"@toNumber cannot read {shown(value)} as a number")
    raise Invalid(f"@toNumber cannot convert {json_type(value)} to a number")


def to_boolean(value: Any) -> bool:
    kind = type(value)
    if kind is bool:
        return value
    if kind is int or kind is float:
        return value != 0
    if kind is str:
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise Invalid(f"@toBoolean cannot read {shown(value)} as true or false")
    raise Invalid(f"@toBoolean cannot convert {json_type(value)} to true or false")


compile_to_number = _unary("@toNumber", to_number)
compile_to_string = _unary("@toString", to_text)
compile_to_boolean = _unary("@toBoolean", to_boolean)


def to_datetime(value: Any) -> datetime:
    """ISO-8601 strings (naive means UTC), or unix time as a number or numeric string (ms when >= 1e11)."""
    kind = type(value)
    if kind is str:
        text = value.strip()
        if _NUMBER.fullmatch(text):
            return to_datetime(float(text))
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise Invalid(f"@date cannot read {shown(value)} as a date") from None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if kind is int or kind is float:
        try:
            if abs(value) >= _MS_THRESHOLD:
                return _EPOCH + timedelta(milliseconds=value)
            return _EPOCH + timedelta(seconds=value)
        except (OverflowError, ValueError):
            raise Invalid(f"@date: {shown(value)} is out of range") from None
    raise Invalid(f"@date cannot convert {json_type(value)} to a date")


def format_datetime(moment: datetime, form: str) -> str | int:
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise Invalid("@date is out of range once converted to UTC") from None
    if form == "unix":
        return (utc - _EPOCH) // timedelta(seconds=1)
    if form == "unixMs":
        return (utc - _EPOCH) // timedelta(milliseconds=1)
    if form == "date":
        return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
    if form == "iso":
        return (
            f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
            f".{utc.microsecond // 1000:03d}Z"
        )
    return utc.strftime(form)


def compile_date(arg: Any, path: str, c: Compiler) -> Node:
    options = c.options(arg, path, "@date", required=("value",), optional=("format",))
    if options is None:
        return missing_node
    form = options.get("format", "iso")
    if type(form) is not str or (form not in DATE_FORMATS and not _strftime_ok(form)):
        return c.error(
            child_path(child_path(path, "@date"), "format"),
            f"must be one of {', '.join(DATE_FORMATS)} or a strftime pattern with %, got {shown(form)}",
        )
    inner = c.argument(options, "value", path, "@date")

    def node(data: Any, errors: list[MappingError]) -> Any:
        value = inner(data, errors)
        if value is MISSING or value is None:
            return value
        return format_datetime(to_datetime(value), form)

    return node


def _strftime_ok(form: str) -> bool:
    if "%" not in form:
        return False
    try:
        _EPOCH.strftime(form)
    except ValueError:
        return False
    return True
