"""Highlighting `.route` files with Pygments: `RouteLexer`, registered as the `route` lexer
through the `pygments.lexers` entry point (so `pygmentize -l route`, Sphinx and MkDocs
code blocks, and rich's `Syntax(code, "route")` find it).

Its tokens are the grammar's terminals (grammar/route.lark): comments, strings, `f"..."`
templates (their `{path}` places and `{{ }}`), numbers, durations, names, dotted event types
and globs, paths with segments in backticks, operators and punctuation. Keywords are
contextual in the grammar (docs/language.md §6): here a word of the keyword list is a
keyword unless it is part of a dotted name, a key before `:`, or the name a declaration
defines (`target order`); elsewhere a field that has a keyword's name shows as a keyword.
A character that starts no token of the language is an `Error` token, as the parser would
report it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar

from pygments.lexer import RegexLexer, bygroups, default, words
from pygments.token import (
    Comment,
    Error,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
    _TokenType,
)

__all__ = ["KEYWORDS", "RouteLexer"]

# The words that begin a declaration, those that join or negate conditions and test values,
# the constants, and every other keyword. Together: the grammar's keywords, exactly
# (tests/test_highlight.py compares them with the grammar's anonymous terminals).
DECLARATIONS = ("choose", "dead_letter", "defaults", "event", "import", "retry", "route", "target", "test",
                "unrouted")
OPERATOR_WORDS = ("and", "any", "cidr", "contains", "endswith", "endswith_ignore_case", "equals_ignore_case",
                  "exists", "in", "is", "matches", "missing", "not", "or", "regex", "startswith",
                  "startswith_ignore_case")
CONSTANTS = ("false", "null", "true")
OTHER_KEYWORDS = ("attempts", "backoff", "by", "concurrency", "deadline", "emits", "env", "exactly", "expect",
                  "exponential", "factor", "fixed", "format", "give_up_on", "headers", "http", "initial",
                  "jitter", "linear", "list", "max", "mode", "nothing", "on", "on_exhausted", "order",
                  "otherwise", "retain", "retry_on", "send", "step", "then", "timeout", "to", "when", "with")
KEYWORDS = frozenset(DECLARATIONS + OPERATOR_WORDS + CONSTANTS + OTHER_KEYWORDS)

# The grammar's terminals, as written there.
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_-]*"
NAME = rf"(?:\*\*?|[A-Za-z_][A-Za-z0-9_-]*)(?:\.(?:\*\*?|{_SEGMENT}))*"
_QUOTED = r"`(?:[^`\\\n]|\\[^\n])*`"
UNCLOSED = r"`(?:[^`\\\n]|\\[^\n])*+(?=\n|\Z)"
QPATH = rf"(?:[A-Za-z_][A-Za-z0-9_-]*(?:\.{_SEGMENT})*\.)?{_QUOTED}(?:\.(?:{_SEGMENT}|{_QUOTED}))*"
NUMBER = r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![A-Za-z0-9_]|\.[0-9])"
DURATION = r"-?[0-9]+(?:\.[0-9]+)?[A-Za-z][A-Za-z0-9]*"
# Where a word ends: not inside a longer name, a dotted name or a path.
_WORD_END = r"(?![A-Za-z0-9_`*-]|\.[A-Za-z0-9_`*])"

_PATH_PART = re.compile(rf"({_QUOTED})|(\.)|([^.`]+)")


def _path(lexer: RouteLexer, match: re.Match[str]) -> Iterator[tuple[int, _TokenType, str]]:
    """A path with segments in backticks: plain segments as names, quoted ones as backticked
    strings, the dots between them as punctuation."""
    start = match.start()
    for part in _PATH_PART.finditer(match.group()):
        kind = String.Backtick if part.group(1) else Punctuation if part.group(2) else Name.Variable
        yield start + part.start(), kind, part.group()


def _groups(*kinds: _TokenType) -> Any:
    """Pygments' `bygroups`: a token type per group of the rule's expression."""
    return bygroups(*kinds)  # type: ignore[no-untyped-call]  # (its stubs leave it untyped)


class RouteLexer(RegexLexer):
    """The `.route` language of interlock."""

    name = "interlock route"
    aliases = ("route", "interlock")
    filenames = ("*.route",)
    mimetypes = ("text/x-interlock-route",)

    tokens: ClassVar[dict[str, list[Any]]] = {
        "root": [
            (r"[ \t\f\r\n]+", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r'f"', String.Affix, "template"),
            (r'"', String.Double, "string"),
            # a backtick not closed on its line: the rest of the line is the error, in one
            # token (tried backtick by backtick, the line took time in its length squared)
            (UNCLOSED, Error),
            # a key before `:` (a field of an event, of a payload or an expectation)
            (rf"({NAME})([ \t\f\r\n]*)(:)", _groups(Name.Attribute, Whitespace, Punctuation)),
            (QPATH, _path),
            # the name a declaration defines
            (rf"(event|target)([ \t\f\r\n]+)({NAME})", _groups(Keyword.Declaration, Whitespace, Name.Class)),
            (rf"(route|choose|test)([ \t\f\r\n]+)({NAME})",
             _groups(Keyword.Declaration, Whitespace, Name.Function)),
            (words(DECLARATIONS, suffix=_WORD_END), Keyword.Declaration),
            (words(OPERATOR_WORDS, suffix=_WORD_END), Operator.Word),
            (words(CONSTANTS, suffix=_WORD_END), Keyword.Constant),
            (words(OTHER_KEYWORDS, suffix=_WORD_END), Keyword),
            (NUMBER, Number),
            (DURATION, Number),  # (`250ms`; a unit that is none is reported by the checker)
            (NAME, Name),
            (r"\?\?|\.\.\.|\.\.|==|!=|<=|>=|<|>|\?", Operator),
            (r"[{}\[\](),:]", Punctuation),
        ],
        "string": [
            (r'[^"\\\n]+', String.Double),
            (r"\\[^\n]", String.Escape),
            (r'"', String.Double, "#pop"),
            default("#pop"),  # an unterminated string ends with its line (the parser says so)
        ],
        "template": [
            (r"\{\{|\}\}", String.Escape),
            (r'\{[^{}"\n]*\}', String.Interpol),
            (r'[^"\\{}\n]+', String.Double),
            (r"[{}]", String.Double),  # a lone brace: reported by the checker, not a token of its own
            (r"\\[^\n]", String.Escape),
            (r'"', String.Double, "#pop"),
            default("#pop"),
        ],
    }
