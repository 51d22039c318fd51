"""Trigger conditions: a small language that chooses events, e.g. `type = "track" and event = "Order Completed"`.

See README.md for the language. Compile a condition once, then call it on many events:

    condition = compile_condition('properties.total > 100')
    condition({"properties": {"total": 120}})  # True
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from cdp.conditions.errors import ParseError
from cdp.conditions.evaluate import Test, compile_expr
from cdp.conditions.syntax import Expr, parse


class Condition:
    """A compiled condition: call it with an event to get True or False. Never raises."""

    __slots__ = ("source", "tree", "test")

    def __init__(self, source: str, tree: Expr, test: Test) -> None:
        self.source = source
        self.tree = tree
        self.test = test  # the raw closure, without the safety net below (the property tests use it)

    def __call__(self, event: Any) -> bool:
        try:
            return self.test(event)
        # Evaluation is written not to fail on any JSON; this net is for what JSON cannot express
        # (exotic objects, pathological nesting): a trigger that cannot decide does not fire.
        except Exception:
            return False

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"


def compile_condition(source: str) -> Condition:
    """Parses and compiles a condition; raises ParseError (with offset and caret) if it is malformed."""
    tree = parse(source)
    return Condition(source, tree, compile_expr(tree))


def check(source: str) -> ParseError | None:
    """The parse error of a condition, or None when it is well formed (for validating before saving)."""
    try:
        parse(source)
    except ParseError as exc:
        return exc
    return None


@lru_cache(maxsize=512)
def _cached(source: str) -> Condition:
    return compile_condition(source)


def matches(source: str, event: Any) -> bool:
    """One-off evaluation with a cache of compiled conditions; raises ParseError for a malformed one."""
    return _cached(source)(event)


__all__ = ["Condition", "Expr", "ParseError", "check", "compile_condition", "matches", "parse"]
