"""The canonical layout of a `.route` file: `format_source` (used by `interlock fmt` and editors).

Owns: the layout of every construct (docs/compiler.md, "interlock fmt", says it in words),
printed from the parse tree that keeps every token (`trivia.py`), so that names, strings,
numbers, durations and regular expressions are written back byte for byte; only the space
between tokens changes, and commas where they are optional. Comments stay with the token
they were attached to (`trivia.py`). The layout engine is `layout.py`.

A file with errors that parsing finds (syntax, and what parsing checks: durations, escapes,
numbers, names) is not formatted: `FormatError` carries the diagnostics.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from lark import Token, Tree

from .diagnostics import Diagnostic
from .layout import FRESH, GLUE, HARD, LINE, SOFT, SPACE, Doc, Fill, Group, Hard, IfBreak, Nest, Trailing, join, render
from .parser import grammar_text, parse_source
from .source import SourceFile
from .trivia import Attached, attach, tokens, tree_parser

WIDTH = 100
INDENT = 2

Node = Tree[Token] | Token


class FormatError(Exception):
    """The file has errors: it is not formatted."""

    def __init__(self, source: SourceFile, diagnostics: Sequence[Diagnostic]) -> None:
        super().__init__(f"{source.path}: {len(diagnostics)} error(s); not formatted")
        self.source = source
        self.diagnostics = tuple(diagnostics)


def format_source(text: str, path: str = "<text>") -> str:
    """`text` in the canonical layout; FormatError when it has errors. A byte order mark, which
    the loader ignores, is dropped, as the canonical layout has none."""
    text = text.removeprefix("\ufeff")
    source = SourceFile(path, text)
    _, diagnostics = parse_source(source)
    errors = [d for d in diagnostics if d.is_error]
    if errors:
        raise FormatError(source, errors)
    tree = tree_parser().parse(text)
    all_tokens = tokens(tree)
    attached = attach(text, all_tokens)
    if not all_tokens and not attached.end:
        return ""
    return render(_Printer(attached).file(tree), WIDTH)


# Where no space goes between two tokens.
_NO_SPACE_BEFORE = frozenset({",", ":", "?", ".."})
_NO_SPACE_AFTER = frozenset({".."})

# Blocks that are flat (`{ retain 7d }`) only with at most one member.
_DECLARATION_BODIES = frozenset({"retry_body", "target_body", "dead_letter_body"})
_OBJECTS = frozenset({"object_lit", "transform_object"})
_LISTS = frozenset({"list_lit", "name_list"})
_SCALARS = frozenset({"string", "number", "true", "false", "null"})
_CHAINS = frozenset({"or_expr", "and_expr", "element_or", "element_and"})


def _first(node: Node) -> Token:
    while isinstance(node, Tree):
        node = node.children[0]
    return node


def _last(node: Node) -> Token:
    while isinstance(node, Tree):
        node = node.children[-1]
    return node


@functools.cache
def _keywords() -> frozenset[str]:
    return frozenset(re.findall(r'"([a-z_]+)"', grammar_text()))


def _keyword_key(member: Node) -> bool:
    """Whether an entry's key is a word that is a keyword elsewhere (`and: 1`): the lexer may read
    it as that keyword after the value before it, unless a comma comes between."""
    first = _first(member)
    return first.type == "IDENT" and str(first) in _keywords()


def _compact(decl: Tree[Token]) -> bool:
    """Declarations of one line that may follow one another without an empty line between
    (when the file has none): imports, dead letters, events without a schema, `unrouted`."""
    return decl.data in ("import_decl", "dead_letter_decl", "unrouted_decl") or (
        decl.data == "event_decl" and len(decl.children) == 2)


def _members(tree: Tree[Token]) -> list[Node]:
    """The members of a braced or bracketed block: its children without brackets and commas."""
    return [c for c in tree.children[1:-1] if not (isinstance(c, Token) and c.type == "COMMA")]


class _Printer:
    def __init__(self, attached: Attached) -> None:
        self.attached = attached

    # ---- tokens and their comments ----------------------------------------------------

    def tok(self, token: Token, leading: bool = True, trailing: bool = True) -> Doc:
        """The token, its leading comments on lines of their own before it, its trailing ones after."""
        trivia = self.attached.of(token)
        parts: list[Doc] = []
        if leading:
            for index, comment in enumerate(trivia.leading):
                if index == 0:
                    parts.append(FRESH)
                parts.append(comment.text)
                last = index + 1 == len(trivia.leading)
                following = trivia.blank_before if last else trivia.leading[index + 1].blank_before
                parts.append(Hard(following))
        parts.append(str(token))
        if trailing:
            parts.extend(self.trailing(token))
        return parts

    def closer(self, token: Token) -> Doc:
        """A closing bracket, whose leading comments are inside its block (`closing_comments`)
        and whose trailing ones are after the group (`trailing`)."""
        return self.tok(token, leading=False, trailing=False)

    def trailing(self, token: Token) -> list[Doc]:
        return [Trailing(text) for text in self.attached.of(token).trailing]

    def blank_before(self, node: Node) -> bool:
        return self.attached.of(_first(node)).starts_after_blank

    # ---- the file -----------------------------------------------------------------------

    def file(self, tree: Tree[Token]) -> Doc:
        parts: list[Doc] = []
        previous: Tree[Token] | None = None
        for item in tree.children:
            assert isinstance(item, Tree)
            if previous is not None:
                compact = _compact(previous) and _compact(item) and previous.data == item.data
                parts.append(Hard(self.blank_before(item) if compact else True))
            parts.append(self.node(item))
            previous = item
        for index, comment in enumerate(self.attached.end):
            if parts or index:
                parts.append(Hard(comment.blank_before))
            parts.append(comment.text)
        parts.append(HARD)
        return parts

    # ---- any node -------------------------------------------------------------------------

    def node(self, node: Node) -> Doc:
        if isinstance(node, Token):
            return self.tok(node)
        method = getattr(self, "_" + node.data, None)
        if method is not None:
            doc: Doc = method(node)
            return doc
        if node.data in _OBJECTS:
            return self.block(node, flat=True)
        if node.data in _LISTS:
            return self.list_block(node)
        if node.data in _CHAINS:
            return self.chain(node)
        return self.words(node.children)

    def words(self, children: Sequence[Node]) -> Doc:
        """The children on one line, a space between two unless punctuation says otherwise."""
        parts: list[Doc] = []
        before: str | None = None
        for child in children:
            if isinstance(child, Token) and child.type == "COMMA":
                continue
            first = str(_first(child))
            if before is not None:
                parts.append(GLUE if first in _NO_SPACE_BEFORE or before in _NO_SPACE_AFTER else SPACE)
            parts.append(self.node(child))
            before = str(_last(child))
        return parts

    # ---- blocks -----------------------------------------------------------------------------

    def block(self, tree: Tree[Token], flat: bool, members: Sequence[Node] | None = None) -> Doc:
        """`{ ... }`: flat (`{ a: 1, b: 2 }`) when `flat` and it fits, else one member a line."""
        children = tree.children
        opening, closing = children[0], children[-1]
        assert isinstance(opening, Token) and isinstance(closing, Token)
        members = _members(tree) if members is None else members
        close_trivia = self.attached.of(closing)
        if not members and not close_trivia.leading and not self.attached.of(opening).trailing:
            return [self.tok(opening), self.tok(closing)]
        line: Doc = LINE if flat else HARD
        inner: list[Doc] = [line]
        for index, member in enumerate(members):
            if index:
                comma = "," if _keyword_key(member) else ""
                inner.append([comma, Hard(True)] if self.blank_before(member) else [IfBreak(comma, ","), line])
            inner.append(self.node(member))
        inner.extend(self.closing_comments(closing, bool(members)))
        return [Group(self.tok(opening), Nest(INDENT, inner), line, self.closer(closing)), self.trailing(closing)]

    def closing_comments(self, closing: Token, after_members: bool) -> list[Doc]:
        """The own-line comments before a closing bracket, inside its block."""
        parts: list[Doc] = []
        for index, comment in enumerate(self.attached.of(closing).leading):
            parts.append(Hard(comment.blank_before and (after_members or index > 0)))
            parts.append(comment.text)
        return parts

    def list_block(self, tree: Tree[Token]) -> Doc:
        """`[a, b]`, or one item a line, each with its comma, when it does not fit."""
        children = tree.children
        opening, closing = children[0], children[-1]
        assert isinstance(opening, Token) and isinstance(closing, Token)
        items = _members(tree)
        if not items and not self.attached.of(closing).leading and not self.attached.of(opening).trailing:
            return [self.tok(opening), self.tok(closing)]
        inner: list[Doc] = [SOFT]
        if self.fillable(items, closing):
            inner.extend([Fill([self.node(item) for item in items], ","), IfBreak(",", "")])
            return [Group(self.tok(opening), Nest(INDENT, inner), SOFT, self.closer(closing)), self.trailing(closing)]
        for index, item in enumerate(items):
            if index:
                inner.append(",")
                inner.append(Hard(True) if self.blank_before(item) else LINE)
            inner.append(self.node(item))
        if items:
            inner.append(IfBreak(",", ""))
        inner.extend(self.closing_comments(closing, bool(items)))
        return [Group(self.tok(opening), Nest(INDENT, inner), SOFT, self.closer(closing)), self.trailing(closing)]

    def fillable(self, items: Sequence[Node], closing: Token) -> bool:
        """Whether a list is of scalars and names only, without comments: then as many a line as fit.
        Not an empty one (with a comment after its `[`: a fill would end it with a comma)."""
        if not items or self.attached.of(closing).leading:
            return False
        for item in items:
            if isinstance(item, Tree) and (item.data not in _SCALARS or len(item.children) != 1):
                return False
            trivia = self.attached.of(_first(item))
            if trivia.leading or trivia.trailing or trivia.blank_before:
                return False
        return True

    def declaration(self, head: Sequence[Node], body: Tree[Token], members: Sequence[Node] | None = None,
                    flat: bool = False) -> Doc:
        return [self.words(head), SPACE, self.block(body, flat, members)]

    def _object_type(self, tree: Tree[Token]) -> Doc:
        # An event's own schema is one field a line (flat only with one field); a nested one as objects.
        return self.block(tree, flat=True)

    def _event_decl(self, tree: Tree[Token]) -> Doc:
        children = tree.children
        if len(children) == 2:
            return self.words(children)
        body = children[2]
        assert isinstance(body, Tree)
        return self.declaration(children[:2], body, flat=len(_members(body)) <= 1)

    def _retry_body(self, tree: Tree[Token]) -> Doc:
        return self.block(tree, flat=len(_members(tree)) <= 1)

    _target_body = _retry_body
    _dead_letter_body = _retry_body

    def _headers(self, tree: Tree[Token]) -> Doc:
        keyword = tree.children[0]
        assert isinstance(keyword, Token)
        body = Tree("headers_body", tree.children[1:])
        return [self.tok(keyword), SPACE, self.block(body, flat=True)]

    def _route_decl(self, tree: Tree[Token]) -> Doc:
        return self.declaration(tree.children[:2], Tree("body", tree.children[2:]))

    _choose_decl = _route_decl

    def _test_decl(self, tree: Tree[Token]) -> Doc:
        body = Tree("body", tree.children[2:])
        members: list[Node] = []
        for step in _members(body):
            assert isinstance(step, Tree)
            if step.data == "test_step":
                members.extend(step.children)
            else:  # emit_step: `then T emits E { ... }`, then its `expect`
                members.append(Tree("emit", step.children[:-1]))
                members.append(step.children[-1])
        return self.declaration(tree.children[:2], body, members)

    # ---- routes ----------------------------------------------------------------------------

    def listed(self, tree: Tree[Token]) -> Doc:
        """`on a, b`, `to a, b`, `expect a, b`: one line, or one item a line aligned after the keyword."""
        keyword = tree.children[0]
        assert isinstance(keyword, Token)
        items = [c for c in tree.children[1:] if not (isinstance(c, Token) and c.type == "COMMA")]
        joined = join([",", LINE], [self.node(item) for item in items])
        if len(items) > 1:
            return [self.tok(keyword), SPACE, Group(Nest(len(str(keyword)) + 1, joined))]
        return [self.tok(keyword), SPACE, joined]

    _on_clause = listed
    _to_clause = listed
    _expect_targets = listed

    def _when_clause(self, tree: Tree[Token]) -> Doc:
        keyword, condition = tree.children
        assert isinstance(keyword, Token)
        return [self.tok(keyword), SPACE, Nest(INDENT, self.node(condition))]

    def _choice(self, tree: Tree[Token]) -> Doc:
        keyword, condition, to = tree.children
        assert isinstance(keyword, Token)
        return Group(self.tok(keyword), SPACE, Nest(INDENT, self.node(condition), LINE, self.node(to)))

    def chain(self, tree: Tree[Token]) -> Doc:
        """`a and b and c`: flat, or a line break before each `and` (or `or`) of this level."""
        parts: list[Doc] = []
        for child in tree.children:
            if isinstance(child, Token) and child.type in ("AND", "OR"):
                parts.extend([LINE, self.tok(child), SPACE])
            else:
                parts.append(self.node(child))
        return Group(*parts)

    def _group(self, tree: Tree[Token]) -> Doc:
        opening, inner, closing = tree.children
        assert isinstance(opening, Token) and isinstance(closing, Token)
        return [self.tok(opening), Nest(INDENT, GLUE, self.node(inner), GLUE), self.tok(closing)]

    def glued(self, tree: Tree[Token]) -> Doc:
        """`list<T>`, `env("NAME")`: no space between the tokens."""
        return join(GLUE, [self.node(child) for child in tree.children])

    _list_type = glued
    _env = glued

    def _any_element(self, tree: Tree[Token]) -> Doc:
        any_, path, opening, condition, closing = tree.children
        assert isinstance(opening, Token) and isinstance(closing, Token)
        return [self.words([any_, path]), SPACE,
                Group(self.tok(opening), Nest(INDENT, LINE, self.node(condition), self.closing_comments(closing, True)),
                      LINE, self.closer(closing)),
                self.trailing(closing)]

    def _with_clause(self, tree: Tree[Token]) -> Doc:
        return self.words(tree.children)


