"""Property-based tests: condition parsing and evaluation never raise, whatever the text or event."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cdp.conditions import ParseError, compile_condition, parse
from tests.test_mapping_properties import JSON, PROPERTY_SETTINGS, optional_keys

FIELDS = st.sampled_from(
    [
        "type",
        "event",
        "properties.total",
        "properties",
        "traits.email",
        "context.library.name",
        "properties.products[0].price",
        "$.userId",
        'properties["odd key"]',
        "tags",
        "$",
    ]
)
LITERALS = st.one_of(
    st.text(max_size=8).map(json.dumps),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
    st.sampled_from(["true", "false", "null"]),
)
LISTS = st.lists(LITERALS, max_size=4).map(lambda items: "[" + ", ".join(items) + "]")
OPERANDS = FIELDS | LITERALS | LISTS
TESTS = st.one_of(
    st.builds(
        lambda left, op, right: f"{left} {op} {right}",
        OPERANDS,
        st.sampled_from(
            [
                "=",
                "==",
                "!=",
                "<",
                "<=",
                ">",
                ">=",
                "in",
                "not in",
                "contains",
                "not contains",
                "starts_with",
                "not starts_with",
                "ends_with",
                "not ends_with",
            ]
        ),
        OPERANDS,
    ),
    st.builds(lambda field, word: f"{field} {word}", FIELDS, st.sampled_from(["exists", "not exists"])),
    st.sampled_from(["true", "false"]),
)
CONDITIONS = st.recursive(
    TESTS,
    lambda inner: st.one_of(
        inner.map(lambda text: f"not ({text})"),
        st.builds(lambda a, op, b: f"({a}) {op} ({b})", inner, st.sampled_from(["and", "or"]), inner),
        st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(["and", "or"]), inner),
    ),
    max_leaves=8,
)
CONDITION_EVENTS = (
    optional_keys(
        type=JSON,
        event=JSON,
        userId=JSON,
        tags=JSON,
        properties=optional_keys(total=JSON, products=JSON, **{"odd key": JSON}) | JSON,
        traits=optional_keys(email=JSON) | JSON,
        context=optional_keys(library=optional_keys(name=JSON) | JSON) | JSON,
    )
    | JSON
)


@PROPERTY_SETTINGS
@given(CONDITIONS, st.lists(CONDITION_EVENTS, min_size=1, max_size=4))
def test_condition_evaluation_never_raises_and_not_is_the_complement(source: str, events: list[Any]) -> None:
    condition = compile_condition(source)
    negated = compile_condition(f"not ({source})")
    for event in events:
        before = repr(event)
        verdict = condition.test(event)  # the raw closure, without the safety net
        assert verdict is True or verdict is False
        assert negated.test(event) is (not verdict)
        assert repr(event) == before


@PROPERTY_SETTINGS
@given(
    st.text(max_size=40)
    | st.lists(
        st.sampled_from(
            [
                "a",
                ".",
                "[",
                "]",
                "0",
                '"x"',
                "'",
                "\\",
                "=",
                "!=",
                "<",
                ">=",
                "in",
                "not",
                "and",
                "or",
                "(",
                ")",
                "exists",
                "contains",
                "-1.5e3",
                "null",
                ",",
                "$",
                " ",
            ]
        ),
        max_size=12,
    ).map("".join)
)
def test_condition_parse_raises_only_parse_errors(source: str) -> None:
    try:
        parse(source)
    except ParseError as error:
        assert 0 <= error.offset <= len(source)
        assert error.caret.endswith("^")


@PROPERTY_SETTINGS
@given(
    st.text(max_size=30) | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.booleans() | st.none()
)
def test_condition_literals_round_trip_through_json_spelling(value: Any) -> None:
    assert compile_condition(f"a = {json.dumps(value)}").test({"a": value}) is True
