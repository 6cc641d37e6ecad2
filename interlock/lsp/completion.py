"""Completion, read from the text before the cursor (a buffer being typed seldom parses).

The text is cut into tokens (strings and comments dropped); the innermost open `{`, `[` or `(`
and what stands before it, the last clause word at the cursor's level (`on`, `when`, `to`,
`expect`, ...) and the token just before the cursor tell what fits:

- targets after `to`, `expect`, `then` (and after a comma in their lists);
- retry policies after `retry`, dead letters after `dead_letter` (inside a body);
- event types after `on`, `send`, `emits` (and in `emits [ ... ]`);
- fields of the closed schemas the `on` covers in a `when`, a `with { }`, an `any PATH { }`
  (those below PATH), and after a dot those below the path written so far;
- durations after `timeout`, `deadline`, `retain`, `fixed`, `initial`, `step`, `max`;
- the choices of `mode`, `jitter`, `on_exhausted`, `format`, `backoff`;
- else the keywords that start a declaration or an option where one may start.

Names come from the last analysis of the project: what the project declares. Each item
replaces the word being typed (`Completion.start` to the cursor), dots and all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs
from lsprotocol import types

from interlock.compiler.tables import known_event_types
from interlock.dsl import Project
from interlock.dsl.http import FORMATS
from interlock.dsl.transform import JITTERS, MODES, ON_EXHAUSTED

from .index import Index
from .keywords import DECLARATIONS, RETRY_OPTIONS, TARGET_OPTIONS
from .schemas import fields_below, type_text

DURATIONS = ("100ms", "250ms", "500ms", "1s", "5s", "10s", "30s", "1m", "5m", "1h", "1d")
CHOICES = {"mode": MODES, "jitter": JITTERS, "on_exhausted": ON_EXHAUSTED, "format": FORMATS,
           "backoff": ("fixed", "linear", "exponential")}
DURATION_AFTER = ("timeout", "deadline", "retain", "fixed", "initial", "step", "max")
OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "in", "contains", "startswith", "endswith", "matches", "is",
             "equals_ignore_case", "startswith_ignore_case", "endswith_ignore_case", "..", "??", ":")
HEADS = ("on", "when", "to", "expect", "send", "then", "otherwise", "with")

_SEGMENT = r"(?:`(?:[^`\\\n]|\\.)*`?|[A-Za-z0-9_*-]+)"
_TOKEN = re.compile(
    r"(?P<skip>#[^\n]*|f?\"(?:[^\"\\\n]|\\.)*(?:\"|$))"
    rf"|(?P<word>{_SEGMENT}(?:\.{_SEGMENT})*\.?|\.{_SEGMENT}?)"
    r"|(?P<punct>\.\.\.|\.\.|\?\?|==|!=|<=|>=|[{}\[\](),:<>])", re.MULTILINE)


@attrs.frozen
class Completion:
    items: list[types.CompletionItem]
    start: int  # the offset where the word being typed starts: the items replace it


@attrs.frozen
class _Context:
    tokens: list[str]  # from the start of the file to the cursor, without the word being typed
    partial: str
    opens: list[int]  # indexes in `tokens` of the brackets still open at the cursor


def _context(text: str, offset: int) -> _Context | None:
    tokens: list[str] = []
    partial = ""
    opens: list[int] = []
    for match in _TOKEN.finditer(text, 0, offset):
        if match.lastgroup == "skip":
            if match.end() >= offset and not _closed(match.group()):
                return None  # in a comment or a string
            continue
        token = match.group()
        if match.end() == offset and match.lastgroup == "word":
            partial = token
            break
        if token in "{[(":
            opens.append(len(tokens))
        elif token in "}])" and opens:
            opens.pop()
        tokens.append(token)
    return _Context(tokens, partial, opens)


def _closed(skipped: str) -> bool:
    """Whether a string token ends with its closing quote (a comment never does)."""
    body = skipped.removeprefix("f")
    return body.startswith('"') and len(body) >= 2 and body.endswith('"')


def _head(ctx: _Context) -> str | None:
    """The last clause word at the cursor's level (inside the innermost open bracket)."""
    start = ctx.opens[-1] + 1 if ctx.opens else 0
    depth = 0
    for token in reversed(ctx.tokens[start:]):
        if token in "}])":
            depth += 1
        elif token in "{[(":
            depth -= 1
        elif depth == 0 and token in HEADS:
            return token
    return None


def _declaration(ctx: _Context) -> list[str]:
    """The tokens of the top-level declaration the cursor is in (from its keyword on)."""
    start = depth = 0
    for i, token in enumerate(ctx.tokens):
        if token in "{[(":
            depth += 1
        elif token in "}])":
            depth = max(depth - 1, 0)
        elif depth == 0 and token in DECLARATIONS and (i == 0 or ctx.tokens[i - 1] != "to"):
            start = i
    return ctx.tokens[start:]


def _on(declaration: list[str]) -> list[str]:
    if "on" not in declaration:
        return []
    at = declaration.index("on") + 1
    found = []
    while at < len(declaration):
        found.append(declaration[at])
        if at + 1 < len(declaration) and declaration[at + 1] == ",":
            at += 2
        else:
            break
    return found


def complete(project: Project | None, index: Index, text: str, offset: int) -> Completion:
    ctx = _context(text, offset)
    if ctx is None or project is None:
        return Completion([], offset)
    return Completion(_items(project, index, ctx), offset - len(ctx.partial))


def _items(project: Project, index: Index, ctx: _Context) -> list[types.CompletionItem]:
    tokens = ctx.tokens
    prev = tokens[-1] if tokens else ""
    before = tokens[-2] if len(tokens) > 1 else ""
    opener = tokens[ctx.opens[-1] - 1] if ctx.opens and ctx.opens[-1] > 0 else ""
    head = _head(ctx)
    nested = bool(ctx.opens)
    listing = prev == "," or prev == "["

    if (prev in ("to", "then") and not (prev == "to" and before == "unrouted")) or \
            (prev == "," and head in ("to", "expect")):
        return _names(project.targets, types.CompletionItemKind.Class, "target")
    if prev == "expect":
        return [*_names(project.targets, types.CompletionItemKind.Class, "target"), _keyword("nothing")]
    if prev == "retry" and nested:
        return _names(project.retries, types.CompletionItemKind.Struct, "retry policy")
    if prev == "dead_letter" and (nested or before == "to"):
        return _names(project.dead_letters, types.CompletionItemKind.Constant, "dead letter")
    if prev in ("on", "send") or (prev == "emits" and not nested) or (prev == "," and head == "on") \
            or (listing and opener == "emits") or (prev == "emits" and head == "then"):
        return _events(project)
    if prev == "emits":
        return [types.CompletionItem("[]", kind=types.CompletionItemKind.Snippet, insert_text="[$1]",
                                     insert_text_format=types.InsertTextFormat.Snippet)]
    if prev in DURATION_AFTER:
        return [types.CompletionItem(d, kind=types.CompletionItemKind.Value, detail="duration")
                for d in DURATIONS]
    if prev in CHOICES:
        return [types.CompletionItem(c, kind=types.CompletionItemKind.EnumMember) for c in CHOICES[prev]]
    fields = _field_context(ctx, head, opener, prev, before, index.delivering)
    if fields is not None:
        on, prefix = fields
        return _fields(project, on, prefix, ctx.partial)
    if not ctx.opens:
        return [_keyword(k) for k in DECLARATIONS]
    body = _declaration(ctx)[0] if _declaration(ctx) else ""
    if opener in ("retry",) or (body == "retry" and len(ctx.opens) == 1):
        return [_keyword(k) for k in RETRY_OPTIONS]
    if body in ("target", "defaults") and len(ctx.opens) == 1:
        return [_keyword(k) for k in TARGET_OPTIONS]
    if body in ("route", "choose") and len(ctx.opens) == 1:
        return [_keyword(k) for k in ("on", "when", "to", "otherwise")]
    if body == "test" and len(ctx.opens) == 1:
        return [_keyword(k) for k in ("send", "expect", "then")]
    return []


PATH_STARTS = ("when", "and", "or", "not", "exists", "missing", "any", "(", "{")


def _field_context(ctx: _Context, head: str | None, opener: str, prev: str, before: str,
                   delivering: dict[str, list[str]]) -> tuple[list[str], tuple[str, ...]] | None:
    """(the `on` patterns, the path the fields are below) where a field path fits, else None."""
    declaration = _declaration(ctx)
    kind = declaration[0] if declaration else ""
    if kind == "target" and prev == "by" and before == "order" and len(declaration) > 1:
        return delivering.get(declaration[1], []), ()
    if kind not in ("route", "choose"):
        return None
    on = _on(declaration)
    # inside `any PATH { ... }`: the fields of the list's elements
    prefix = tuple(part for at in ctx.opens[1:] if ctx.tokens[at] == "{" and at >= 2 and ctx.tokens[at - 2] == "any"
                   for part in ctx.tokens[at - 1].split("."))
    in_transform = any(ctx.tokens[at] == "{" and ctx.tokens[at - 1] == "with" for at in ctx.opens[1:])
    if in_transform:
        return (on, prefix) if prev in ("{", ",", ":", "??") else None
    innermost = ctx.tokens[ctx.opens[-1]] if ctx.opens else ""
    if (head == "when" or innermost == "(" or prefix) and prev in PATH_STARTS:
        return on, prefix
    return None


def _names(found: Mapping[str, object], kind: types.CompletionItemKind, detail: str) -> list[types.CompletionItem]:
    return [types.CompletionItem(name, kind=kind, detail=detail) for name in found]


def _events(project: Project) -> list[types.CompletionItem]:
    return [types.CompletionItem(name, kind=types.CompletionItemKind.Event,
                                 detail="event" if name in project.events else "event (not declared)")
            for name in known_event_types(project)]


def _keyword(word: str) -> types.CompletionItem:
    return types.CompletionItem(word, kind=types.CompletionItemKind.Keyword)


def _fields(project: Project, on: list[str], prefix: tuple[str, ...], partial: str) -> list[types.CompletionItem]:
    written = partial.split(".")[:-1]
    parts = (*prefix, *(p.strip("`") for p in written))
    start = ".".join(written) + "." if written else ""
    return [types.CompletionItem(name, kind=types.CompletionItemKind.Field,
                                 detail=type_text(field.type) + ("?" if field.optional else ""),
                                 filter_text=start + name, insert_text=start + name)
            for name, field in fields_below(project, on, parts).items()]
