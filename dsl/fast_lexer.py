"""The fast path's lexer: a whole file's tokens, in its top-level declarations.

The file is read in one pass of the grammar's master expression (`lexicon.py`, the same
that `RouteLexer` uses), so the tokens are the ones Lark's parser would read; only whether
a word is a keyword is left to the fast parser, which knows where it stands. A token is a
tuple (kind, text, offset, line, column): its kind is the terminal (`IDENT`, `QPATH`,
`STRING`, `NUMBER`, `DURATION`, `TEMPLATE`) or, for punctuation, the text itself. No token
spans a line, so a token's end is its offset and column plus the length of its text.

The tokens are split into units, each a top-level declaration or what stands in its place:
a new unit starts at a declaration keyword that stands where Lark's error recovery would
restart (`TOP_LEVEL`: at the start of a line) and outside any brackets, so braces in
strings and comments do not count, and a declaration whose `}` is missing takes in the
rest of the file. A character that starts no token makes its unit unreadable (`lexed`
False); reading goes on at the next line that starts a declaration.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from .lexicon import DECLARATION_WORDS, TOP_LEVEL, Lexicon

Token = tuple[str, str, int, int, int]  # kind, text, offset, line, column
END = "$END"  # the kind of the token that ends every unit

_OPENING = frozenset("([{")
_CLOSING = frozenset(")]}")


@attrs.frozen(slots=True)
class Unit:
    """The tokens of one top-level declaration, or of what stands in its place, then an
    `END` token; and where its tokens start and end."""

    tokens: list[Token]
    lexed: bool  # False: part of its text starts no token
    starts: bool  # at a declaration keyword (False for what comes before the first one)
    start: int
    end: int


def _unit(tokens: list[Token], lexed: bool, starts: bool) -> Unit:
    if not tokens:
        return Unit([(END, "", 0, 1, 1)], lexed, starts, 0, 0)
    _, text, start, line, column = tokens[-1]
    tokens.append((END, "", start + len(text), line, column + len(text)))
    return Unit(tokens, lexed, starts, tokens[0][2], start + len(text))


def units(text: str, lexicon: Lexicon) -> Iterator[Unit]:
    """The file's units, in order (see the module docstring)."""
    match = lexicon.master.match
    top_level = TOP_LEVEL.match
    count = text.count
    rfind = text.rfind
    tokens: list[Token] = []
    append = tokens.append
    lexed, starts = True, False
    pos = 0  # where the next token's blanks start
    line, line_start = 1, 0
    depth = 0  # brackets open in this unit
    end = len(text)
    while pos < end:
        found = match(text, pos)
        if found is None:
            if lexicon.trailing.match(text, pos):
                break
            # No token starts at `pos` (after its blanks): this unit cannot be read; go on at
            # the next line that starts a declaration.
            lexed = False
            restart = TOP_LEVEL.search(text, pos)
            if restart is None:
                break
            line += count("\n", pos, restart.start())
            pos = line_start = restart.start()
            depth = 0
            continue
        kind: str = found.lastgroup  # type: ignore[assignment]  # (a group always matched)
        start, after = found.span(kind)
        if start != pos and (start - pos > 1 or text[pos] != " "):
            newlines = count("\n", pos, start)
            if newlines:
                line += newlines
                line_start = rfind("\n", pos, start) + 1
        pos = after
        value = text[start:pos]
        if kind == "PUNCT":
            kind = value
            if value in _OPENING:
                depth += 1
            elif value in _CLOSING:
                depth -= 1
        elif depth <= 0 and value in DECLARATION_WORDS and kind == "IDENT":
            declaration = top_level(text, line_start)
            if declaration is not None and declaration.end() == pos:
                if tokens or not lexed:
                    yield _unit(tokens, lexed, starts)
                tokens, lexed, starts, depth = [], True, True, 0
                append = tokens.append
        append((kind, value, start, line, start - line_start + 1))
    if tokens or not lexed:
        yield _unit(tokens, lexed, starts)
