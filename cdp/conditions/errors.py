"""ParseError: what is wrong with a condition, and where, with a caret under the spot."""

from __future__ import annotations


class ParseError(ValueError):
    def __init__(self, message: str, source: str, offset: int) -> None:
        self.message = message
        self.source = source
        self.offset = max(0, min(offset, len(source)))
        start = source.rfind("\n", 0, self.offset) + 1
        end = source.find("\n", self.offset)
        self.line = source.count("\n", 0, self.offset) + 1
        self.column = self.offset - start + 1
        self.line_text = source[start : end if end != -1 else len(source)]
        super().__init__(str(self))

    @property
    def caret(self) -> str:
        """The offending line with a `^` under the error, for display in a monospace font."""
        # Tabs stay tabs so the caret lines up under the same character in any terminal.
        padding = "".join("\t" if char == "\t" else " " for char in self.line_text[: self.column - 1])
        return f"{self.line_text}\n{padding}^"

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}" if "\n" in self.source else f"offset {self.offset}"
        return f"{self.message} at {where}\n{self.caret}"
