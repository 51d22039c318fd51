"""Trigger conditions, driven by the examples in cdp/conditions/README.md (the spec), plus parse errors."""

from __future__ import annotations

from typing import Any

import pytest

from cdp.conditions import Condition, ParseError, check, compile_condition, matches, parse
from cdp.conditions.syntax import And, Compare, Constant, Exists, Literal, Not, Or, Path
from tests.test_mapping import Example, readme_examples

CONDITION_EXAMPLES = readme_examples("cdp/conditions/README.md", "condition")
MATCH_EXAMPLES = [example for example in CONDITION_EXAMPLES if "error" not in example.data]
ERROR_EXAMPLES = [example for example in CONDITION_EXAMPLES if "error" in example.data]
OPERATORS = [
    "=",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    " in ",
    " not in ",
    " contains ",
    " not contains ",
    " starts_with ",
    " not starts_with ",
    " ends_with ",
    " not ends_with ",
    " exists",
    " not exists",
    " and ",
    " or ",
    "not (",
    "(",
]


@pytest.mark.parametrize("example", MATCH_EXAMPLES, ids=lambda example: example.id)
def test_condition_readme_example_matches_as_documented(example: Example) -> None:
    condition = compile_condition(example.data["condition"])
    for event in example.data["matches"]:
        assert condition(event) is True, event
    for event in example.data["no_match"]:
        assert condition(event) is False, event


@pytest.mark.parametrize("example", ERROR_EXAMPLES, ids=lambda example: example.id)
def test_condition_readme_parse_error_as_documented(example: Example) -> None:
    with pytest.raises(ParseError) as caught:
        compile_condition(example.data["condition"])
    assert (caught.value.message, caught.value.offset) == (example.data["error"], example.data["offset"])


@pytest.mark.parametrize("operator", OPERATORS)
def test_condition_readme_has_an_example_per_operator(operator: str) -> None:
    assert any(operator in example.data["condition"] for example in MATCH_EXAMPLES)


def test_condition_readme_examples_exist() -> None:
    assert len(MATCH_EXAMPLES) >= 15 and len(ERROR_EXAMPLES) >= 8


# --- parsing -------------------------------------------------------------------------------------
def test_parse_and_binds_tighter_than_or_and_not_tighter_than_and() -> None:
    tree = parse('not a exists and b = 1 or c != "x"')
    assert tree == Or(
        (
            And((Not(Exists(Path(("a",), "a"))), Compare("=", Path(("b",), "b"), Literal(1)))),
            Compare("!=", Path(("c",), "c"), Literal("x")),
        )
    )


def test_parse_reads_literals_and_paths() -> None:
    tree = parse("$.properties.items[0][\"sku id\"] in [1, -2.5, 1e3, 'a', true, false, null, []]")
    assert tree == Compare(
        "in",
        Path(("properties", "items", 0, "sku id"), '$.properties.items[0]["sku id"]'),
        Literal([1, -2.5, 1000.0, "a", True, False, None, []]),
    )


def test_parse_negated_word_operators_are_not_of_the_positive_form() -> None:
    assert parse('a not contains "x"') == Not(Compare("contains", Path(("a",), "a"), Literal("x")))
    assert parse("a not exists") == Not(Exists(Path(("a",), "a")))
    assert parse("true") == Constant(True)


def test_parse_error_points_at_line_and_column_with_a_caret() -> None:
    with pytest.raises(ParseError) as caught:
        compile_condition('type = "track"\n  and event = = "x"')
    error = caught.value
    assert (error.line, error.column, error.offset) == (2, 15, 29)
    assert error.caret == '  and event = = "x"\n              ^'
    assert str(error) == f"expected a field or a value, found '=' at line 2, column 15\n{error.caret}"


def test_parse_error_for_deep_nesting_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="nests too deeply"):
        parse("(" * 5000 + "a exists" + ")" * 5000)


def test_parse_rejects_non_text() -> None:
    with pytest.raises(ParseError):
        parse(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("a = 1.", "malformed number"),
        ("a = 01", "malformed number"),
        ("a = 1abc", "malformed number"),
        ("a. = 1", "expected a name after '.'"),
        ("$. = 1", "expected a name after '$.'"),
        ('a["b" = 1', "expected ']' after the quoted name"),
        ('a = "\\u12"', "unknown escape in string"),
        ("a = [1, 2", "expected ',' or ']' in the list"),
        ("a in", "expected a field or a value"),
        ("not", "expected a field or a value"),
        ("a = 1 and", "expected a field or a value"),
        ("()", "expected a field or a value, found ')'"),
        ("a = 1)", "expected 'and', 'or' or the end"),
        ("1 2", "expected an operator after '1'"),
    ],
)
def test_parse_errors(source: str, message: str) -> None:
    error = check(source)
    assert error is not None and error.message.startswith(message), error


def test_check_returns_none_for_a_valid_condition() -> None:
    assert check('event in ["a"]') is None


# --- evaluation ----------------------------------------------------------------------------------
def test_condition_is_compiled_once_and_reused() -> None:
    condition = compile_condition("properties.total > 100")
    assert isinstance(condition, Condition) and condition.source == "properties.total > 100"
    assert [condition({"properties": {"total": t}}) for t in (99, 101, 100.5, "200")] == [False, True, True, False]


def test_matches_caches_and_raises_for_malformed_conditions() -> None:
    assert matches('type = "track"', {"type": "track"}) is True
    with pytest.raises(ParseError):
        matches("type = ", {})


@pytest.mark.parametrize(
    ("source", "event", "expected"),
    [
        ("a = b", {"a": [1, 2], "b": [1, 2]}, True),
        ("a = b", {"a": {"k": 1}, "b": {"k": 1}}, True),
        ("a = b", {}, True),
        ("a = b", {"a": None}, True),
        ("a = b", {"a": 1, "b": 1.0}, True),
        ("a = b", {"a": 1, "b": True}, False),
        ("a = [1, [true]]", {"a": [1.0, [True]]}, True),
        ("a = [1]", {"a": [True]}, False),
        ("a = b", {"a": {"k": [1]}, "b": {"k": [True]}}, False),
        ("a = 1", {"a": True}, False),
        ("a = true", {"a": 1}, False),
        ("a != 1", {"a": 1.0}, False),
        ("a < b", {"a": "a", "b": "b"}, True),
        ("a < b", {"a": "a", "b": 1}, False),
        ("a > 1", {"a": float("nan")}, False),
        ("a in [1, 2]", {"a": 2.0}, True),
        ("a in [1, 2]", {"a": True}, False),
        ("a in b", {"a": 1, "b": "123"}, False),
        ("a in b", {"a": "x", "b": ["x"]}, True),
        ('a contains "x"', {"a": {"x": 1}}, True),
        ("a contains 1", {"a": [1.0]}, True),
        ("a contains 1", {"a": "1"}, False),
        ('a starts_with "x"', {"a": ["x"]}, False),
        ('1 = 1 and "a" != "b"', {}, True),
    ],
)
def test_condition_comparison_semantics(source: str, event: Any, expected: bool) -> None:
    assert compile_condition(source)(event) is expected


def test_condition_never_raises_even_for_objects_json_cannot_hold() -> None:
    class Hostile(dict):
        def __getitem__(self, key: Any) -> Any:
            raise RuntimeError("no")

    assert compile_condition("a exists")(Hostile(a=1)) is False


def test_condition_has_no_side_effects_on_the_event() -> None:
    event = {"properties": {"tags": ["a"], "total": 5}}
    snapshot = repr(event)
    compile_condition('properties.tags contains "a" and properties.total > 1 and properties.x = null')(event)
    assert repr(event) == snapshot
