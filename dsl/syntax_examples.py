"""Specific messages for common syntax mistakes, taught by example.

Each entry is a snippet that goes wrong at one place, and what to tell a user who
writes something like it. The table is turned into parser states once (the idea of
Lark's `match_examples`, precomputed so that reporting an error costs a lookup): a
later error in the same parser state, with the same unexpected kind of token where
the snippet says so, gets the entry's words in front of the generic "expected ...,
found ..." and its help line.
"""

from __future__ import annotations

import functools

import attrs
from lark import Token
from lark.exceptions import UnexpectedToken

from .source import SourceFile
from .transform import CURRENT, BuildContext

# (what, help, snippets). A snippet may end with `|TYPE` to match only that kind of token.
EXAMPLES: list[tuple[str, str, list[str]]] = [
    ("a route needs a `to` clause", "name its targets before `}`: `to billing, audit`",
     ["route r { on a }", "route r { on a when x == 1 }", "route r { on a when x == 1 and y == 2 }"]),
    ("a route starts with `on EVENT_TYPE`", "write `on order.created` (or a glob such as `order.*`) first",
     ["route r { to a }", "route r { when x == 1 to a }", "route r { }", "choose c { when x == 1 to a }"]),
    ("`to` needs at least one target", "name a target: `to billing`",
     ["route r { on a to }", "choose c { on a when x == 1 to }"]),
    ("`when` needs a condition", "write a condition such as `amount > 100` after `when`",
     ["route r { on a when to b }", "choose c { on a when to b }"]),
    ("a field in a condition needs a test",
     "compare it (`x == 1`, `x in [1, 2]`, `x startswith \"a\"`), or test it with `exists x` / `missing x`",
     ["route r { on a when x to b }|=to", "choose c { on a when x to b }|=to", "route r { on a when x }"]),
    ("a comparison needs a value", "compare with a string, number, boolean or `null`: `tier == \"gold\"`",
     ["route r { on a when x == to b }", "route r { on a when x == }", "route r { on a when x == y to b }"]),
    ("`and` and `or` need a condition on each side", "add the missing condition, or remove the `and` / `or`",
     ["route r { on a when x == 1 and to b }", "route r { on a when x == 1 or to b }",
      "route r { on a when x == 1 and }"]),
    ("targets are separated by commas", "write `to billing, audit`",
     ["route r { on a to b c }|IDENT", "choose c { on a when x == 1 to b c }|IDENT"]),
    ("a `,` must be followed by another target", "remove the trailing `,` or name another target",
     ["route r { on a to b, }", "choose c { on a when x == 1 to b, }"]),
    ("`when` comes before `to` in a route", "write `on EVENT_TYPE when CONDITION to TARGETS`",
     ["route r { on a to b when x == 1 }|=when"]),
    ("`(` is not closed", "add the `)` that ends the group",
     ["route r { on a when (x == 1 to b }", "route r { on a when (x == 1 and y == 2 to b }"]),
    ("`list<` needs its `>`", "write `list<string>`",
     ["event e { a: list<string }", "event e { a: list<string b: int }"]),
    ("event types in `on` are separated by commas", "write `on order.created, order.updated`",
     ["route r { on a b to c }|IDENT"]),
    ("a declaration was expected",
     "a file holds `import`, `event`, `retry`, `dead_letter`, `target`, `defaults`, `unrouted`, "
     "`route`, `choose` and `test` declarations",
     ["foo", "route r { on a to b } }", "target t { } x"]),
    ("the file to import is a string", 'write `import "common.route"`', ["import common"]),
    ("a declaration needs a name", "write the name after the keyword: `target billing { ... }`",
     ["target { }", "route { on a to b }", "retry { attempts 3 }", "choose { }", "test { }"]),
    ("options go inside braces", "write `target billing { mode async }`",
     ["target t mode async", "retry r attempts 3", "defaults retry r"]),
    ("not an option of a target",
     "a target takes `mode`, `retry`, `dead_letter`, `timeout`, `concurrency`, `order by`, `emits` "
     "and `on_exhausted`",
     ["target t { bogus 1 }", "target t { mode async bogus }", "defaults { bogus }"]),
    ("not an option of a retry policy",
     "a retry policy takes `attempts`, `backoff`, `jitter`, `retry_on`, `give_up_on` and `deadline`",
     ["retry r { bogus }", "retry r { attempts 3 bogus }"]),
    ("a schema field is `name: type`", "write `amount: float`, `tags: list<string>` or `coupon: string?`",
     ["event e { id string }", "event e { id }", "event e { id: }"]),
    ("a test step is `send EVENT { ... }` then `expect ...`",
     "write `send order.created { id: \"o1\" }` and then `expect billing` or `expect nothing`",
     ["test t { expect a }", "test t { }"]),
    ("each `send` needs an `expect`", "add `expect TARGETS` (exactly those targets) or `expect nothing`",
     ["test t { send e { } }", "test t { send e }", "test t { send e { } send e { } }"]),
    ("a step after `then` is `then TARGET emits EVENT_TYPE { ... }`",
     "name the target, then what it emits: `then billing emits invoice.issued { id: \"i1\" }`",
     ["test t { send e expect a then a e expect b }|IDENT", "test t { send e expect a then a }",
      "test t { send e expect a then }"]),
    ("targets in an `expect` are separated by commas", "write `expect billing, audit`",
     ["test t { send e expect a b }|IDENT", "test t { send e expect a with { } b }|IDENT"]),
    ("each `then ... emits` step needs an `expect`",
     "add `expect TARGETS` (exactly those the emitted event reaches) or `expect nothing`",
     ["test t { send e expect a then a emits b }", "test t { send e expect a then a emits b { } }"]),
    ("`with` in an `expect` takes the fields the target receives",
     "write `expect ledger with { amount_cents: 500 }`, or `with exactly { ... }` for its whole payload",
     ["test t { send e expect a with }", "test t { send e expect a with exactly }",
      "test t { send e expect a with x }"]),
    ("a `choose` needs at least one `when` branch", "write `when CONDITION to TARGET` before `otherwise`",
     ["choose c { on a otherwise to b }|=otherwise", "choose c { on a }"]),
    ("`otherwise` must be the last branch of a `choose`", "move the `otherwise` branch to the end",
     ["choose c { on a when x == 1 to a otherwise to b when y == 2 to c }|=when"]),
    ("`backoff` is `fixed`, `linear` or `exponential`",
     "write `backoff fixed 1s`, `backoff linear initial 1s step 1s` or "
     "`backoff exponential initial 100ms factor 2`",
     ["retry r { backoff }", "retry r { backoff 1s }"]),
    ("`backoff exponential` needs `initial` and `factor`", "write `backoff exponential initial 100ms factor 2 max 10s`",
     ["retry r { backoff exponential initial 100ms max 10s }", "retry r { backoff exponential factor 2 }",
      "retry r { backoff exponential 100ms }"]),
    ("`backoff linear` needs `initial` and `step`", "write `backoff linear initial 1s step 1s max 10s`",
     ["retry r { backoff linear initial 1s max 5s }", "retry r { backoff linear step 1s }"]),
    ("`order` must be followed by `by`", "write `order by customer.id`", ["target t { order customer.id }"]),
    ("`unrouted` sends events to a dead letter", "write `unrouted to dead_letter unrouted_dlq`",
     ["unrouted dead_letter x", "unrouted to x", "unrouted to dead_letter"]),
    ("a list needs commas between its items", 'write `["USD", "EUR"]`',
     ['route r { on a when x in ["a" "b"] to c }', "retry r { retry_on [A B] }"]),
    ("a range is `LOW..HIGH` with two numbers", "write `amount in 10..100`",
     ["route r { on a when x in 1.. to b }", "route r { on a when x in 1 to b }"]),
    ("`??` needs a value to fall back to", 'write `email: customer.email ?? "unknown@example.com"`',
     ["route r { on a to b with { x: y ?? } }"]),
]

_DURATION_HELP = "add a unit: `ms`, `s`, `m`, `h` or `d`, as in `500ms` or `5s`"


@attrs.frozen
class _Entry:
    declaration: str  # the snippet's first word: `route`, `choose`, ...
    token_type: str | None  # from `|TYPE`; `$END` entries match only the end of the file
    value: str | None  # from `|TYPE=value` or `|=value`: entries that need the token's text
    what: str
    help: str


@functools.cache
def _table() -> dict[int, list[_Entry]]:
    from .parser import LexFailure, parser

    table: dict[int, list[_Entry]] = {}
    token = CURRENT.set(BuildContext(SourceFile("<example>", "")))
    try:
        for what, help, snippets in EXAMPLES:
            for snippet in snippets:
                text, _, only = snippet.partition("|")
                token_type, _, value = only.partition("=")
                try:
                    parser().parse(text)
                except UnexpectedToken as exc:
                    entry = _Entry(text.split()[0], token_type or None, value or None, what, help)
                    table.setdefault(exc.state.position, []).append(entry)
                except LexFailure:
                    raise AssertionError(f"syntax example does not lex: {snippet!r}") from None
                else:
                    raise AssertionError(f"syntax example parses without error: {snippet!r}")
    finally:
        CURRENT.reset(token)
    return table


def _score(entry: _Entry, token: Token, declaration: str | None) -> int:
    """How well an entry fits; -1 when it does not apply."""
    if (entry.token_type == "$END") != (token.type == "$END"):
        return -1
    if entry.token_type is not None and entry.token_type != token.type:
        return -1
    if entry.value is not None and (entry.value != str(token) or entry.declaration != declaration):
        return -1
    return 4 * (entry.value is not None) + 2 * (entry.declaration == declaration) + (entry.token_type is not None)


def specific_message(
    state: int, token: Token, declaration: str | None, expected: set[str]
) -> tuple[str, str] | None:
    """(what went wrong, help) for a parser state and unexpected token, if one is known.

    `declaration` is the keyword of the declaration the error is in; among the entries of
    a state, one from the same kind of declaration and one naming the very token win.
    """
    if token.type == "NUMBER" and "DURATION" in expected:
        return "a duration needs a unit", _DURATION_HELP
    best: tuple[int, _Entry] | None = None
    for entry in _table().get(state, ()):
        score = _score(entry, token, declaration)
        if score >= 0 and (best is None or score > best[0]):
            best = (score, entry)
    return (best[1].what, best[1].help) if best else None
