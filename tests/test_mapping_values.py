"""Value transforms and paths in detail: hashing normal forms, dates, numbers as text, path syntax.

The README examples (tests/test_mapping.py) show each transform once; these pin down the edges.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from cdp.mapping import MISSING, PathError, compile_getter, format_path, parse_path, resolve
from tests.test_mapping import same


def test_sha256_errors_never_quote_the_value() -> None:
    secret = "jane@example.com ext. 5"
    result = resolve({"p": {"@sha256": {"value": {"@path": "$.p"}, "normalise": "phone"}}}, {"p": secret})
    assert result.errors and secret not in str(result.errors[0]) and "jane" not in str(result.errors[0])


@pytest.mark.parametrize(
    ("value", "normalise", "extra", "hashed_text"),
    [
        ("  Jane.Doe+News@Example.COM ", "email", {}, "jane.doe+news@example.com"),
        ("+1 (555) 123-4567", "phone", {}, "+15551234567"),
        ("+1 (555) 123-4567", "phoneDigits", {}, "15551234567"),
        ("001 555 123 4567", "phone", {}, "+15551234567"),
        ("030 1234567", "phone", {"countryCode": "49"}, "+49301234567"),
        ("+49 30 1234567", "phone", {"countryCode": "1"}, "+49301234567"),
        ("5551234567", "phone", {}, "+5551234567"),
        (4915112345678, "phoneDigits", {}, "4915112345678"),
        (" São Paulo ", "lower", {}, "são paulo"),
        (42, "none", {}, "42"),
        (" As Is ", "none", {}, " As Is "),
    ],
)
def test_sha256_hashes_the_documented_normal_form(value: Any, normalise: str, extra: dict, hashed_text: str) -> None:
    mapping = {"h": {"@sha256": {"value": {"@path": "$.v"}, "normalise": normalise, **extra}}}
    result = resolve(mapping, {"v": value})
    assert result.errors == []
    assert result.value == {"h": hashlib.sha256(hashed_text.encode()).hexdigest()}


@pytest.mark.parametrize(
    ("value", "normalise", "message"),
    [
        ("12345", "phone", "@sha256 phone: 5 digits, an E.164 number has 7 to 15"),
        ("+1234567890123456", "phone", "@sha256 phone: 16 digits"),
        ("555-CALL-NOW", "phone", "@sha256 phone: letters"),
        (True, "phone", "@sha256 phone needs a string or number, got boolean"),
        ("not-an-address", "email", "@sha256 email: the value is not an email address"),
        (5, "email", "@sha256 email needs a string, got number"),
        ({"a": 1}, "lower", "@sha256 needs a string, got object"),
        ([1], "none", "@sha256 needs a string, got array"),
    ],
)
def test_sha256_reports_values_it_cannot_normalise(value: Any, normalise: str, message: str) -> None:
    result = resolve({"h": {"@sha256": {"value": {"@path": "$.v"}, "normalise": normalise}}}, {"v": value})
    assert result.value == {} and result.errors[0].path == "h" and result.errors[0].message.startswith(message)


def test_sha256_does_not_rehash_only_with_normalisation_none() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    assert resolve({"@sha256": {"value": digest, "normalise": "lower"}}, {}).value == digest
    assert resolve({"@sha256": {"value": digest}}, {}).value == hashlib.sha256(digest.encode()).hexdigest()


@pytest.mark.parametrize(
    ("value", "form", "expected"),
    [
        ("2024-03-05T14:30:00Z", "unix", 1709649000),
        ("2024-03-05", "iso", "2024-03-05T00:00:00.000Z"),
        ("2024-03-05T23:30:00-02:00", "date", "2024-03-06"),
        (1709649000.9, "unix", 1709649000),
        (-1, "iso", "1969-12-31T23:59:59.000Z"),
        ("0001-01-01T00:00:00Z", "date", "0001-01-01"),
        (1e11, "unix", 100000000),
    ],
)
def test_date_formats(value: Any, form: str, expected: Any) -> None:
    result = resolve({"@date": {"value": value, "format": form}}, {})
    assert result.errors == [] and same(result.value, expected)


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-05:00", 1e300, float("nan"), True, {"a": 1}])
def test_date_reports_unusable_values(value: Any) -> None:
    result = resolve({"d": {"@date": {"value": value}}}, {})
    assert result.value == {} and len(result.errors) == 1 and result.errors[0].path == "d"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1e21, "1e+21"), (1e20, "100000000000000000000"), (0.1, "0.1"), (-0.0, "0"), (float("inf"), "Infinity")],
)
def test_to_string_floats(value: float, expected: str) -> None:
    assert resolve({"@toString": value}, {}).value == expected


def test_to_number_rejects_non_finite_and_odd_strings() -> None:
    for text in ["1e999", "NaN", "Infinity", "0x10", "1,000", "", "  "]:
        result = resolve({"n": {"@toNumber": text}}, {})
        assert result.value == {} and len(result.errors) == 1, text


# --- paths ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("$", ()),
        ("$.a", ("a",)),
        ("a.b.c", ("a", "b", "c")),
        ("a[0].b", ("a", 0, "b")),
        ("$[1]", (1,)),
        ("a[-1]", ("a", -1)),
        ("a.0", ("a", "0")),
        ('a["b.c"]', ("a", "b.c")),
        ("a['q\\'s']", ("a", "q's")),
        ("context.user-agent", ("context", "user-agent")),
    ],
)
def test_parse_path_reads_the_documented_syntax(text: str, segments: tuple) -> None:
    assert parse_path(text) == segments


@pytest.mark.parametrize("text", ["", "$.", "a.", ".a", "a..b", "a[", "a[x]", "a]b", "a[0]b", "$x", 'a["b]'])
def test_parse_path_rejects_malformed_paths(text: str) -> None:
    with pytest.raises(PathError):
        parse_path(text)


def test_format_path_round_trips() -> None:
    for text in ["$.a.b", "$.a[0]", '$["odd key"].b', '$["q\\"s"]']:
        assert format_path(parse_path(text)) == text


@pytest.mark.parametrize(
    ("text", "event", "expected"),
    [
        ("a.b", {"a": {"b": 1}}, 1),
        ("a.b", {"a": "bb"}, MISSING),
        ("a.0", {"a": ["x"]}, "x"),
        ("a.0", {"a": {"0": "y"}}, "y"),
        ("a[0]", {"a": {"0": "y"}}, "y"),
        ("a[5]", {"a": [1]}, MISSING),
        ("a[0]", {"a": "text"}, MISSING),
        ("a.b.c.d", {"a": {"b": {"c": {"d": None}}}}, None),
        ("a.b.c.d", {"a": {"b": [1]}}, MISSING),
        ("a", [1], MISSING),
    ],
)
def test_compile_getter_finds_values_or_missing(text: str, event: Any, expected: Any) -> None:
    assert compile_getter(parse_path(text))(event) == expected
