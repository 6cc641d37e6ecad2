"""The comments and blank lines of a `.route` file, attached to its tokens (for the formatter).

Owns: the parse tree that keeps every token (the grammar's, with the parser's own lexer,
no AST built), and where each comment belongs: a comment after code on the same line
*trails* the last token before it; any other comment *leads* the next token. Commas are
skipped both ways (the formatter writes its own). A blank line is remembered before a
comment or a token, never how many.
"""

from __future__ import annotations

import functools
import re

import attrs
from lark import Lark, Token, Tree

from .parser import RouteLexer, grammar_text

_COMMENT = re.compile(r"#[^\n]*")


@functools.cache
def tree_parser() -> Lark:
    """The grammar's LALR parser building a parse tree with every token, keywords included."""
    return Lark(grammar_text(), parser="lalr", lexer=RouteLexer, strict=True, keep_all_tokens=True,
                maybe_placeholders=False)


@attrs.frozen
class Comment:
    text: str
    blank_before: bool  # an empty line between it and what comes before it


@attrs.frozen
class Trivia:
    leading: tuple[Comment, ...] = ()
    blank_before: bool = False  # an empty line between the token and its last leading comment (or what was before)
    trailing: tuple[str, ...] = ()

    @property
    def starts_after_blank(self) -> bool:
        """Whether an empty line comes before the token's first leading comment, or before it."""
        return self.leading[0].blank_before if self.leading else self.blank_before


@attrs.frozen
class Attached:
    by_token: dict[int, Trivia]  # by the token's start offset
    end: tuple[Comment, ...]  # comments after the last token

    def of(self, token: Token) -> Trivia:
        return self.by_token.get(token.start_pos or 0, _NONE)


_NONE = Trivia()


def tokens(tree: Tree[Token]) -> list[Token]:
    """The tokens of `tree` in source order."""
    found: list[Token] = []
    stack: list[Tree[Token] | Token] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Token):
            found.append(node)
        else:
            stack.extend(reversed(node.children))
    return found


def attach(text: str, all_tokens: list[Token]) -> Attached:
    """Attach the comments of `text` (whose tokens are `all_tokens`) to its tokens."""
    leading: dict[int, list[Comment]] = {}
    trailing: dict[int, list[str]] = {}
    blank: dict[int, bool] = {}
    pending: list[Comment] = []
    anchor: Token | None = None  # the last token that is not a comma
    previous_end = 0
    last_end = 0  # the end of the last token or comment
    for token in [*all_tokens, None]:
        start = len(text) if token is None else token.start_pos or 0
        for match in _COMMENT.finditer(text, previous_end, start):
            between = text[last_end:match.start()]
            # (on the line of the last token that is not a comma: a comma's own comment on a
            # later line leads what follows, so that a token has one trailing comment at most)
            same_line = anchor is not None and "\n" not in text[anchor.end_pos or 0:match.start()]
            if anchor is not None and same_line and last_end == previous_end:
                trailing.setdefault(anchor.start_pos or 0, []).append(match.group().rstrip())
            else:
                pending.append(Comment(match.group().rstrip(), between.count("\n") >= 2 and last_end > 0))
            last_end = match.end()
        if token is None:
            break
        if token.type == "COMMA":
            previous_end = token.end_pos or start
            if not pending:
                last_end = previous_end
            continue
        key = start
        if pending:
            leading[key] = pending
            pending = []
        blank[key] = text[last_end:start].count("\n") >= 2 and last_end > 0
        anchor = token
        previous_end = last_end = token.end_pos or start
    keys = set(leading) | set(trailing) | {k for k, v in blank.items() if v}
    by_token = {key: Trivia(tuple(leading.get(key, ())), blank.get(key, False), tuple(trailing.get(key, ())))
                for key in keys}
    return Attached(by_token, tuple(pending))
