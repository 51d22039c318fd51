"""The condition language's syntax tree and its recursive-descent parser.

condition  := or
or         := and ("or" and)*
and        := unary ("and" unary)*
unary      := "not" unary | "(" condition ")" | test
test       := "true" | "false"
            | operand "exists" | operand "not" "exists"
            | operand ("=" | "==" | "!=" | "<" | "<=" | ">" | ">=") operand
            | operand ["not"] ("in" | "contains" | "starts_with" | "ends_with") operand
operand    := path | string | number | "true" | "false" | "null" | "[" [operand ("," operand)*] "]"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdp.conditions.errors import ParseError
from cdp.conditions.lexer import Token, tokenize

COMPARISONS = frozenset({"=", "==", "!=", "<", "<=", ">", ">="})
WORD_OPERATORS = frozenset({"in", "contains", "starts_with", "ends_with"})
_LITERAL_WORDS = {"true": True, "false": False, "null": None}


@dataclass(frozen=True, slots=True)
class Path:
    segments: tuple[str | int, ...]
    text: str


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any  # str, int, float, bool, None, or a list of those


Operand = Path | Literal


@dataclass(frozen=True, slots=True)
class Compare:
    operator: str  # "=", "!=", "<", "<=", ">", ">=", "in", "contains", "starts_with", "ends_with"
    left: Operand
    right: Operand


@dataclass(frozen=True, slots=True)
class Exists:
    operand: Operand


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Constant:
    value: bool


Expr = Compare | Exists | Not | And | Or | Constant


def parse(source: str) -> Expr:
    """The syntax tree of a condition; raises ParseError pointing at the first problem."""
    if not isinstance(source, str):
        raise ParseError(f"a condition is text, got {type(source).__name__}", "", 0)
    parser = _Parser(source)
    try:
        return parser.parse()
    except RecursionError:
        raise ParseError("the condition nests too deeply", source, parser.token.offset) from None


def _describe(token: Token) -> str:
    return "the end of the condition" if token.kind == "end" else repr(token.text)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.pos = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def _is_word(self, *words: str) -> bool:
        return self.token.kind == "word" and self.token.value in words

    def _fail(self, message: str, token: Token | None = None) -> ParseError:
        token = token or self.token
        return ParseError(message, self.source, token.offset)

    def _take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> Expr:
        if self.token.kind == "end":
            raise self._fail("the condition is empty")
        expr = self._or()
        if self.token.kind != "end":
            raise self._fail(f"expected 'and', 'or' or the end of the condition, found {_describe(self.token)}")
        return expr

    def _or(self) -> Expr:
        operands = [self._and()]
        while self._is_word("or"):
            self._take()
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def _and(self) -> Expr:
        operands = [self._unary()]
        while self._is_word("and"):
            self._take()
            operands.append(self._unary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def _unary(self) -> Expr:
        if self._is_word("not"):
            self._take()
            return Not(self._unary())
        if self.token.kind == "(":
            opening = self._take()
            expr = self._or()
            if self.token.kind != ")":
                raise self._fail(f"expected ')' (the '(' at offset {opening.offset} is not closed)")
            self._take()
            return expr
        return self._test()

    def _test(self) -> Expr:
        start = self.token
        left = self._operand()
        if self._is_word("exists"):
            self._take()
            return Exists(left)
        negate = False
        if self._is_word("not"):
            self._take()
            negate = True
            if self._is_word("exists"):
                self._take()
                return Not(Exists(left))
        token = self.token
        if token.kind in COMPARISONS and not negate:
            operator = "=" if token.kind == "==" else token.kind
        elif token.kind == "word" and token.value in WORD_OPERATORS:
            operator = token.value
        elif isinstance(left, Literal) and type(left.value) is bool and not negate:
            return Constant(left.value)
        else:
            expected = "'in', 'contains', 'starts_with', 'ends_with' or 'exists'" if negate else "an operator"
            hint = " (to test a field, write `exists` or `= true`)" if isinstance(left, Path) and not negate else ""
            raise self._fail(f"expected {expected} after {start.text!r}, found {_describe(token)}{hint}")
        self._take()
        test = Compare(operator, left, self._operand())
        return Not(test) if negate else test

    def _operand(self) -> Operand:
        token = self.token
        if token.kind == "path":
            self._take()
            return Path(token.value, token.text)
        return Literal(self._literal())

    def _literal(self) -> Any:
        token = self.token
        if token.kind in ("string", "number"):
            return self._take().value
        if token.kind == "word" and token.value in _LITERAL_WORDS:
            return _LITERAL_WORDS[self._take().value]
        if token.kind == "[":
            self._take()
            items: list[Any] = []
            while self.token.kind != "]":
                items.append(self._literal())
                if self.token.kind == ",":
                    self._take()
                elif self.token.kind != "]":
                    raise self._fail(f"expected ',' or ']' in the list, found {_describe(self.token)}")
            self._take()
            return items
        raise self._fail(f"expected a field or a value, found {_describe(token)}")
