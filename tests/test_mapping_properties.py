"""Property-based tests: mapping validation and resolution never raise, whatever the mapping or event."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.mapping import MISSING, MappingError, compile_mapping, resolve, validate
from cdp.mapping.paths import step

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- arbitrary JSON events -----------------------------------------------------------------------
KEYS = st.sampled_from(
    [
        "type",
        "event",
        "userId",
        "properties",
        "traits",
        "context",
        "email",
        "phone",
        "total",
        "products",
        "price",
        "sku",
        "name",
        "library",
        "timestamp",
        "tags",
        "0",
        "1",
        "@path",
        "",
    ]
) | st.text(max_size=6)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5), max_leaves=25
)


def optional_keys(**fields: st.SearchStrategy) -> st.SearchStrategy:
    return st.fixed_dictionaries({}, optional=fields)


# Shaped like a Segment message, so the paths mappings use meet every kind of value at depth.
SHAPED_EVENTS = optional_keys(
    type=JSON,
    event=JSON,
    userId=JSON,
    timestamp=JSON | st.sampled_from(["2024-03-05T14:30:00Z", "9999-12-31T23:59:59-05:00", "1709649000"]),
    properties=optional_keys(
        total=JSON, currency=JSON, products=st.lists(optional_keys(price=JSON, sku=JSON), max_size=3) | JSON
    )
    | JSON,
    traits=optional_keys(email=JSON, phone=JSON, first_name=JSON, last_name=JSON) | JSON,
    context=optional_keys(library=optional_keys(name=JSON) | JSON) | JSON,
)
EVENTS = SHAPED_EVENTS | JSON

# --- generated valid mappings --------------------------------------------------------------------
PATHS = st.sampled_from(
    [
        "$.type",
        "event",
        "properties.total",
        "properties.products",
        "properties.products[0].price",
        "price",
        "traits.email",
        "traits.phone",
        "traits",
        "context.library.name",
        "timestamp",
        "$",
        "missing.path",
        "properties",
        "properties.products.1.sku",
        '$["traits"]["first_name"]',
        "tags[-1]",
    ]
)
TEMPLATES = st.lists(PATHS.map(lambda path: "{{" + path + "}}") | st.text(max_size=5).filter(lambda t: "{" not in t))
LEAVES = (
    PATHS.map(lambda path: {"@path": path})
    | st.lists(PATHS, min_size=1, max_size=3).map(lambda paths: {"@path": paths})
    | TEMPLATES.map(lambda parts: {"@template": "".join(parts)})
    | JSON.map(lambda value: {"@literal": value})
    | SCALARS
)


def _extend(inner: st.SearchStrategy) -> st.SearchStrategy:
    def unary(name: str) -> st.SearchStrategy:
        return inner.map(lambda value: {name: value})

    def directive(name: str, **options: st.SearchStrategy) -> st.SearchStrategy:
        return st.fixed_dictionaries({"value": inner, **options}).map(lambda arg: {name: arg})

    if_test = st.sampled_from(["exists", "blank"])
    return st.one_of(
        unary("@toNumber"),
        unary("@toString"),
        unary("@toBoolean"),
        unary("@excludeWhenNull"),
        directive("@case", operator=st.sampled_from(["lower", "upper"])),
        directive(
            "@replace",
            pattern=st.text(min_size=1, max_size=3),
            replacement=st.text(max_size=3),
            **{"global": st.booleans(), "ignoreCase": st.booleans()},
        ),
        directive("@flatten", separator=st.text(max_size=2), omitArrays=st.booleans()),
        directive("@json", mode=st.sampled_from(["encode", "decode"])),
        directive("@date", format=st.sampled_from(["iso", "date", "unix", "unixMs", "%Y/%m/%d %H"])),
        directive("@sha256", normalise=st.sampled_from(["none", "email", "lower"])),
        directive(
            "@sha256", normalise=st.sampled_from(["phone", "phoneDigits"]), countryCode=st.sampled_from(["1", "44"])
        ),
        st.builds(
            lambda test, subject, then, otherwise: {"@if": {test: subject, "then": then, "else": otherwise}},
            if_test,
            inner,
            inner,
            inner,
        ),
        st.builds(lambda test, subject, then: {"@if": {test: subject, "then": then}}, if_test, inner, inner),
        # The array comes from a path or a directive; a raw string there is read as a path.
        st.builds(
            lambda path, shape: {"@arrayPath": [path, shape]},
            PATHS | inner.filter(lambda value: isinstance(value, dict)),
            inner,
        ),
        PATHS.map(lambda path: {"@arrayPath": [path]}),
        st.builds(
            lambda objects, direction: {"@merge": {"objects": objects, "direction": direction}},
            st.lists(inner, max_size=3),
            st.sampled_from(["left", "right"]),
        ),
        st.dictionaries(st.text(max_size=5).filter(lambda key: not key.startswith("@")), inner, max_size=4),
        st.lists(inner, max_size=3),
    )


MAPPINGS = st.recursive(LEAVES, _extend, max_leaves=15)

KITCHEN_SINK = {
    "event_name": {"@path": ["$.event", "$.type"]},
    "name": {"@template": "{{traits.first_name}} {{traits.last_name}}"},
    "email": {"@sha256": {"value": {"@path": "$.traits.email"}, "normalise": "email"}},
    "phone": {"@sha256": {"value": {"@path": "$.traits.phone"}, "normalise": "phone", "countryCode": "44"}},
    "value": {"@toNumber": {"@path": "$.properties.total"}},
    "label": {"@toString": {"@path": "$.properties.total"}},
    "flag": {"@toBoolean": {"@path": "$.properties.currency"}},
    "when": {"@date": {"value": {"@path": "$.timestamp"}, "format": "unixMs"}},
    "currency": {
        "@if": {
            "blank": {"@path": "$.properties.currency"},
            "then": "USD",
            "else": {"@case": {"operator": "upper", "value": {"@path": "$.properties.currency"}}},
        }
    },
    "library": {"@replace": {"pattern": "-", "replacement": "_", "value": {"@path": "$.context.library.name"}}},
    "items": {
        "@arrayPath": ["$.properties.products", {"price": {"@toNumber": {"@path": "$.price"}}, "sku": {"@path": "sku"}}]
    },
    "traits": {"@excludeWhenNull": {"@merge": {"objects": [{"source": "cdp"}, {"@path": "$.traits"}]}}},
    "flat": {"@flatten": {"value": {"@path": "$.context"}, "separator": "_"}},
    "raw": {"@json": {"mode": "encode", "value": {"@path": "$.properties"}}},
    "decoded": {"@json": {"mode": "decode", "value": {"@path": "$.userId"}}},
}
KITCHEN_SINK_COMPILED = compile_mapping(KITCHEN_SINK)


def _assert_clean(result: Any) -> None:
    """A resolution whose errors are all deliberate (no bug escaped into 'unexpected error')."""
    assert all(isinstance(error, MappingError) for error in result.errors)
    assert not [error for error in result.errors if "unexpected error" in error.message], result.errors
    json.dumps(result.value, allow_nan=True)  # what comes out is JSON


@PROPERTY_SETTINGS
@given(EVENTS)
def test_mapping_resolution_never_raises_on_arbitrary_events(event: Any) -> None:
    before = repr(event)
    result = KITCHEN_SINK_COMPILED.resolve(event)
    _assert_clean(result)
    assert isinstance(result.value, dict)
    assert repr(event) == before  # resolution does not touch the event


@PROPERTY_SETTINGS
@given(MAPPINGS, st.lists(EVENTS, min_size=1, max_size=3))
def test_mapping_generated_mappings_are_valid_and_resolve_without_raising(mapping: Any, events: list[Any]) -> None:
    assert validate(mapping) == []
    compiled = compile_mapping(mapping)
    for event in events:
        result = compiled.resolve(event)
        _assert_clean(result)
        assert repr(compiled.resolve(event)) == repr(result)  # deterministic: nothing kept between events


@PROPERTY_SETTINGS
@given(
    st.recursive(
        JSON,
        lambda inner: st.dictionaries(
            st.sampled_from(["@path", "@if", "@merge", "then", "value", "@nope"]) | KEYS, inner, max_size=3
        ),
        max_leaves=15,
    ),
    EVENTS,
)
def test_mapping_arbitrary_json_mappings_validate_and_resolve_without_raising(mapping: Any, event: Any) -> None:
    errors = validate(mapping)
    assert all(isinstance(error, MappingError) for error in errors)
    result = resolve(mapping, event)
    if errors:
        assert result.value is None and result.errors == errors
    else:
        _assert_clean(result)


PLAIN_PATHS = st.lists(
    st.sampled_from(["properties", "traits", "context", "email", "total", "library", "name", "x"]),
    min_size=1,
    max_size=5,
)


@PROPERTY_SETTINGS
@given(st.lists(PLAIN_PATHS, min_size=1, max_size=8), EVENTS)
def test_mapping_inlined_paths_agree_with_the_generic_path_walker(paths: list[list[str]], event: Any) -> None:
    mapping = {f"f{index}": {"@path": ".".join(path)} for index, path in enumerate(paths)}
    expected = {}
    for index, path in enumerate(paths):
        value = event
        for segment in path:  # the reference: one step at a time, as for paths with indexes
            value = step(value, segment)
        if value is not MISSING:
            expected[f"f{index}"] = value
    assert repr(compile_mapping(mapping).resolve(event).value) == repr(expected)
