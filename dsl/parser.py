"""Parsing one `.route` file into a `Module`, with syntax errors as diagnostics.

Two parsers read a file, and build the same nodes through `transform.py`:

- The fast path (`fast_lexer.py`, `fast_parser.py`) reads the whole file with one
  regular expression, splits it into its top-level declarations, and reads each by
  recursive descent. It takes every form of the grammar, and *declines* a declaration
  with anything to report (a syntax error, a bad literal, a warning) or where Lark's
  contextual lexer might read a word otherwise. A file it takes whole is parsed at that:
  about 2.7x faster than Lark's parser alone on a 10,000-route project (`bench/parse.py`).
  A file of which it declines most of the first declarations is left to Lark's parser
  whole.
- Lark's LALR parser reads the rest: the file with the declarations the fast path took
  blanked (positions kept), so that every diagnostic comes from it, as before the fast
  path existed. The two lists of declarations are merged in source order. Where error
  recovery on that text could differ from recovery on the whole file (see
  `_parse_rest`), Lark's parser reads the whole file instead; `parse_source(...,
  fast=False)` always does, and gives the same module and diagnostics.

Lark's parser: the grammar is `grammar/route.lark`, shipped as package data and loaded
once (`parser()` is a cached factory) with `strict=True`, so a conflict in the grammar
fails at load time rather than misparsing. The lexer (`RouteLexer`) is ours but its
terminals are the grammar's (`lexicon.py`: one master regular expression, which skips
whitespace and comments in the same match as the token after them). A word becomes a
keyword only where the parser state accepts that keyword, as with Lark's contextual
lexer. The parser builds the AST itself (`builder.py`), without a parse tree.

Syntax errors: the first one in a top-level declaration is reported, that
declaration is blanked out (positions kept), and parsing starts again, so one file
can report several independent mistakes. Messages name what was expected in the
user's words; `syntax_examples.py` adds a specific message for common mistakes.
"""
from __future__ import annotations

import bisect
import contextvars
import functools
import heapq
import importlib.resources
import re
import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any, cast

from lark import Lark, Token
from lark.common import LexerConf
from lark.exceptions import UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer, LexerState, PatternStr
from lark.parsers.lalr_analysis import Shift

from . import ast, fast_lexer, fast_parser
from .builder import Builder
from .diagnostics import Diagnostic, Related, error
from .lexicon import COMPARISONS, DECLARATION_WORDS, PREDICATE_WORDS, TOP_LEVEL, Lexicon
from .source import SourceFile, Span
from .transform import CURRENT, BuildContext, did_you_mean

MAX_SYNTAX_ERRORS_PER_FILE = 20


class LexFailure(Exception):
    """No terminal of the grammar matches at `pos`; `between` when the parser stood
    between two top-level declarations."""

    def __init__(self, pos: int, between: bool) -> None:
        super().__init__(pos)
        self.pos = pos
        self.between = between


class TooDeep(LexFailure):
    """Brackets or `not`s nested deeper than MAX_NESTING at `pos`."""


class Misaligned(Exception):
    """The text with the fast path's declarations blanked would not parse as the whole text
    does (see `_parse_rest`)."""


# The ends of the declarations the fast path took, while Lark's parser reads the rest.
_TAKEN_ENDS: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar("interlock_taken_ends", default=())


# The parser is iterative, but every later pass walks the AST recursively: nesting is
# bounded here, where it can be reported, rather than overflow the stack there.
MAX_NESTING = 64


# Words of PREDICATE_WORDS name a field when an operator follows, and then what that
# operator takes (operators that are words may be fields too: `exists in` tests a field
# named `in`).
_SCALARS = frozenset({"STRING", "NUMBER"})


def _operator_follows(after: re.Match[str], then: re.Match[str] | None) -> bool:
    """Whether the tokens `after` and `then` (the two after a predicate word) are an operator
    and the start of what it takes."""
    word = after.group(after.lastgroup or 0)
    if word in COMPARISONS:
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
        self.lexicon = Lexicon.from_terminals(conf.terminals, conf.ignore)
        self.master = self.lexicon.master
        self.skip = self.lexicon.skip
        self.trailing = self.lexicon.trailing
        self.keywords = self.lexicon.keywords
        self.punctuation = self.lexicon.punctuation
        self.declaration_terminals = frozenset(self.keywords[word] for word in DECLARATION_WORDS)

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
        watched = _TAKEN_ENDS.get()  # (see `_parse_rest`)
        passed = 0
        next_end = watched[0] if watched else end + 1
        while pos < end:
            m = match(text, pos)
            if m is None:
                if self.trailing.match(text, pos):
                    break
                skipped = self.skip.match(text, pos)
                failure = skipped.end() if skipped else pos
                if failure >= next_end:
                    self._check_between(parser_state, None)
                between = self.keywords["import"] in states[parser_state.position]
                raise LexFailure(failure, between)
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
            if start >= next_end:
                self._check_between(parser_state, kind)
                while passed < len(watched) and watched[passed] <= start:
                    passed += 1
                next_end = watched[passed] if passed < len(watched) else end + 1
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
        if next_end <= end:
            self._check_between(parser_state, None)

    def _check_between(self, parser_state: Any, kind: str | None) -> None:
        """Where a declaration of the fast path was blanked: the parser must stand between two
        declarations, and the token read there (if any) must start the next one."""
        if kind is not None and kind not in self.declaration_terminals:
            raise Misaligned
        states = parser_state.parse_conf.states
        stack = list(parser_state.state_stack)
        terminal = self.keywords["import"]
        while True:  # would `import` be shifted here, after the reductions it brings about?
            action = states[stack[-1]].get(terminal)
            if action is None:
                raise Misaligned
            what, rule = action
            if what is Shift:
                return
            size = len(rule.expansion)
            if size:
                del stack[-size:]
            stack.append(states[stack[-1]][rule.origin.name][1])


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


@functools.cache
def lexicon() -> Lexicon:
    """The token table of the parser, for the fast path."""
    return cast(RouteLexer, parser().parser.lexer).lexicon


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
    for match in TOP_LEVEL.finditer(text, 0, offset):
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
        if TOP_LEVEL.match(text, line_start) and not text[line_start:start].strip():
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
    return _blank_all(text, [(start, end)])


def _blank_all(text: str, ranges: list[tuple[int, int]]) -> str:
    """The text with each range, in order and apart, blanked as `_blank` does."""
    pieces = []
    pos = 0
    for start, end in ranges:
        pieces.append(text[pos:start])
        pieces.append("\n".join(" " * len(line) for line in text[start:end].split("\n")))
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def parse_source(source: SourceFile, *, fast: bool = True) -> tuple[ast.Module, list[Diagnostic]]:
    """Parse one file. Syntax errors come back as diagnostics, never as exceptions.

    The fast path reads the declarations it takes, Lark's parser the rest (see the module
    docstring); `fast=False` has Lark's parser read the whole file, which gives the same.
    """
    module, diagnostics = _parse(source, fast)
    return _within_depth(source, module, diagnostics)


# The levels of syntax tree a declaration may nest. The lexers bound brackets, and `not`s
# and `??`s in a row, one kind at a time, and each count starts again: 64 `??` in each of 16
# nested objects, or 63 `not`s before each of 20 nested `any`, built trees over a thousand
# levels deep from 5 KB, and everything that walks a tree (check, fmt, compile, `==`) failed
# with RecursionError (found by review).
MAX_TREE_DEPTH = 256
_NESTING = ("??", "not", "any", "(", "{", "[", "<")  # text that can start a level; the rest adds a few
_PLAIN_LEVELS = 24  # levels a declaration has without any of those (the declaration, its options, ...)


def _within_depth(source: SourceFile, module: ast.Module,
                  diagnostics: list[Diagnostic]) -> tuple[ast.Module, list[Diagnostic]]:
    """The module less its declarations nested deeper than MAX_TREE_DEPTH, each an E0006 and a
    broken name. A declaration whose text holds too few of `_NESTING` to be that deep is not
    walked."""
    text = source.text
    kept: list[Any] = []
    deep: list[tuple[Any, Span]] = []
    for decl in module.decls:
        start, end = decl.span.start, decl.span.end
        if sum(text.count(t, start, end) for t in _NESTING) + _PLAIN_LEVELS <= MAX_TREE_DEPTH:
            kept.append(decl)
            continue
        where = _too_deep(decl)
        if where is None:
            kept.append(decl)
        else:
            deep.append((decl, where))
    if not deep:
        return module, diagnostics
    found = [error("E0006", f"nested more than {MAX_TREE_DEPTH} levels deep", where, "too deep",
                   "flatten it: name parts of the condition or the payload in separate routes or fields")
             for _, where in deep]
    names = [name.text for decl, _ in deep if isinstance(name := getattr(decl, "name", None), ast.Name)]
    return ast.Module(module.path, tuple(kept), (*module.broken, *names)), diagnostics + found


def _too_deep(decl: Any) -> Span | None:
    """Where the syntax tree under `decl` is deeper than MAX_TREE_DEPTH (a node's span, the
    declaration's if that node has none), or None; without recursion."""
    stack: list[tuple[Any, int]] = [(decl, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            found = getattr(node, "span", None)
            return found if isinstance(found, Span) else decl.span
        for field in type(node).__attrs_attrs__:
            value = getattr(node, field.name)
            if hasattr(type(value), "__attrs_attrs__"):
                stack.append((value, depth + 1))
            elif isinstance(value, (tuple, list)):
                stack.extend((item, depth + 1) for item in value if hasattr(type(item), "__attrs_attrs__"))
    return None


def _parse(source: SourceFile, fast: bool) -> tuple[ast.Module, list[Diagnostic]]:
    if not fast:
        return _parse_lark(source, source.text)
    found = fast_parser.declarations(source, fast_lexer.units(source.text, lexicon()), lexicon().keywords)
    if found is None:
        return _parse_lark(source, source.text)
    taken = [(start, end, decl) for start, end, decl in found if decl is not None]
    if len(taken) == len(found):
        return ast.Module(source.path, tuple(decl for _, _, decl in taken)), []
    if taken:
        rest = _parse_rest(source, [(start, end) for start, end, _ in taken])
        if rest is not None:
            module, diagnostics = rest
            merged = heapq.merge(module.decls, (decl for _, _, decl in taken), key=lambda decl: decl.span.start)
            return ast.Module(source.path, tuple(merged), module.broken), diagnostics
    return _parse_lark(source, source.text)


def _parse_rest(source: SourceFile, taken: list[tuple[int, int]]) -> tuple[ast.Module, list[Diagnostic]] | None:
    """Lark's parse of the file with the declarations the fast path took (these ranges, in
    order) blanked, or None where that would not be the parse of the whole file less those
    declarations.

    Blanked, a declaration the fast path took is a valid one that Lark's parser would have
    read between two others; so the parse of the rest is that of the whole file, unless
    its error recovery would have reached one: a syntax error whose declaration, as the
    recovery finds it (`_skip_declaration`), would have started at or before a blanked one,
    a declaration left unfinished before a blanked one (which the parser would then have
    read as its continuation: `RouteLexer` checks where each blanked one ended), or so many
    errors that the rest of the file is cut (E0005, whose cut may hold blanked ones). No
    case was found where the first check catches what the second does not; it costs
    nothing, and stays as a second line of defence.
    """
    try:
        return _parse_lark(source, _blank_all(source.text, taken), taken)
    except Misaligned:
        return None


def _parse_lark(source: SourceFile, text: str,
                taken: Sequence[tuple[int, int]] = ()) -> tuple[ast.Module, list[Diagnostic]]:
    """Lark's parse of `text` (the source's, or with the declarations at `taken` blanked),
    recovering from syntax errors: see the module docstring."""
    starts = [start for start, _ in taken]
    ends = tuple(end for _, end in taken)
    context = BuildContext(source)
    syntax: list[Diagnostic] = []
    broken: list[str] = []
    decls: list[Any] = []
    capped = False
    while True:
        context.diagnostics = []
        token = CURRENT.set(context)
        try:
            decls = _parse_watched(text, ends)
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
                if taken:
                    raise Misaligned from None
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
            start, text, name = _skip_declaration(text, offset, _between_declarations(exc))
            if taken and bisect.bisect_left(starts, start) < bisect.bisect_left(starts, offset):
                raise Misaligned from None
            if name:
                broken.append(name)
            continue
        finally:
            CURRENT.reset(token)
        break
    return ast.Module(source.path, tuple(decls), tuple(broken)), syntax + context.diagnostics


def _parse_watched(text: str, ends: tuple[int, ...]) -> list[Any]:
    """Lark's parse of `text`, `RouteLexer` checking where the declarations that end at `ends`
    were blanked (only this parse: the messages of its errors parse examples of their own)."""
    token = _TAKEN_ENDS.set(ends)
    try:
        return cast(list[Any], parser().parse(text))  # `Builder.start` returns a list
    finally:
        _TAKEN_ENDS.reset(token)


_DECLARED_NAME = re.compile(
    r"^[ \t]*(?:event|retry|dead_letter|target|route|choose|test)\s+([A-Za-z_][A-Za-z0-9_.-]*)", re.MULTILINE
)


def _between_declarations(exc: Exception) -> bool:
    """Whether the parser stood between two declarations (so none is broken)."""
    if isinstance(exc, LexFailure):
        return exc.between
    assert isinstance(exc, UnexpectedToken)
    return "IMPORT" in (exc.expected or ())


def _skip_declaration(text: str, offset: int, between: bool) -> tuple[int, str, str | None]:
    """Blank the top-level declaration that holds `offset`, up to the next one.

    Returns where the blanked text starts, the new text, and the name the blanked
    declaration defined, if it got that far, so that references to it are not reported as
    undefined on top of its syntax error. Stray text between declarations is blanked alone.
    """
    start = 0
    if between:
        start = offset
    else:
        for match in TOP_LEVEL.finditer(text, 0, offset):
            start = match.start()
    # An error at the keyword of the next declaration (a missing `}`, say) belongs to the
    # declaration before it: blank up to that keyword, not past it.
    following = TOP_LEVEL.search(text, offset if offset > start else offset + 1)
    end = following.start() if following else len(text)
    named = None if between else _DECLARED_NAME.match(text, start)
    name = named.group(1) if named and named.end(1) <= offset else None
    return start, _blank(text, start, end), name


def parse_text(text: str, path: str = "<text>", *, fast: bool = True) -> tuple[ast.Module, list[Diagnostic]]:
    return parse_source(SourceFile(path, text), fast=fast)

