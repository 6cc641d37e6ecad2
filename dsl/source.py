"""Source files and spans: where every AST node and diagnostic points."""

from __future__ import annotations

import bisect
from typing import NamedTuple

import attrs


class Span(NamedTuple):
    """A range of one source file. Lines and columns are 1-based; the end is exclusive.

    A named tuple rather than an attrs class: the parser makes one for most tokens,
    and tuple construction is several times cheaper.
    """

    file: str
    start: int
    end: int
    line: int
    column: int
    end_line: int
    end_column: int

    def to(self, other: Span) -> Span:
        """The span from the start of this one to the end of `other`."""
        return Span(
            self.file, self.start, other.end, self.line, self.column, other.end_line, other.end_column
        )

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@attrs.frozen(slots=True)
class SourceFile:
    """The text of one file as it was read, with a table of line starts for positions."""

    path: str
    text: str
    line_starts: tuple[int, ...] = attrs.field(init=False)

    @line_starts.default
    def _line_starts(self) -> tuple[int, ...]:
        starts = [0]
        find = self.text.find
        pos = find("\n")
        while pos != -1:
            starts.append(pos + 1)
            pos = find("\n", pos + 1)
        return tuple(starts)

    def position(self, offset: int) -> tuple[int, int]:
        """The 1-based (line, column) of a character offset."""
        index = bisect.bisect_right(self.line_starts, offset) - 1
        return index + 1, offset - self.line_starts[index] + 1

    def span(self, start: int, end: int) -> Span:
        line, column = self.position(start)
        end_line, end_column = self.position(end)
        return Span(self.path, start, end, line, column, end_line, end_column)

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        start = self.line_starts[line - 1]
        end = self.text.find("\n", start)
        text = self.text[start:] if end == -1 else self.text[start:end]
        return text.removesuffix("\r")

    @property
    def end_span(self) -> Span:
        """An empty span at the very end of the file, where an unexpected end is reported."""
        end = len(self.text.rstrip()) if self.text.strip() else len(self.text)
        return self.span(end, end)
