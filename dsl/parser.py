"""Parsing one `.route` file into a `Module`, with syntax errors as diagnostics.

The grammar is `grammar/route.lark`, shipped as package data and loaded once
(`parser()` is a cached factory) with `strict=True`, so a conflict in the grammar
fails at load time rather than misparsing.

The lexer is ours but its terminals are the grammar's: one master regular
expression built from the grammar's terminal definitions, which skips whitespace
and comments in the same match as the token after them. A word becomes a keyword
only where the parser state accepts that keyword, as with Lark's contextual lexer.
With the AST built by the parser itself (no parse tree), the whole parse is about 1.2x
faster than Lark's contextual lexer feeding the same builder (`bench/parse.py`); a
10,000-route project loads in under a second.

Syntax errors: the first one in a top-level declaration is reported, that
declaration is blanked out (positions kept), and parsing starts again, so one file
can report several independent mistakes. Messages name what was expected in the
user's words; `syntax_examples.py` adds a specific message for common mistakes.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import unicodedata
from collections.abc import Iterator
from typing import Any, cast

from lark import Lark, Token
from lark.common import LexerConf
from lark.exceptions import UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer, LexerState, PatternStr

from . import ast
from .builder import Builder
from .diagnostics import Diagnostic, Related, error
from .source import SourceFile
from .transform import CURRENT, BuildContext, did_you_mean

MAX_SYNTAX_ERRORS_PER_FILE = 20

# Where error recovery may restart: a top-level keyword at the start of a line. `retry` and
# `dead_letter` are target options too, so they count only in column 1; the others also
# when indented.
_TOP_LEVEL = re.compile(
    r"^(?:retry|dead_letter|[ \t]*(?:import|event|target|defaults|unrouted|route|choose|test))\b", re.MULTILINE
)


class LexFailure(Exception):
    """No terminal of the grammar matches at `pos`; `between` when the parser stood
    between two top-level declarations."""

    def __init__(self, pos: int, between: bool) -> None:
        super().__init__(pos)
        self.pos = pos
        self.between = between


class TooDeep(LexFailure):
    """Brackets or `not`s nested deeper than MAX_NESTING at `pos`."""


# The parser is iterative, but every later pass walks the AST recursively: nesting is
# bounded here, where it can be reported, rather than overflow the stack there.
MAX_NESTING = 64


# Keywords that begin a predicate and may also name a field: a field when an operator
# follows, and then what that operator takes (operators that are words may be fields too:
# `exists in` tests a field named `in`).
PREDICATE_WORDS = frozenset({"not", "any", "exists", "missing"})
_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
_SCALARS = frozenset({"STRING", "NUMBER"})


def _operator_follows(after: re.Match[str], then: re.Match[str] | None) -> bool:
    """Whether the tokens `after` and `then` (the two after a predicate word) are an operator
    and the start of what it takes."""
    word = after.group(after.lastgroup or 0)
    if word in _COMPARISONS:
        return True
    if then is None:
        return False
    kind, text = then.lastgroup, then.group(then.lastgroup or 0)
    if word == "in":
        return text in ("[", "cidr") or kind == "NUMBER"
    if word == "not":
        return text == "in"
    if word == "contains":
        return kind in _SCALARS or text in ("true", "false", "null")
    if word in ("startswith", "endswith", "matches", "equals_ignore_case", "startswith_ignore_case",
                "endswith_ignore_case"):
        return kind == "STRING" or (word == "matches" and text == "regex")
    if word == "is":
        return text == "null"
    return False


class RouteLexer(Lexer):
    """A contextual lexer over the grammar's own terminals (see the module docstring)."""

    __future_interface__ = 2

    def __init__(self, conf: LexerConf) -> None:
        self.keywords: dict[str, str] = {}  # keyword text -> terminal name
        punctuation: list[tuple[str, str]] = []
        patterns: list[tuple[int, str, str]] = []
        ignore: list[str] = []
        word = None
        for terminal in conf.terminals:
            if terminal.name == "IDENT":
                word = re.compile(terminal.pattern.to_regexp())
        assert word is not None, "the grammar must define IDENT"
        for terminal in conf.terminals:
            regexp = terminal.pattern.to_regexp()
            if terminal.name in conf.ignore:
                ignore.append(regexp)
            elif isinstance(terminal.pattern, PatternStr):
                if word.fullmatch(terminal.pattern.value):
                    self.keywords[terminal.pattern.value] = terminal.name
                else:
                    punctuation.append((terminal.pattern.value, terminal.name))
            else:
                patterns.append((terminal.priority, terminal.name, regexp))
        # Higher priority first, then longer punctuation first (`<=` before `<`).
        patterns.sort(key=lambda p: -p[0])
        punctuation.sort(key=lambda p: -len(p[0]))
        self.punctuation = dict(punctuation)
        alternatives = [f"(?P<{name}>{regexp})" for _, name, regexp in patterns]
        alternatives.append("(?P<PUNCT>{})".format("|".join(re.escape(text) for text, _ in punctuation)))
        # Possessive, so that a long run of blanks before a bad character fails in one step
        # instead of backtracking through every way of splitting the run.
        skip = "(?:{})*+".format("|".join(ignore))
        self.skip = re.compile(skip)
        self.master = re.compile(skip + "(?:" + "|".join(alternatives) + ")")
        self.trailing = re.compile(skip + r"\Z")

    def lex(self, lexer_state: LexerState, parser_state: Any) -> Iterator[Token]:
        text: str = lexer_state.text.text
        states = parser_state.parse_conf.states
        match = self.master.match
        keywords = self.keywords
        punctuation = self.punctuation
        count = text.count
        rfind = text.rfind
        pos = 0
        line = 1
        line_start = 0
        end = len(text)
        depth = 0  # brackets, braces, parentheses and `list<`, open
        types = 0  # of which `list<`: a `>` closes one of them
        previous = ""
        list_keyword = self.keywords.get("list", "")
        nots = 0
        while pos < end:
            m = match(text, pos)
            if m is None:
                if self.trailing.match(text, pos):
                    return
                skipped = self.skip.match(text, pos)
                between = self.keywords["import"] in states[parser_state.position]
                raise LexFailure(skipped.end() if skipped else pos, between)
            kind = m.lastgroup
            assert kind is not None
            start = m.start(kind)
            value = m.group(kind)
            newlines = count("\n", pos, start)
            if newlines:
                line += newlines
                line_start = rfind("\n", pos, start) + 1
            if kind == "PUNCT":
                kind = punctuation[value]
                if value in "([{" or (value == "<" and previous == list_keyword):  # `list<` nests too
                    depth += 1
                    types += value == "<"
                    if depth > MAX_NESTING:
                        raise TooDeep(start, between=False)
                elif value in ")]}" or (value == ">" and types):
                    depth -= 1
                    types -= value == ">"
            elif kind == "IDENT":
                keyword = keywords.get(value)
                if keyword is not None and keyword in states[parser_state.position]:
                    kind = keyword
                    if value in PREDICATE_WORDS and "IDENT" in states[parser_state.position]:
                        # `not`, `any`, `exists` and `missing` start a predicate, and may also
                        # name a field: followed by an operator (`missing == 1`), they do.
                        after = match(text, m.end())
                        if after is not None and _operator_follows(after, match(text, after.end())):
                            kind = "IDENT"
            if value == "not" and kind != "IDENT":
                nots += 1
                if nots > MAX_NESTING:
                    raise TooDeep(start, between=False)
            elif kind != "LPAR":
                nots = 0
            pos = m.end()
            previous = kind
            column = start - line_start + 1
            yield Token(kind, value, start, line, column, line, column + len(value), pos)


@functools.cache
def grammar_text() -> str:
    return importlib.resources.files("interlock.grammar").joinpath("route.lark").read_text(encoding="utf-8")


@functools.cache
def parser() -> Lark:
    """The one LALR parser, built on first use and then shared."""
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer=RouteLexer,
        strict=True,
        keep_all_tokens=True,
        maybe_placeholders=False,
        transformer=Builder(),
    )


# ---- syntax errors -----------------------------------------------------------

_NAMED_TERMINALS = {
    "IDENT": "a name",
    "QPATH": "a name",  # (a path with a segment in backticks: where a name may stand)
    "STRING": "a string",
    "TEMPLATE": 'a template `f"..."`',
    "NUMBER": "a number",
    "DURATION": "a duration such as `250ms`",
    "OPTIONAL": "`?`",
    "$END": "the end of the file",
}


@functools.cache
def _terminal_words() -> dict[str, str]:
    words = dict(_NAMED_TERMINALS)
    for terminal in parser().terminals:
        if isinstance(terminal.pattern, PatternStr):
            words[terminal.name] = f"`{terminal.pattern.value}`"
    return words


def describe_expected(expected: set[str]) -> str:
    words = _terminal_words()
    names = sorted({words.get(name, name) for name in expected}, key=lambda w: (not w.startswith("`"), w))
    if not names:
        return "nothing more"
    if len(names) == 1:
        return names[0]
    if len(names) > 12:
        return ", ".join(names[:12]) + f" or one of {len(names) - 12} more"
    return ", ".join(names[:-1]) + " or " + names[-1]


_NUMBERISH = re.compile(r"[0-9][0-9A-Za-z._:-]*")
_WORD_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_.*-]*)[ \t\r\n]*\Z")
_CHARACTER_HINTS = {
    "=": "compare with `==`",
    "&": "join conditions with `and`",
    "|": "join conditions with `or`",
    "!": "negate with `not`, or compare with `!=`",
    "'": 'strings use double quotes: `"text"`',
    ";": "declarations need no `;`: end the line instead",
    "/": "comments start with `#`",
    "-": "a `-` starts a negative number; names cannot start with one",
}


def _lex_error(source: SourceFile, pos: int) -> Diagnostic:
    text = source.text
    char = text[pos]
    if char == '"':
        line_end = text.find("\n", pos)
        end = len(text) if line_end == -1 else line_end
        if end > pos and text[end - 1] == "\r":
            end -= 1
        return error("E0003", "unterminated string", source.span(pos, end), "this string is not closed",
                     'close it with `"` on the same line; write `\\n` for a line break inside a string')
    word = _NUMBERISH.match(text, pos)
    if word is not None and word.end() - pos > 1:
        shown = word.group()
        return error("E0012", f"`{shown}` is not a number", source.span(pos, word.end()), "not a number",
                     f'to compare with text, quote it: `"{shown}"`')
    span = source.span(pos, pos + 1)
    code = f"U+{ord(char):04X}"
    if char.isspace():
        name = unicodedata.name(char, code).lower()
        return error("E0002", f"unexpected {name} ({code})", span, "not a plain space",
                     "replace it with a plain space: only spaces, tabs and line breaks separate tokens")
    if not char.isascii() and char.isalpha():
        return error("E0002", f"unexpected character `{char}` ({code})", span, "not allowed in a name",
                     "names are ASCII letters, digits, `_` and `-`; other text belongs in strings")
    shown = char if char.isprintable() else code
    return error("E0002", f"unexpected character `{shown}`", span, "no token starts here",
                 _CHARACTER_HINTS.get(char, "this character has no meaning in a `.route` file"))


def _enclosing(text: str, offset: int) -> re.Match[str] | None:
    """The top-level keyword of the declaration that holds `offset`."""
    found = None
    for match in _TOP_LEVEL.finditer(text, 0, offset):
        found = match
    return found


def _opening_brace(source: SourceFile, declaration: re.Match[str] | None, offset: int) -> Related | None:
    if declaration is None:
        return None
    brace = source.text.find("{", declaration.start(), offset)
    if brace == -1:
        return None
    return Related(source.span(brace, brace + 1), f"this `{declaration.group().strip()}` block opens here")


def _keyword_suggestion(token: Token, expected: set[str]) -> str | None:
    words = _terminal_words()
    keywords = [words[t].strip("`") for t in expected if t in words and words[t].strip("`").isidentifier()]
    return did_you_mean(str(token).lower(), keywords) if keywords else None


def _token_error(source: SourceFile, exc: UnexpectedToken) -> Diagnostic:
    from .syntax_examples import specific_message

    token = exc.token
    expected = set(exc.accepts or exc.expected or ())
    described = describe_expected(expected)
    if token.type == "$END":
        offset = len(source.text)
        declaration = _enclosing(source.text, offset)
        related = _opening_brace(source, declaration, offset)
        specific = specific_message(exc.state.position, token, declaration and declaration.group().strip(), expected)
        what = f"{specific[0]}: " if specific else ""
        help = specific[1] if specific else "the file ends inside a declaration: check that every `{` has its `}`"
        return error("E0004", f"{what}unexpected end of file: expected {described}", source.end_span,
                     "the file ends here", help, [related] if related else ())
    start = token.start_pos or 0
    span = source.span(start, token.end_pos or start)
    text = source.text
    declaration = _enclosing(text, start)
    keyword = declaration.group().strip() if declaration else None
    found = f"expected {described}, found `{token}`"
    between = "IMPORT" in expected

    # A word that is a keyword elsewhere was read as a name here (keywords are contextual).
    if token.type == "IDENT" and not between:
        line_start = text.rfind("\n", 0, start) + 1
        if _TOP_LEVEL.match(text, line_start) and not text[line_start:start].strip():
            related = _opening_brace(source, declaration, start)
            return error("E0001", f"this `{keyword}` is not closed: {found}", span,
                         "the next declaration starts here", f"add the missing `}}` before `{token}`",
                         [related] if related else ())
        if start > 0 and text[start - 1] == "*":
            # `order.*x`: the word was cut from a glob segment that is more than stars
            glob_start = start - 1
            while glob_start > 0 and (text[glob_start - 1].isalnum() or text[glob_start - 1] in "._-*"):
                glob_start -= 1
            glob = text[glob_start:token.end_pos or start]
            return error("E0001", f"`{glob}` is not an event type or glob: a `*` is a whole segment",
                         source.span(glob_start, token.end_pos or start), "a segment mixes `*` and a name",
                         "a segment is `*` (any one), `**` (any number) or a name: write `order.*` or "
                         "`order.*.created`")
        before = _WORD_BEFORE.search(text, 0, start)
        if before is not None and before.group(1) == "to" and _in_condition(expected):
            # `when to billing`, `a == 1 and to billing`: `to` was taken for a field
            joiner = _WORD_BEFORE.search(text, 0, before.start(1))
            to_span = source.span(before.start(1), before.end(1))
            if joiner is not None and joiner.group(1) in ("and", "or"):
                return error("E0001", "`and` and `or` need a condition on each side", to_span,
                             f"no condition after `{joiner.group(1)}`",
                             f"add the missing condition, or remove the `{joiner.group(1)}`")
            return error("E0001", "`when` needs a condition", to_span, "no condition before `to`",
                         "write a condition such as `amount > 100` after `when`")

    specific = specific_message(exc.state.position, token, keyword, expected)
    if specific is None and between:
        specific = ("a declaration was expected", _DECLARATIONS_HELP)
    if specific is not None:
        what, help = specific
        suggestion = _keyword_suggestion(token, expected) if token.type == "IDENT" else None
        return error("E0001", f"{what}: {found}", span, "unexpected here", suggestion or help)
    suggestion = _keyword_suggestion(token, expected) if token.type == "IDENT" else None
    return error("E0001", found, span, "unexpected here", suggestion)


_DECLARATIONS_HELP = (
    "a file holds `import`, `event`, `retry`, `dead_letter`, `target`, `defaults`, `unrouted`, "
    "`route`, `choose` and `test` declarations"
)


def _in_condition(expected: set[str]) -> bool:
    """Whether the parser stood after a field in a condition (expecting a comparison)."""
    words = _terminal_words()
    return any(words.get(t) == "`==`" for t in expected)


def _error_offset(source: SourceFile, exc: Exception) -> int:
    if isinstance(exc, LexFailure):
        return exc.pos
    assert isinstance(exc, UnexpectedToken)
    if exc.token.type == "$END":
        return len(source.text)
    return exc.token.start_pos or 0


def _blank(text: str, start: int, end: int) -> str:
    """The text with [start, end) replaced by spaces, newlines kept, so positions hold."""
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def parse_source(source: SourceFile) -> tuple[ast.Module, list[Diagnostic]]:
    """Parse one file. Syntax errors come back as diagnostics, never as exceptions."""
    context = BuildContext(source)
    syntax: list[Diagnostic] = []
    broken: list[str] = []
    text = source.text
    decls: list[Any] = []
    capped = False
    while True:
        context.diagnostics = []
        token = CURRENT.set(context)
        try:
            decls = cast(list[Any], parser().parse(text))  # `Builder.start` returns a list
        except (LexFailure, UnexpectedInput) as exc:
            if isinstance(exc, TooDeep):
                syntax.append(error("E0006", f"nested more than {MAX_NESTING} levels deep",
                                    source.span(exc.pos, exc.pos + 1), "too deep",
                                    "flatten the expression: name parts of it in separate routes or fields"))
            elif isinstance(exc, LexFailure):
                syntax.append(_lex_error(source, exc.pos))
            elif isinstance(exc, UnexpectedToken):
                syntax.append(_token_error(source, exc))
            else:  # pragma: no cover - the LALR parser raises only UnexpectedToken
                raise
            offset = _error_offset(source, exc)
            if capped:  # pragma: no cover - the text before the cut parsed already
                decls = []
                break
            if len(syntax) >= MAX_SYNTAX_ERRORS_PER_FILE:
                capped = True
                # Stop here: what follows is not checked, but the names it declares are
                # known to exist, and what came before still counts.
                declaration = _enclosing(text, offset)
                cut = declaration.start() if declaration else 0
                broken.extend(m.group(1) for m in _DECLARED_NAME.finditer(text, cut))
                text = _blank(text, cut, len(text))
                syntax.append(error("E0005", f"too many syntax errors: stopped after {len(syntax)} in this file",
                                    syntax[-1].span, "the last one reported",
                                    "fix these first; the rest of the file is not checked"))
                continue
            text, name = _skip_declaration(text, offset, _between_declarations(exc))
            if name:
                broken.append(name)
            continue
        finally:
            CURRENT.reset(token)
        break
    return ast.Module(source.path, tuple(decls), tuple(broken)), syntax + context.diagnostics


_DECLARED_NAME = re.compile(
    r"^[ \t]*(?:event|retry|dead_letter|target|route|choose|test)\s+([A-Za-z_][A-Za-z0-9_.-]*)", re.MULTILINE
)


def _between_declarations(exc: Exception) -> bool:
    """Whether the parser stood between two declarations (so none is broken)."""
    if isinstance(exc, LexFailure):
        return exc.between
    assert isinstance(exc, UnexpectedToken)
    return "IMPORT" in (exc.expected or ())


def _skip_declaration(text: str, offset: int, between: bool) -> tuple[str, str | None]:
    """Blank the top-level declaration that holds `offset`, up to the next one.

    Returns the new text and the name the blanked declaration defined, if it got that far,
    so that references to it are not reported as undefined on top of its syntax error.
    Stray text between declarations is blanked alone.
    """
    start = 0
    if between:
        start = offset
    else:
        for match in _TOP_LEVEL.finditer(text, 0, offset):
            start = match.start()
    # An error at the keyword of the next declaration (a missing `}`, say) belongs to the
    # declaration before it: blank up to that keyword, not past it.
    following = _TOP_LEVEL.search(text, offset if offset > start else offset + 1)
    end = following.start() if following else len(text)
    named = None if between else _DECLARED_NAME.match(text, start)
    name = named.group(1) if named and named.end(1) <= offset else None
    return _blank(text, start, end), name


def parse_text(text: str, path: str = "<text>") -> tuple[ast.Module, list[Diagnostic]]:
    return parse_source(SourceFile(path, text))

