"""Positions between the AST's spans and the Language Server Protocol's.

A `Span` (dsl/source.py) holds character offsets into its file's text, and 1-based lines and
columns that count code points. LSP positions are a 0-based line and a 0-based character
offset counted in the code units of the encoding agreed at `initialize`: UTF-16 unless the
client offers another (a character outside the Basic Multilingual Plane, such as an emoji,
is two UTF-16 units, one UTF-32 unit and four UTF-8 units). Lines are those of
`SourceFile.line_starts`: split at `\\n` (a `\\r` before it stays at the end of its line).
"""

from __future__ import annotations

from lsprotocol import types

from interlock.dsl import SourceFile, Span

UTF16 = "utf-16"


def _units(char: str, encoding: str) -> int:
    point = ord(char)
    if encoding == "utf-8":
        return 1 if point < 0x80 else 2 if point < 0x800 else 3 if point < 0x10000 else 4
    if encoding == "utf-32":
        return 1
    return 2 if point >= 0x10000 else 1


def _line_end(source: SourceFile, line: int) -> int:
    """The offset of the end of 0-based `line`, before its `\\n`."""
    if line + 1 < len(source.line_starts):
        return source.line_starts[line + 1] - 1
    return len(source.text)


def position(source: SourceFile, offset: int, encoding: str = UTF16) -> types.Position:
    """The LSP position of a character offset of `source`."""
    line, column = source.position(offset)
    start = source.line_starts[line - 1]
    return types.Position(line - 1, sum(_units(c, encoding) for c in source.text[start:start + column - 1]))


def to_range(source: SourceFile, span: Span, encoding: str = UTF16) -> types.Range:
    return types.Range(position(source, span.start, encoding), position(source, span.end, encoding))


def offset(source: SourceFile, where: types.Position, encoding: str = UTF16) -> int:
    """The character offset of an LSP position; a position past the end of its line is the
    line's end, a line past the last the end of the text."""
    if where.line >= len(source.line_starts):
        return len(source.text)
    at = source.line_starts[where.line]
    end = _line_end(source, where.line)
    units = 0
    while at < end and units < where.character:
        units += _units(source.text[at], encoding)
        at += 1
    return at
