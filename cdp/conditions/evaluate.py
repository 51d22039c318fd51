"""Compiles a syntax tree into one closure event -> bool.

Comparisons are strict about types: a number never equals a string, `true` is not 1, ordering works
between two numbers or two strings only. A mismatch is simply false, never an error. A missing field
and null are equal to each other (so `traits.email = null` holds for events without an email).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cdp.conditions.syntax import And, Compare, Constant, Exists, Expr, Literal, Not, Operand, Or
from cdp.mapping.paths import MISSING, compile_getter

Test = Callable[[Any], bool]
Getter = Callable[[Any], Any]


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or kind is float


def equal(a: Any, b: Any) -> bool:
    kind_a, kind_b = type(a), type(b)
    if kind_a is kind_b:
        # Arrays and objects compare element by element with these same rules, so 1 never equals true.
        if kind_a is list:
            return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
        if kind_a is dict:
            return a.keys() == b.keys() and all(equal(value, b[key]) for key, value in a.items())
        return a == b
    if (a is None or a is MISSING) and (b is None or b is MISSING):
        return True
    return _is_number(a) and _is_number(b) and a == b


def _ordered(a: Any, b: Any) -> bool:
    """Whether a and b can be ordered: two numbers or two strings."""
    kind_a, kind_b = type(a), type(b)
    if kind_a is str:
        return kind_b is str
    return (kind_a is int or kind_a is float) and (kind_b is int or kind_b is float)


def contains(container: Any, item: Any) -> bool:
    kind = type(container)
    if kind is str:
        return type(item) is str and item in container
    if kind is list:
        return any(equal(element, item) for element in container)
    if kind is dict:
        return type(item) is str and item in container
    return False


def _starts_with(a: Any, b: Any) -> bool:
    return type(a) is str and type(b) is str and a.startswith(b)


def _ends_with(a: Any, b: Any) -> bool:
    return type(a) is str and type(b) is str and a.endswith(b)


_GENERIC: dict[str, Callable[[Any, Any], bool]] = {
    "=": equal,
    "!=": lambda a, b: not equal(a, b),
    "<": lambda a, b: _ordered(a, b) and a < b,
    "<=": lambda a, b: _ordered(a, b) and a <= b,
    ">": lambda a, b: _ordered(a, b) and a > b,
    ">=": lambda a, b: _ordered(a, b) and a >= b,
    "in": lambda a, b: type(b) is list and contains(b, a),
    "contains": contains,
    "starts_with": _starts_with,
    "ends_with": _ends_with,
}


def _operand(operand: Operand) -> Getter:
    if isinstance(operand, Literal):
        value = operand.value
        return lambda event: value
    return compile_getter(operand.segments)


def _number_test(operator: str, get: Getter, limit: float) -> Test:
    # One closure per operator, with the type test inline: this is the commonest trigger after `=`.
    if operator == "<":
        return lambda event: ((kind := type(found := get(event))) is int or kind is float) and found < limit
    if operator == "<=":
        return lambda event: ((kind := type(found := get(event))) is int or kind is float) and found <= limit
    if operator == ">":
        return lambda event: ((kind := type(found := get(event))) is int or kind is float) and found > limit
    return lambda event: ((kind := type(found := get(event))) is int or kind is float) and found >= limit


def _compare_literal(operator: str, get: Getter, value: Any) -> Test | None:
    """Fast forms for the common `field <op> literal`; None when there is none for this pair."""
    kind = type(value)
    if operator == "=" and kind is str:
        return lambda event: get(event) == value  # only a str equals a str
    if operator == "!=" and kind is str:
        return lambda event: get(event) != value
    if operator == "=" and kind is bool:
        return lambda event: get(event) is value
    if operator == "=" and value is None:
        return lambda event: get(event) in (None, MISSING)
    if operator in ("<", "<=", ">", ">=") and (kind is int or kind is float):
        return _number_test(operator, get, value)
    if operator == "in" and kind is list and value and all(type(item) is str for item in value):
        choices = frozenset(value)
        return lambda event: type(found := get(event)) is str and found in choices
    return None


def compile_expr(expr: Expr) -> Test:
    if isinstance(expr, Compare):
        left = _operand(expr.left)
        if isinstance(expr.right, Literal) and not isinstance(expr.left, Literal):
            fast = _compare_literal(expr.operator, left, expr.right.value)
            if fast is not None:
                return fast
        right = _operand(expr.right)
        compare = _GENERIC[expr.operator]
        return lambda event: compare(left(event), right(event))
    if isinstance(expr, Exists):
        get = _operand(expr.operand)
        return lambda event: (found := get(event)) is not None and found is not MISSING
    if isinstance(expr, Not):
        inner = compile_expr(expr.operand)
        return lambda event: not inner(event)
    if isinstance(expr, And | Or):
        return _junction(expr)
    if isinstance(expr, Constant):
        value = expr.value
        return lambda event: value
    raise TypeError(f"not a condition node: {expr!r}")


def _junction(expr: And | Or) -> Test:
    # Closures of two to four operands chained with `and`/`or`: one call per operand evaluated,
    # cheaper than all()/any() over a generator, and still short-circuiting left to right.
    tests = [compile_expr(operand) for operand in expr.operands]
    if len(tests) > 16:  # a long chain would nest too deep; a loop has no depth
        if isinstance(expr, And):
            return lambda event: all(test(event) for test in tests)
        return lambda event: any(test(event) for test in tests)
    return _fold(tests, _all if isinstance(expr, And) else _any)


def _fold(tests: list[Test], combine: Callable[[list[Test]], Test]) -> Test:
    """Up to four tests in one closure; longer chains nest: a, b, c and (the rest)."""
    if len(tests) <= 4:
        return combine(tests)
    return combine([*tests[:3], _fold(tests[3:], combine)])


def _all(tests: list[Test]) -> Test:
    if len(tests) == 2:
        a, b = tests
        return lambda event: a(event) and b(event)
    if len(tests) == 3:
        a, b, c = tests
        return lambda event: a(event) and b(event) and c(event)
    a, b, c, d = tests
    return lambda event: a(event) and b(event) and c(event) and d(event)


def _any(tests: list[Test]) -> Test:
    if len(tests) == 2:
        a, b = tests
        return lambda event: a(event) or b(event)
    if len(tests) == 3:
        a, b, c = tests
        return lambda event: a(event) or b(event) or c(event)
    a, b, c, d = tests
    return lambda event: a(event) or b(event) or c(event) or d(event)
