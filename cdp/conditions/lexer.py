"""Splits a condition into tokens: paths, literals, operators and punctuation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cdp.conditions.errors import ParseError

KEYWORDS = frozenset(
    {"and", "or", "not", "in", "contains", "starts_with", "ends_with", "exists", "true", "false", "null"}
)
_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_FIRST_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NAME = re.compile(r"[A-Za-z0-9_$-]+")
_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_SYMBOLS = ("==", "!=", "<=", ">=", "=", "<", ">", "(", ")", "[", "]", ",")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_LOW = re.compile(r"[dD][c-fC-F][0-9a-fA-F]{2}")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "path", "string", "number", "word" (a keyword), a symbol such as "<=", or "end"
    value: Any
    offset: int
    text: str


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while True:
        space = _SPACE.match(source, pos)
        if space:
            pos = space.end()
        if pos >= len(source):
            tokens.append(Token("end", None, pos, ""))
            return tokens
        char = source[pos]
        if char in "\"'":
            value, end = _string(source, pos)
            tokens.append(Token("string", value, pos, source[pos:end]))
        elif char.isdigit() or (char == "-" and pos + 1 < len(source) and source[pos + 1].isdigit()):
            match = _NUMBER.match(source, pos)
            if match is None:
                raise ParseError("malformed number", source, pos)
            text = match.group()
            end = match.end()
            if end < len(source) and (source[end].isalnum() or source[end] in "_."):
                raise ParseError("malformed number", source, pos)
            value: Any = float(text) if any(c in text for c in ".eE") else int(text)
            tokens.append(Token("number", value, pos, text))
        elif char == "$" or _FIRST_NAME.match(source, pos):
            token, end = _path_or_word(source, pos)
            tokens.append(token)
        else:
            symbol = next((s for s in _SYMBOLS if source.startswith(s, pos)), None)
            if symbol is None:
                raise ParseError(f"unexpected character {char!r}", source, pos)
            end = pos + len(symbol)
            tokens.append(Token(symbol, symbol, pos, symbol))
        pos = end


def _string(source: str, start: int) -> tuple[str, int]:
    quote = source[start]
    out: list[str] = []
    pos = start + 1
    while pos < len(source):
        char = source[pos]
        if char == quote:
            return "".join(out), pos + 1
        if char == "\\":
            escape = source[pos + 1 : pos + 2]
            if escape in _ESCAPES:
                out.append(_ESCAPES[escape])
                pos += 2
                continue
            if escape == "u" and _HEX4.fullmatch(source, pos + 2, pos + 6):
                code = int(source[pos + 2 : pos + 6], 16)
                pos += 6
                # A UTF-16 surrogate pair (as JSON encoders write emoji) is one character, as in JSON.
                if (
                    0xD800 <= code < 0xDC00
                    and source.startswith("\\u", pos)
                    and _LOW.fullmatch(source, pos + 2, pos + 6)
                ):
                    code = 0x10000 + ((code - 0xD800) << 10) + (int(source[pos + 2 : pos + 6], 16) - 0xDC00)
                    pos += 6
                out.append(chr(code))
                continue
            raise ParseError("unknown escape in string", source, pos)
        out.append(char)
        pos += 1
    raise ParseError("string is not closed", source, start)


def _path_or_word(source: str, start: int) -> tuple[Token, int]:
    """`properties.products[0]["odd key"]` -> a path token; a lone keyword -> a word token."""
    segments: list[str | int] = []
    pos = start
    if source[pos] == "$":
        pos += 1
        if source.startswith(".", pos):
            pos += 1
            match = _NAME.match(source, pos)
            if match is None:
                raise ParseError("expected a name after '$.'", source, pos)
            segments.append(match.group())
            pos = match.end()
    else:
        match = _FIRST_NAME.match(source, pos)
        assert match is not None  # the caller saw a name start here
        segments.append(match.group())
        pos = match.end()
        if match.group() in KEYWORDS:
            # `in["a"]` is the operator before a list; a field named like a keyword is written `$.in`.
            return Token("word", match.group(), start, match.group()), pos
    while pos < len(source):
        if source[pos] == ".":
            match = _NAME.match(source, pos + 1)
            if match is None:
                raise ParseError("expected a name after '.'", source, pos + 1)
            segments.append(match.group())
            pos = match.end()
        elif (match := _INDEX.match(source, pos)) is not None:
            segments.append(int(match.group(1)))
            pos = match.end()
        elif source[pos] == "[" and source[pos + 1 : pos + 2] in ("'", '"'):
            key, pos = _string(source, pos + 1)
            if not source.startswith("]", pos):
                raise ParseError("expected ']' after the quoted name", source, pos)
            segments.append(key)
            pos += 1
        else:
            break
    return Token("path", tuple(segments), start, source[start:pos]), pos
