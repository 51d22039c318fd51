"""@sha256: hashing of normalised identifiers, as ad platforms require for emails and phone numbers.

Error messages here never quote the value: it is personal data that was about to be hashed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from hashlib import sha256
from typing import Any

from cdp.mapping.compiler import Compiler, child_path, json_type
from cdp.mapping.directives.convert import to_text
from cdp.mapping.nodes import missing_node
from cdp.mapping.paths import MISSING
from cdp.mapping.results import Invalid, MappingError, Node

NORMALISE = ("none", "email", "phone", "phoneDigits", "lower")
_HASHED = re.compile(r"[0-9a-f]{64}")
_NOT_DIGIT = re.compile(r"[^0-9]")
_LETTER = re.compile(r"[^\W\d_]")
_COUNTRY_CODE = re.compile(r"[1-9][0-9]{0,2}")


def _already_hashed(text: str) -> bool:
    return len(text) == 64 and _HASHED.fullmatch(text) is not None


def normalise_email(value: Any) -> str | None:
    """Trimmed and lowercased; None for a blank value (nothing to hash)."""
    if type(value) is not str:
        raise Invalid(f"@sha256 email needs a string, got {json_type(value)}")
    text = value.strip().lower()
    if not text:
        return None
    if text.find("@", 1, len(text) - 1) < 0 and not _already_hashed(text):
        raise Invalid("@sha256 email: the value is not an email address")
    return text


def normalise_phone(value: Any, country_code: str, plus: bool) -> str | None:
    """Digits of an E.164 number: `+44 (0)20 7946 0958` -> `+442079460958` (or without `+`)."""
    if type(value) is int:
        value = str(value)
    elif type(value) is not str:
        raise Invalid(f"@sha256 phone needs a string or number, got {json_type(value)}")
    text = value.strip()
    if not text:
        return None
    if _already_hashed(text.lower()):
        return text.lower()
    if _LETTER.search(text):
        raise Invalid("@sha256 phone: letters in a phone number (an extension or vanity number?)")
    international = text.startswith("+")
    digits = _NOT_DIGIT.sub("", text.replace("(0)", ""))
    if not international and digits.startswith("00"):
        digits, international = digits[2:], True
    if not international and country_code:
        digits = country_code + digits.lstrip("0")
    if not 7 <= len(digits) <= 15:
        raise Invalid(f"@sha256 phone: {len(digits)} digits, an E.164 number has 7 to 15")
    return "+" + digits if plus else digits


def normalise_lower(value: Any) -> str | None:
    if type(value) is dict or type(value) is list:
        raise Invalid(f"@sha256 needs a string, got {json_type(value)}")
    text = to_text(value).strip().lower()
    return text or None


def normalise_none(value: Any) -> str:
    if type(value) is dict or type(value) is list:
        raise Invalid(f"@sha256 needs a string, got {json_type(value)}")
    return to_text(value)


def _normaliser(kind: str, country_code: str) -> Callable[[Any], str | None]:
    if kind == "email":
        return normalise_email
    if kind == "phone" or kind == "phoneDigits":
        plus = kind == "phone"
        return lambda value: normalise_phone(value, country_code, plus)
    if kind == "lower":
        return normalise_lower
    return normalise_none


def compile_sha256(arg: Any, path: str, c: Compiler) -> Node:
    options = c.options(arg, path, "@sha256", required=("value",), optional=("normalise", "countryCode"))
    if options is None:
        return missing_node
    kind = c.choice(options, "normalise", path, "@sha256", NORMALISE) or "none"
    country_code = options.get("countryCode", "")
    if "countryCode" in options:
        where = child_path(child_path(path, "@sha256"), "countryCode")
        if kind not in ("phone", "phoneDigits"):
            c.error(where, "only applies with normalise phone or phoneDigits")
        elif type(country_code) is not str or not _COUNTRY_CODE.fullmatch(country_code):
            c.error(where, f"must be 1 to 3 digits without '+', got {country_code!r}")
    normalise = _normaliser(kind, country_code if type(country_code) is str else "")
    keep_hashes = kind != "none"
    inner = c.argument(options, "value", path, "@sha256")

    def node(data: Any, errors: list[MappingError]) -> Any:
        value = inner(data, errors)
        if value is MISSING or value is None:
            return value
        text = normalise(value)
        if text is None:
            return MISSING
        if keep_hashes and len(text) == 64 and _HASHED.fullmatch(text):
            return text  # hashed upstream already; hashing again would make it unmatchable
        return sha256(text.encode()).hexdigest()

    return node
