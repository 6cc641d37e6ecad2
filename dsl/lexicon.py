"""The tokens of the `.route` language: one table, built from the grammar's terminals, for both parsers.

`Lexicon.from_terminals` turns the terminal definitions Lark compiled from
`grammar/route.lark` into one master regular expression, which skips blanks and comments
in the same match as the token after them: each terminal defined by a pattern is a named
group (by priority, as Lark orders them), every punctuation mark is in the group `PUNCT`
(longest first, so `<=` before `<`), and a word the grammar spells out (`route`, `in`) is
read as an `IDENT` and looked up in `keywords`. Lark's parser reads its tokens through
`RouteLexer` (dsl/parser.py) and the fast path through `dsl/fast_lexer.py`, both with this
table, so that both read the same tokens.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

import attrs
from lark.lexer import PatternStr, TerminalDef

# Where a top-level declaration may start: a top-level keyword at the start of a line. `retry`
# and `dead_letter` are target options too, so they count only in column 1; the others also
# when indented. Error recovery restarts there, and the fast path splits a file there.
TOP_LEVEL = re.compile(
    r"^(?:retry|dead_letter|[ \t]*(?:import|event|target|defaults|unrouted|route|choose|test))\b", re.MULTILINE
)
# Lookaheads that only let the regular expression give up early on a terminal: each is
# implied by the terminal's own pattern, so no token changes. A QPATH holds a backtick after
# its plain segments, so a plain word is not a QPATH (and is read without backtracking).
GUARDS = {"QPATH": "(?=[A-Za-z0-9_.-]*`)"}
DECLARATION_WORDS = frozenset({"import", "event", "retry", "dead_letter", "target", "defaults", "unrouted",
                               "route", "choose", "test"})
# Keywords that begin a predicate and may also name a field: a field when an operator follows
# (`missing == 1`), in both parsers.
PREDICATE_WORDS = frozenset({"not", "any", "exists", "missing"})
COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})


@attrs.frozen
class Lexicon:
    master: re.Pattern[str]  # blanks and comments, then one token
    skip: re.Pattern[str]  # blanks and comments
    trailing: re.Pattern[str]  # blanks and comments to the end of the text
    keywords: dict[str, str]  # the text of a keyword -> its terminal
    punctuation: dict[str, str]  # the text of a punctuation mark -> its terminal

    @classmethod
    def from_terminals(cls, terminals: Iterable[TerminalDef], ignore: Collection[str]) -> Lexicon:
        terminals = list(terminals)
        keywords: dict[str, str] = {}
        punctuation: list[tuple[str, str]] = []
        patterns: list[tuple[int, str, str]] = []
        skipped: list[str] = []
        word = None
        for terminal in terminals:
            if terminal.name == "IDENT":
                word = re.compile(terminal.pattern.to_regexp())
        assert word is not None, "the grammar must define IDENT"
        for terminal in terminals:
            regexp = terminal.pattern.to_regexp()
            if terminal.name in ignore:
                skipped.append(regexp)
            elif isinstance(terminal.pattern, PatternStr):
                if word.fullmatch(terminal.pattern.value):
                    keywords[terminal.pattern.value] = terminal.name
                else:
                    punctuation.append((terminal.pattern.value, terminal.name))
            else:
                patterns.append((terminal.priority, terminal.name, regexp))
        # Higher priority first, then longer punctuation first (`<=` before `<`).
        patterns.sort(key=lambda p: -p[0])
        punctuation.sort(key=lambda p: -len(p[0]))
        alternatives = [f"(?P<{name}>{GUARDS.get(name, '')}{regexp})" for _, name, regexp in patterns]
        alternatives.append("(?P<PUNCT>{})".format("|".join(re.escape(text) for text, _ in punctuation)))
        # Possessive, so that a long run of blanks before a bad character fails in one step
        # instead of backtracking through every way of splitting the run.
        skip = "(?:{})*+".format("|".join(skipped))
        return cls(
            master=re.compile(skip + "(?:" + "|".join(alternatives) + ")"),
            skip=re.compile(skip),
            trailing=re.compile(skip + r"\Z"),
            keywords=keywords,
            punctuation=dict(punctuation),
        )
