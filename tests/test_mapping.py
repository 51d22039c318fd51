"""The mapping engine, driven by the examples in cdp/mapping/README.md (the spec), plus validation and edges.

The README example reader lives here and test_conditions.py reuses it, so both READMEs are read alike.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cdp.mapping import (
    DIRECTIVES,
    InvalidMapping,
    MappingError,
    compile_mapping,
    resolve,
    validate,
)
from cdp.mapping.results import Invalid

# --- README examples -----------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"^```json\n(.*?)^```", re.MULTILINE | re.DOTALL)
_HEADING = re.compile(r"^#{2,3} (.+)$", re.MULTILINE)


@dataclass(frozen=True)
class Example:
    heading: str  # the nearest heading above the block, e.g. "@path"
    line: int
    data: dict[str, Any]

    @property
    def id(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9@]+", "-", self.heading).strip("-") or "intro"
        return f"{slug}-L{self.line}"


def readme_examples(readme: str, key: str) -> list[Example]:
    """Every ```json block of `readme` (relative to the repository) whose object has `key`."""
    text = (ROOT / readme).read_text()
    headings = [(match.start(), match.group(1).strip()) for match in _HEADING.finditer(text)]
    found = []
    for match in _BLOCK.finditer(text):
        data = json.loads(match.group(1))
        if not isinstance(data, dict) or key not in data:
            continue
        heading = next((title for start, title in reversed(headings) if start < match.start()), "")
        found.append(Example(heading, text.count("\n", 0, match.start()) + 1, data))
    return found


def same(actual: Any, expected: Any) -> bool:
    """Equality that also checks types: 1 is not 1.0 and not True (README outputs are exact JSON)."""
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(same(actual[k], expected[k]) for k in expected)
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(same(a, e) for a, e in zip(actual, expected, strict=True))
    return actual == expected


MAPPING_EXAMPLES = readme_examples("cdp/mapping/README.md", "mapping")
RESOLVE_EXAMPLES = [example for example in MAPPING_EXAMPLES if "invalid" not in example.data]
INVALID_EXAMPLES = [example for example in MAPPING_EXAMPLES if "invalid" in example.data]


@pytest.mark.parametrize("example", RESOLVE_EXAMPLES, ids=lambda example: example.id)
def test_mapping_readme_example_resolves_as_documented(example: Example) -> None:
    compiled = compile_mapping(example.data["mapping"])
    result = compiled.resolve(example.data["input"])
    assert same(result.value, example.data["output"]), result.value
    assert [str(error) for error in result.errors] == example.data.get("errors", [])


@pytest.mark.parametrize("example", INVALID_EXAMPLES, ids=lambda example: example.id)
def test_mapping_readme_invalid_example_is_rejected_as_documented(example: Example) -> None:
    assert [str(error) for error in validate(example.data["mapping"])] == example.data["invalid"]
    with pytest.raises(InvalidMapping):
        compile_mapping(example.data["mapping"])


def test_mapping_readme_has_an_example_per_directive() -> None:
    documented = {example.heading for example in RESOLVE_EXAMPLES}
    assert set(DIRECTIVES) - documented == set()


def test_mapping_readme_examples_exist() -> None:
    assert len(RESOLVE_EXAMPLES) >= len(DIRECTIVES) and len(INVALID_EXAMPLES) >= 4


# --- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        ({"email": {"@path": 5}}, "email: @path needs a string path (or a list of them, tried in turn), got number"),
        ({"e": {"@path": []}}, "e: @path needs a string path"),
        ({"e": {"@path": ["a", 1]}}, "e: @path needs a string path"),
        ({"e": {"@path": "$.a[x]"}}, "e: @path '$.a[x]': unexpected '[' at offset 3"),
        ({"e": {"@path": ""}}, "e: @path '': empty path"),
        ({"t": {"@template": 1}}, "t: @template needs a string, got number"),
        ({"t": {"@template": "{{ }}"}}, "t: @template placeholder ' ': empty path"),
        ({"i": {"@if": "x"}}, "i: @if needs an object, got string"),
        ({"i": {"@if": {"exists": 1, "blank": 2, "then": 1}}}, "i: @if needs exactly one test"),
        ({"i": {"@if": {"then": 1}}}, "i: @if needs exactly one test"),
        ({"c": {"@case": {"value": "a"}}}, "c: @case needs 'operator'"),
        ({"r": {"@replace": {"pattern": "", "value": "a"}}}, "r.@replace.pattern: must be a non-empty string"),
        (
            {"r": {"@replace": {"pattern": "a", "replacement": 1, "value": "a"}}},
            "r.@replace.replacement: must be a str",
        ),
        ({"r": {"@replace": {"pattern": "a", "global": "yes", "value": "a"}}}, "r.@replace.global: must be true or"),
        ({"a": {"@arrayPath": ["$.x", {"v": {"@path": 1}}]}}, "a.@arrayPath[1].v: @path needs a string path"),
        ({"a": {"@arrayPath": ["$..x"]}}, "a: @arrayPath '$..x': expected a name"),
        ({"m": {"@merge": {"objects": {}}}}, "m.@merge.objects: must be an array, got object"),
        ({"m": {"@merge": {"objects": [], "direction": "up"}}}, "m.@merge.direction: must be one of right, left"),
        ({"f": {"@flatten": {"value": 1, "separator": 1}}}, "f.@flatten.separator: must be a string"),
        ({"f": {"@flatten": {"value": 1, "omitArrays": 1}}}, "f.@flatten.omitArrays: must be true or false"),
        ({"j": {"@json": {"mode": "pretty", "value": 1}}}, "j.@json.mode: must be one of encode, decode"),
        ({"j": {"@json": {"value": 1}}}, "j: @json needs 'mode'"),
        ({"d": {"@date": {"value": 1, "format": "YYYY"}}}, "d.@date.format: must be one of iso, date, unix, unixMs"),
        ({"d": {"@date": {"format": "iso"}}}, "d: @date needs 'value'"),
        ({"h": {"@sha256": {"value": 1, "countryCode": "44"}}}, "h.@sha256.countryCode: only applies with normalise"),
        (
            {"h": {"@sha256": {"value": 1, "normalise": "phone", "countryCode": "+44"}}},
            "h.@sha256.countryCode: must be 1 to 3",
        ),
        ({"n": {"@toNumber": {"@path": None}}}, "n.@toNumber: @path needs a string path"),
        ({"x": {"@path": "a", "@template": "b"}}, "x: @path must be the only key in its object, found also: @template"),
        ({"x": {"@unknown": 1}}, "x: unknown directive @unknown"),
        ({"x": [1, {"@nope": 1}]}, "x[1]: unknown directive @nope"),
        ({"odd key": {"@nope": 1}}, '["odd key"]: unknown directive @nope'),
        ({1: "a"}, "object keys must be strings, got 1"),
        ({"x": {1, 2}}, "x: not a JSON value: set"),
    ],
)
def test_validate_names_the_field_and_the_problem(mapping: Any, expected: str) -> None:
    messages = [str(error) for error in validate(mapping)]
    assert any(message.startswith(expected) for message in messages), messages


def test_validate_accepts_a_path_prefix_for_the_field_names() -> None:
    errors = validate({"email": {"@path": 5}}, path="fields")
    assert errors == [
        MappingError("fields.email", "@path needs a string path (or a list of them, tried in turn), got number")
    ]


def test_validate_reports_every_problem_not_just_the_first() -> None:
    mapping = {"a": {"@path": 1}, "b": {"@nope": 1}, "c": {"d": {"@template": 2}}}
    assert [error.path for error in validate(mapping)] == ["a", "b", "c.d"]


def test_validate_accepts_every_readme_mapping() -> None:
    for example in RESOLVE_EXAMPLES:
        assert validate(example.data["mapping"]) == [], example.id


def test_compile_mapping_raises_invalid_mapping_with_the_errors() -> None:
    with pytest.raises(InvalidMapping) as caught:
        compile_mapping({"x": {"@nope": 1}})
    assert caught.value.errors == [MappingError("x", "unknown directive @nope")]
    assert str(caught.value) == "x: unknown directive @nope"


def test_resolve_reports_an_invalid_mapping_instead_of_raising() -> None:
    result = resolve({"x": {"@nope": 1}}, {})
    assert result.value is None and [str(e) for e in result.errors] == ["x: unknown directive @nope"]
    assert not resolve({"x": {1, 2}}, {}).ok


# --- resolution ----------------------------------------------------------------------------------
def test_resolve_root_directive_missing_gives_none() -> None:
    assert resolve({"@path": "$.nope"}, {}).value is None
    assert resolve({"@path": "$.a"}, {"a": [1]}).value == [1]


def test_resolve_root_directive_error_is_reported_at_the_root() -> None:
    result = resolve({"@toNumber": {"@path": "$.a"}}, {"a": "x"})
    assert result.value is None and [str(e) for e in result.errors] == ["@toNumber cannot read 'x' as a number"]


def test_resolve_on_non_object_events_leaves_fields_missing() -> None:
    mapping = {"a": {"@path": "$.a"}, "t": {"@template": "{{a}}!"}, "k": "const"}
    for event in (None, 5, "text", [1, 2], True):
        assert resolve(mapping, event).value == {"t": "!", "k": "const"}


def test_resolve_constant_containers_are_fresh_for_each_event() -> None:
    compiled = compile_mapping({"tags": {"@literal": ["a"]}})
    first = compiled.resolve({}).value
    first["tags"].append("mutated")
    assert compiled.resolve({}).value == {"tags": ["a"]}


def test_resolve_nested_array_path_errors_name_both_indexes() -> None:
    mapping = {
        "orders": {
            "@arrayPath": ["$.orders", {"lines": {"@arrayPath": ["$.lines", {"n": {"@toNumber": {"@path": "$.q"}}}]}}]
        }
    }
    event = {"orders": [{"lines": [{"q": 1}]}, {"lines": [{"q": 2}, {"q": "x"}]}]}
    result = resolve(mapping, event)
    assert result.value == {"orders": [{"lines": [{"n": 1}]}, {"lines": [{"n": 2}, {}]}]}
    assert [str(e) for e in result.errors] == ["orders[1].lines[1].n: @toNumber cannot read 'x' as a number"]


def test_resolve_error_inside_a_list_names_the_element() -> None:
    result = resolve({"l": [{"@toNumber": "x"}, 2]}, {})
    assert result.value == {"l": [2]} and [str(e) for e in result.errors] == [
        "l[0]: @toNumber cannot read 'x' as a number"
    ]


def test_resolve_long_values_are_shortened_in_messages() -> None:
    result = resolve({"n": {"@toNumber": {"@path": "$.a"}}}, {"a": "x" * 500})
    assert len(result.errors[0].message) < 100


def test_an_unexpected_failure_in_a_directive_costs_only_its_field(monkeypatch: pytest.MonkeyPatch) -> None:
    def compile_boom(arg: Any, path: str, compiler: Any) -> Any:
        def node(data: Any, errors: list[MappingError]) -> Any:
            raise ZeroDivisionError("bug")

        return node

    monkeypatch.setitem(DIRECTIVES, "@boom", compile_boom)
    result = compile_mapping({"a": {"@boom": None}, "b": 1}).resolve({})
    assert result.value == {"b": 1}
    assert [str(e) for e in result.errors] == ["a: unexpected error: ZeroDivisionError: bug"]


def test_adding_a_directive_is_one_function_and_one_registry_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def compile_reverse(arg: Any, path: str, compiler: Any) -> Any:
        inner = compiler.compile(arg, f"{path}.@reverse")

        def node(data: Any, errors: list[MappingError]) -> Any:
            value = inner(data, errors)
            if type(value) is not str:
                raise Invalid("@reverse needs a string")
            return value[::-1]

        return node

    monkeypatch.setitem(DIRECTIVES, "@reverse", compile_reverse)
    assert resolve({"r": {"@reverse": {"@path": "$.a"}}}, {"a": "abc"}).value == {"r": "cba"}
    assert [str(e) for e in validate({"r": {"@reverse": {"@path": 1}}})][0].startswith("r.@reverse: @path needs")
