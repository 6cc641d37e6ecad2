"""From the parser's reductions to the typed AST, checking literals on the way.

`Builder` is run by the LALR parser itself (Lark's inline transformer), so no parse
tree is ever built. Each method receives its rule's children, keywords and punctuation
included (`keep_all_tokens`), which is what gives every node a span from its first
token to its last.

Literal checks live here because this is the one place that sees the raw text:
durations, numbers, string escapes, CIDR blocks, names of the wrong shape, unknown
types, options given twice, values outside an option's choices. A bad literal is
reported and its option dropped, so one mistake yields one diagnostic.
"""

from __future__ import annotations

import contextvars
import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

import attrs
from lark import Token, Transformer

from . import ast, http
from .diagnostics import Diagnostic, Related, error, warning
from .regex import regex_problem
from .source import SourceFile, Span

T = TypeVar("T")


@attrs.define
class BuildContext:
    """What one parse of one file collects."""

    source: SourceFile
    diagnostics: list[Diagnostic] = attrs.Factory(list)


CURRENT: contextvars.ContextVar[BuildContext] = contextvars.ContextVar("interlock_build")


def _report(diagnostic: Diagnostic) -> None:
    CURRENT.get().diagnostics.append(diagnostic)


def tok_span(token: Token) -> Span:
    # Our lexer sets every position; the casts only inform the type checker.
    return Span(
        CURRENT.get().source.path,
        cast(int, token.start_pos),
        cast(int, token.end_pos),
        cast(int, token.line),
        cast(int, token.column),
        cast(int, token.end_line),
        cast(int, token.end_column),
    )


def _span_of(item: Any) -> Span:
    if isinstance(item, Token):
        return tok_span(item)
    if isinstance(item, tuple) and not isinstance(item, Span):
        # an option (name, value, span), a block (options, span), or a tuple of nodes
        if isinstance(item[-1], Span):
            return item[-1]
        return _span_of(item[0]).to(_span_of(item[-1]))
    span: Span = item.span
    return span


def _span(children: Sequence[Any]) -> Span:
    """From the first child to the last (children always begin and end with a token here)."""
    first, last = children[0], children[-1]
    if type(first) is Token and type(last) is Token:  # the common case, without temporaries
        return Span(
            CURRENT.get().source.path,
            cast(int, first.start_pos),
            cast(int, last.end_pos),
            cast(int, first.line),
            cast(int, first.column),
            cast(int, last.end_line),
            cast(int, last.end_column),
        )
    return _span_of(first).to(_span_of(last))


def _nodes(children: Iterable[Any], kind: type[T]) -> list[T]:
    return [c for c in children if isinstance(c, kind)]


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{matches[0]}`?" if matches else None


@attrs.frozen(slots=True)
class _Invalid:
    """Stands for a literal that was reported as wrong; its option is dropped."""

    span: Span


@attrs.frozen(slots=True)
class _NameList:
    tokens: tuple[Token, ...]
    span: Span


# ---- literal decoding ------------------------------------------------------

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*\Z")
_DURATION = re.compile(r"(?:(\d+)(ms|s|m|h|d))+\Z")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_UNIT_ORDER = ["d", "h", "m", "s", "ms"]
_UNIT_WORDS = {
    **{w: "ms" for w in ("msec", "msecs", "millis", "millisecond", "milliseconds")},
    **{w: "s" for w in ("sec", "secs", "second", "seconds")},
    **{w: "m" for w in ("min", "mins", "minute", "minutes")},
    **{w: "h" for w in ("hr", "hrs", "hour", "hours")},
    **{w: "d" for w in ("day", "days")},
}
# `\*` and `\?` stay as written, so that a `matches` glob can say "a literal star".
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "/": "/", "*": "\\*", "?": "\\?"}
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|.)")

# One segment of a QPATH token: a plain name, or backticks around anything but a backtick,
# a backslash or a newline, and the escapes \` and \\.
_SEGMENT = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_-]*)|`((?:[^`\\\n]|\\[^\n])*)`")
_SEGMENT_ESCAPE = re.compile(r"\\(.)")
_QUOTED_PATH = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_-]*|`(?:[^`\\\n]|\\[^\n])*`)"
                          r"(?:\.(?:[A-Za-z0-9_][A-Za-z0-9_-]*|`(?:[^`\\\n]|\\[^\n])*`))*")


def _quoted_path(text: str, span: Span) -> tuple[tuple[str, ...], tuple[tuple[int, int], ...]]:
    """The segments of a path with backtick-quoted segments (the grammar's QPATH), and where
    each is written in the token."""
    parts: list[str] = []
    written: list[tuple[int, int]] = []
    pos = 0
    while True:
        found = _SEGMENT.match(text, pos)
        assert found is not None, "the grammar's QPATH admits only segments joined by dots"
        plain, quoted = found.groups()
        if plain is not None:
            parts.append(plain)
        else:
            bad = next((m for m in _SEGMENT_ESCAPE.finditer(quoted) if m.group(1) not in "`\\"), None)
            if bad is not None:
                where = _sub_span(span, found.start(2) + bad.start(), found.start(2) + bad.end())
                _report(error("E0010", f"invalid escape `{bad.group(0)}` in a quoted field name", where,
                              "not an escape", "inside backticks, write \\` for a backtick and \\\\ for a "
                              "backslash; every other character stands for itself"))
            elif not quoted:
                _report(error("E0015", "a field name cannot be empty", _sub_span(span, found.start(), found.end()),
                              "empty name", "name the field between the backticks"))
            parts.append(_SEGMENT_ESCAPE.sub(r"\1", quoted))
        written.append(found.span())
        pos = found.end()
        if pos == len(text):
            return tuple(parts), tuple(written)
        pos += 1  # the dot


MAX_FALLBACKS = 64  # `??` in a row (`a ?? b ?? ...`), as brackets nest at most 64 deep

MODES = ("async", "sync")
JITTERS = ("none", "full", "equal")
ON_EXHAUSTED = ("dead_letter", "drop")


def _check_url(url: ast.Scalar) -> bool:
    """Whether a URL written in the source can be an HTTP target's; reports why not."""
    from urllib.parse import urlsplit

    import httpx

    text = str(url.value)
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or parts.port > 0
        host_ok = bool(httpx.URL(text).host)
    except (ValueError, httpx.InvalidURL):
        parts, port_ok, host_ok = None, False, False
    if parts is None or parts.scheme not in ("http", "https") or not host_ok or not port_ok or len(text) > 32_768 \
            or any(ord(ch) < 33 or ord(ch) == 127 for ch in text):
        _report(error("E0021", f"{text!r} is not an HTTP URL", url.span, "not an absolute http(s) URL",
                      'an HTTP target\'s URL is absolute, such as "https://payments.internal/events"'))
        return False
    if parts.password is not None:
        _report(error("E0025", "the URL carries a password written in the source", url.span, "a secret in the source",
                      'read the whole URL from the environment: `http POST env("NAME")`'))
        return False
    return True


def parse_duration(text: str) -> tuple[int | None, str | None]:
    """(milliseconds, None) for a valid duration, else (None, a hint saying what is wrong)."""
    if text.startswith("-"):
        return None, "a duration cannot be negative"
    if len(text) > 40:
        return None, "a duration is at most a few dozen characters: no duration is that long"
    if re.fullmatch(r"\d+\.\d+[A-Za-z]+", text):
        return None, "durations are whole numbers of one unit: write `1500ms`, not `1.5s`"
    exponent = re.fullmatch(r"(\d+(?:\.\d+)?)[eE]([+-]?\d{1,3})([A-Za-z]+)", text)
    if exponent and exponent.group(3) in _UNIT_MS:
        whole = float(f"{exponent.group(1)}e{exponent.group(2)}")
        written = f"`{int(whole)}{exponent.group(3)}`" if whole.is_integer() and whole < 1e15 else "the number in full"
        return None, f"durations are written without an exponent: write {written}"
    if not _DURATION.match(text):
        number = re.match(r"\d+", text)
        unit = re.sub(r"^[\d.]+", "", text)
        short = _UNIT_WORDS.get(unit.lower())
        if short and number and number.end() == len(text) - len(unit):
            return None, f"did you mean `{number.group()}{short}`?"
        hint = did_you_mean(unit, _UNIT_MS)
        base = f"`{unit}` is not a unit of time: use `ms`, `s`, `m`, `h` or `d`"
        return None, f"{base}; {hint}" if hint else base
    parts = _DURATION_PART.findall(text)
    ranks = [_UNIT_ORDER.index(unit) for _, unit in parts]
    if ranks != sorted(set(ranks)):
        return None, "units of a duration go from largest to smallest, each once (`1m30s`)"
    return sum(int(n) * _UNIT_MS[unit] for n, unit in parts), None


def _sub_span(span: Span, start: int, end: int) -> Span:
    """The part [start, end) of a one-line token's span."""
    return span._replace(start=span.start + start, end=span.start + end, column=span.column + start,
                         end_column=span.column + end)


def _report_lone_surrogate(span: Span) -> None:
    _report(error("E0010", "lone surrogate in string", span, "half of a surrogate pair",
                  "a `\\uD800`-`\\uDBFF` escape must be followed by a `\\uDC00`-`\\uDFFF` one; "
                  "or write the character itself"))


def decode_string(raw: str, span: Span) -> str | None:
    """The value of a string token (quotes included), or None after reporting a bad escape."""
    body = raw[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    pos = 0
    ok = True
    pending_high: tuple[int, Span] | None = None
    for match in _ESCAPE.finditer(body):
        between = body[pos : match.start()]
        out.append(between)
        pos = match.end()
        esc = match.group(1)
        esc_span = _sub_span(span, 1 + match.start(), 1 + match.end())
        if pending_high is not None and (between or not (esc.startswith("u") and len(esc) == 5)):
            ok = False
            _report_lone_surrogate(pending_high[1])
            pending_high = None
        if esc.startswith("u") and len(esc) == 5:
            code = int(esc[1:], 16)
            if 0xD800 <= code <= 0xDBFF:
                if pending_high is not None:
                    ok = False
                    _report_lone_surrogate(pending_high[1])
                pending_high = (code, esc_span)
                continue
            if 0xDC00 <= code <= 0xDFFF:
                if pending_high is None:
                    ok = False
                    _report_lone_surrogate(esc_span)
                    continue
                code = 0x10000 + ((pending_high[0] - 0xD800) << 10) + (code - 0xDC00)
                pending_high = None
            elif pending_high is not None:
                ok = False
                _report_lone_surrogate(pending_high[1])
                pending_high = None
            out.append(chr(code))
        elif esc in _ESCAPES:
            out.append(_ESCAPES[esc])
        elif esc == "u":
            ok = False
            digits = re.match(r"[0-9A-Fa-f]{0,3}", body[match.end():])
            width = len(digits.group()) if digits else 0
            _report(error("E0010", "`\\u` needs four hex digits", _sub_span(span, 1 + match.start(),
                          1 + match.end() + width), "incomplete escape",
                          "write a character as `\\u` and four hex digits, such as `\\u00e9` for é"))
        else:
            ok = False
            _report(error("E0010", f"invalid escape `\\{esc}` in string", esc_span, "unknown escape",
                          'escapes are `\\"`, `\\\\`, `\\n`, `\\t`, `\\r`, `\\/`, `\\uXXXX` (four hex digits), '
                          "and `\\*` `\\?` for a literal star or question mark in `matches`; "
                          "write `\\\\` for a backslash"))
    if pending_high is not None:
        ok = False
        _report_lone_surrogate(pending_high[1])
    out.append(body[pos:])
    return "".join(out) if ok else None


def path_of(text: str, span: Span) -> tuple[ast.Path, bool]:
    """The field path written `text` at `span`, and whether it is one (E0015 reported if not):
    the one reading of a path, for a path token and for a place of a template alike. A segment
    in backticks is a quoted field name (the grammar's QPATH)."""
    if "`" in text:
        if not _QUOTED_PATH.fullmatch(text):
            _report(error("E0015", f"`{text}` is not a field path", span, "not a field path",
                          "a field path is names joined by dots; a name that is not one goes in backticks, "
                          "such as headers.`x.trace`"))
            return ast.Path(tuple(text.split(".")), span), False
        parts, written = _quoted_path(text, span)
        return ast.Path(parts, span, written), True
    if not _DOTTED_NAME.match(text):
        _report(error("E0015", f"`{text}` is not a field path", span, "not a field path",
                      "a field path is names joined by dots, such as `customer.tier`"))
        return ast.Path(tuple(text.split(".")), span), False
    return ast.Path(tuple(text.split(".")), span), True


def _report_brace(span: Span, message: str, label: str, help_: str) -> None:
    _report(error("E0030", message, span, label, help_))


def decode_template(raw: str, span: Span) -> tuple[str | ast.Path, ...] | None:
    """The parts of a template token (`f"..."`): decoded text and the paths of its `{...}`
    places, or None after reporting what is wrong. One pass over the token: `\\x` escapes as
    in strings (skipped here, decoded with the text around them), `{{` and `}}` a brace, a
    `{` up to the next `}` a path (spaces around it allowed)."""
    body = raw[2:-1]  # without `f"` and `"`
    parts: list[str | ast.Path] = []
    text: list[str] = []  # the decoded text since the last path
    ok = True
    start = 0  # where the undecoded text begins

    def decode(end: int) -> None:
        nonlocal ok
        if end > start:
            # `decode_string` wants quotes around the text, and a span that starts at the first
            value = decode_string(f'"{body[start:end]}"', _sub_span(span, 1 + start, 3 + end))
            if value is None:
                ok = False
            else:
                text.append(value)

    found = {"{": 0, "}": 0}  # where each brace was found last

    def after(char: str, i: int) -> int:
        """Where `char` is next after `i` (-1: nowhere), each search resumed where the last
        one stopped, so that a template with many `{` is still read in linear time."""
        if -1 < found[char] <= i:
            found[char] = body.find(char, i + 1)
        return found[char]

    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\":
            brace = body[i + 1]
            if brace in "{}":
                decode(i)
                start, ok = i + 2, False
                _report(error("E0010", f"invalid escape `\\{brace}` in a template", _sub_span(span, 2 + i, 4 + i),
                              "not an escape", f"write `{brace * 2}` for a literal `{brace}` in a template"))
            i += 2
            continue
        if char not in "{}":
            i += 1
            continue
        decode(i)
        if body.startswith(char * 2, i):
            text.append(char)
            i += 2
        elif char == "}":
            ok = False
            _report_brace(_sub_span(span, 2 + i, 3 + i), "`}` without its `{` in a template", "not opened",
                          "write `}}` for a literal `}`")
            i += 1
        else:
            close, following = after("}", i), after("{", i)
            if close == -1 or -1 < following < close:
                ok = False
                end = len(body) if close == -1 else following
                _report_brace(_sub_span(span, 2 + i, 3 + i), "`{` not closed in a template", "not closed",
                              "end the path with `}`, or write `{{` for a literal `{`")
                start = i = end
                continue
            inner = body[i + 1:close]
            name = inner.strip()
            if not name:
                ok = False
                _report_brace(_sub_span(span, 2 + i, 3 + close), "`{}` names no field", "empty",
                              "put a field path between the braces, such as `{customer.id}`, or write `{{}}` for "
                              "the braces themselves")
            else:
                at = i + 1 + (len(inner) - len(inner.lstrip()))
                path, good = path_of(name, _sub_span(span, 2 + at, 2 + at + len(name)))
                ok = ok and good
                if text:
                    parts.append("".join(text))
                    text.clear()
                parts.append(path)
            i = close + 1
        start = i
    decode(len(body))
    if text:
        parts.append("".join(text))
    return tuple(parts) if ok else None


# ---- the builder -----------------------------------------------------------


def _option_table(
    options: Sequence[tuple[str, Any, Span]], block: str
) -> dict[str, Any]:
    """Options of a block by name; a second occurrence is reported and ignored."""
    table: dict[str, Any] = {}
    first: dict[str, Span] = {}
    for name, value, span in options:
        if name in first:
            _report(error("E0017", f"`{name}` given twice in this {block}", span, "given again here",
                          "remove one of them", [Related(first[name], "first given here")]))
            continue
        first[name] = span
        if not isinstance(value, _Invalid):
            table[name] = value
    return table


class Builder(Transformer[Token, Any]):
    """Rule callbacks for the LALR parser: children in, AST nodes out."""

    # -- names ---------------------------------------------------------------

    def _name(self, token: Token, what: str) -> ast.Name:
        span = tok_span(token)
        text = str(token)
        if not _PLAIN_NAME.match(text):
            _report(error("E0015", f"`{text}` is not a valid {what} name", span, "not a plain name",
                          "names are letters, digits, `_` and `-`; dots are for event types and field paths"))
        return ast.Name(text, span)

    def _event_type(self, token: Token) -> ast.Name:
        span = tok_span(token)
        text = str(token)
        if not _DOTTED_NAME.match(text):
            _report(error("E0015", f"`{text}` is not an event type", span, "globs are not allowed here",
                          "name one event type, such as `order.created`; globs belong in a route's `on`"))
        return ast.Name(text, span)

    def _path(self, token: Token) -> ast.Path:
        return path_of(str(token), tok_span(token))[0]

    def _keyword(self, token: Token, option: str, choices: Sequence[str]) -> ast.Keyword | _Invalid:
        span = tok_span(token)
        if str(token) not in choices:
            listed = ", ".join(f"`{c}`" for c in choices)
            hint = did_you_mean(str(token), choices)
            _report(error("E0016", f"`{token}` is not a valid `{option}`", span, f"expected one of {listed}",
                          hint or f"`{option}` is one of {listed}"))
            return _Invalid(span)
        return ast.Keyword(str(token), span)

    # -- literals --------------------------------------------------------------

    def string(self, c: list[Token]) -> ast.Scalar | _Invalid:
        span = tok_span(c[0])
        value = decode_string(str(c[0]), span)
        return _Invalid(span) if value is None else ast.Scalar(value, span)

    def number(self, c: list[Token]) -> ast.Scalar | _Invalid:
        span = tok_span(c[0])
        text = str(c[0])
        value: int | float
        if len(text) > 40:  # beyond any 64-bit number (and Python's limit on int() of text)
            _report(error("E0012", "number is too large", span, f"{len(text)} characters",
                          "numbers must fit in a 64-bit float"))
            return _Invalid(span)
        if re.fullmatch(r"-?\d+", text):
            value = int(text)
        else:
            value = float(text)
            if value in (float("inf"), float("-inf")):
                _report(error("E0012", f"number `{text}` is too large", span, "out of range",
                              "numbers must fit in a 64-bit float"))
                return _Invalid(span)
        return ast.Scalar(value, span)

    def duration(self, c: list[Token]) -> ast.Duration | _Invalid:
        span = tok_span(c[0])
        ms, problem = parse_duration(str(c[0]))
        if ms is None:
            text = str(c[0])
            shown = text if len(text) <= 24 else text[:20] + "..."
            _report(error("E0011", f"invalid duration `{shown}`", span, "not a duration", problem))
            return _Invalid(span)
        return ast.Duration(ms, str(c[0]), span)

    def true(self, c: list[Token]) -> ast.Scalar:
        return ast.Scalar(True, tok_span(c[0]))

    def false(self, c: list[Token]) -> ast.Scalar:
        return ast.Scalar(False, tok_span(c[0]))

    def null(self, c: list[Token]) -> ast.Scalar:
        return ast.Scalar(None, tok_span(c[0]))

    def list_lit(self, c: list[Any]) -> ast.ListLit:
        items = [x for x in c[1:-1] if not isinstance(x, Token)]
        return ast.ListLit(tuple(i for i in items if not isinstance(i, _Invalid)), _span(c))

    def _key_name(self, key: Token | ast.Scalar | _Invalid) -> ast.Name | None:
        if isinstance(key, Token):
            return self._name(key, "key")
        if isinstance(key, ast.Scalar) and isinstance(key.value, str):
            if not key.value:
                _report(error("E0015", "a key cannot be empty", key.span, "empty key",
                              "name the key: `order_id: id`"))
                return None
            return ast.Name(key.value, key.span)
        return None

    def object_entry(self, c: list[Any]) -> ast.ObjectEntry | _Invalid:
        key = self._key_name(c[0])
        if key is None or isinstance(c[2], _Invalid):
            return _Invalid(_span(c))
        return ast.ObjectEntry(key, c[2], _span(c))

    def object_lit(self, c: list[Any]) -> ast.ObjectLit:
        entries = _nodes(c, ast.ObjectEntry)
        self._unique((e.key for e in entries), "key")
        return ast.ObjectLit(tuple(entries), _span(c))

    def _unique(self, names: Iterable[ast.Name], what: str) -> None:
        seen: dict[str, ast.Name] = {}
        for name in names:
            if name.text in seen:
                _report(error("E0019", f"{what} `{name.text}` given twice", name.span, "given again here",
                              f"each {what} may appear once", [Related(seen[name.text].span, "first given here")]))
            else:
                seen[name.text] = name

    def name_list(self, c: list[Any]) -> _NameList:
        return _NameList(tuple(t for t in c if isinstance(t, Token) and t.type == "IDENT"), _span(c))

    # -- schemas ---------------------------------------------------------------

    def named_type(self, c: list[Token]) -> ast.ScalarType:
        span = tok_span(c[0])
        name = str(c[0])
        if name not in ast.SCALAR_TYPES:
            hint = did_you_mean(name, (*ast.SCALAR_TYPES, "list"))
            _report(error("E0014", f"unknown type `{name}`", span, "not a type",
                          hint or "types are `string`, `int`, `float`, `bool`, `timestamp`, `any`, "
                          "`list<T>` and `{ field: T }`"))
            return ast.ScalarType("any", span)
        return ast.ScalarType(name, span)

    def list_type(self, c: list[Any]) -> ast.ListType:
        return ast.ListType(c[2], _span(c))

    def field(self, c: list[Any]) -> ast.Field | _Invalid:
        optional = isinstance(c[-1], Token) and c[-1].type == "OPTIONAL"
        name = self._field_name(c[0])
        if name is None:
            return _Invalid(_span(c))
        return ast.Field(name, c[2], optional, _span(c))

    def _field_name(self, key: Token | ast.Scalar | _Invalid) -> ast.Name | None:
        """A schema's field name: a plain name, one segment in backticks, or a string."""
        if isinstance(key, Token) and key.type == "QPATH":
            path = self._path(key)
            if len(path.parts) != 1:
                _report(error("E0015", f"`{key}` is a path, not a field name", path.span, "a path",
                              "declare the field in a nested object: `{ customer: { id: string } }`; "
                              "a name with a dot in it is quoted whole: `` `c.count`: int ``"))
                return None
            return ast.Name(path.parts[0], path.span)
        if isinstance(key, Token):
            return self._name(key, "field")
        return self._key_name(key)

    def object_type(self, c: list[Any]) -> ast.ObjectType:
        fields = _nodes(c, ast.Field)
        self._unique((f.name for f in fields), "field")
        return ast.ObjectType(tuple(fields), _span(c))

    def event_decl(self, c: list[Any]) -> ast.EventDecl:
        schema = c[2] if len(c) > 2 else None
        return ast.EventDecl(self._event_type(c[1]), schema, _span(c))

    # -- retry policies ----------------------------------------------------------

    def attempts(self, c: list[Any]) -> tuple[str, Any, Span]:
        return "attempts", self._count(c[1], "attempts"), _span(c)

    def _count(self, value: ast.Scalar | _Invalid, option: str) -> ast.Count | _Invalid:
        if isinstance(value, _Invalid):
            return value
        text = CURRENT.get().source.text[value.span.start:value.span.end]
        if not isinstance(value.value, int):
            _report(error("E0012", f"`{option}` must be a whole number, not `{text}`", value.span,
                          "not a whole number", f"write `{option}` as a count such as `3`"))
            return _Invalid(value.span)
        if value.value < 0:
            _report(error("E0012", f"`{option}` cannot be negative", value.span, "negative",
                          f"write `{option}` as a count such as `3`"))
            return _Invalid(value.span)
        return ast.Count(value.value, value.span)

    def backoff_max(self, c: list[Any]) -> ast.Duration | _Invalid:
        return c[1]  # type: ignore[no-any-return]

    def backoff_fixed(self, c: list[Any]) -> tuple[str, Any, Span]:
        span = _span(c)
        delay = c[2]
        value = delay if isinstance(delay, _Invalid) else ast.FixedBackoff(delay, span)
        return "backoff", value, span

    def backoff_linear(self, c: list[Any]) -> tuple[str, Any, Span]:
        span = _span(c)
        initial, step = c[3], c[5]
        maximum = c[6] if len(c) > 6 else None
        parts = (initial, step, maximum)
        if any(isinstance(p, _Invalid) for p in parts):
            return "backoff", _Invalid(span), span
        return "backoff", ast.LinearBackoff(initial, step, maximum, span), span

    def backoff_exponential(self, c: list[Any]) -> tuple[str, Any, Span]:
        span = _span(c)
        initial, factor = c[3], c[5]
        maximum = c[6] if len(c) > 6 else None
        if any(isinstance(p, _Invalid) for p in (initial, factor, maximum)):
            return "backoff", _Invalid(span), span
        return "backoff", ast.ExponentialBackoff(initial, ast.Factor(float(factor.value), factor.span),
                                                 maximum, span), span

    def jitter(self, c: list[Any]) -> tuple[str, Any, Span]:
        return "jitter", self._keyword(c[1], "jitter", JITTERS), _span(c)

    def retry_on(self, c: list[Any]) -> tuple[str, Any, Span]:
        return "retry_on", self._error_kinds(c[1].tokens), _span(c)

    def give_up_on(self, c: list[Any]) -> tuple[str, Any, Span]:
        return "give_up_on", self._error_kinds(c[1].tokens), _span(c)

    def _error_kinds(self, tokens: tuple[Token, ...]) -> tuple[ast.Name, ...]:
        kinds = []
        for token in tokens:
            text = str(token)
            if text.startswith("http.") and not http.is_http_kind(text):
                span = tok_span(token)
                known = [*http.HTTP_KINDS, "http.404", "http.429", "http.503"]
                hint = did_you_mean(text, known)
                _report(error("E0026", f"`{text}` is not an error kind of HTTP targets", span, "unknown HTTP kind",
                              hint or "HTTP kinds are `http.3xx`, `http.4xx`, `http.5xx`, a status such as "
                              "`http.404`, `http.timeout`, `http.connect`, `http.tls` and `http.protocol`"))
                kinds.append(ast.Name(text, span))
            elif text.startswith("http."):
                kinds.append(ast.Name(text, tok_span(token)))
            else:
                kinds.append(self._name(token, "error kind"))
        return tuple(kinds)

    def deadline(self, c: list[Any]) -> tuple[str, Any, Span]:
        return "deadline", c[1], _span(c)

    def retry_body(self, c: list[Any]) -> tuple[dict[str, Any], Span]:
        options = [x for x in c if isinstance(x, tuple)]
        return _option_table(options, "retry policy"), _span(c)

    def _retry_policy(self, name: ast.Name | None, body: tuple[dict[str, Any], Span], span: Span) -> ast.RetryPolicy:
        opts, _ = body
        return ast.RetryPolicy(
            name=name,
            attempts=opts.get("attempts"),
            backoff=opts.get("backoff"),
            jitter=opts.get("jitter"),
            retry_on=opts.get("retry_on"),
            give_up_on=opts.get("give_up_on"),
            deadline=opts.get("deadline"),
            span=span,
        )

    def retry_decl(self, c: list[Any]) -> ast.RetryPolicy:
        return self._retry_policy(self._name(c[1], "retry policy"), c[2], _span(c))

    # -- dead letters, targets -------------------------------------------------

    def retain(self, c: list[Any]) -> tuple[str, Any, Span]:
        return "retain", c[1], _span(c)

    def dead_letter_body(self, c: list[Any]) -> tuple[dict[str, Any], Span]:
        return _option_table([x for x in c if isinstance(x, tuple)], "dead letter"), _span(c)

    def dead_letter_decl(self, c: list[Any]) -> ast.DeadLetterDecl:
        opts = c[2][0] if len(c) > 2 else {}
        return ast.DeadLetterDecl(self._name(c[1], "dead letter"), opts.get("retain"), _span(c))

    def mode(self, c: list[Any]) -> tuple[str, Any, Span]:
        return "mode", self._keyword(c[1], "mode", MODES), _span(c)

    def use_retry(self, c: list[Any]) -> tuple[str, Any, Span]:
        return "retry", self._name(c[1], "retry policy"), _span(c)

    def inline_retry(self, c: list[Any]) -> tuple[str, Any, Span]:
        span = _span(c)
        return "retry", self._retry_policy(None, c[1], span), span

    def use_dead_letter(self, c: list[Any]) -> tuple[str, Any, Span]:
        return "dead_letter", self._name(c[1], "dead letter"), _span(c)

    def timeout(self, c: list[Any]) -> tuple[str, Any, Span]:
        return "timeout", c[1], _span(c)

    def concurrency(self, c: list[Any]) -> tuple[str, Any, Span]:
        return "concurrency", self._count(c[1], "concurrency"), _span(c)

    def order_by(self, c: list[Any]) -> tuple[str, Any, Span]:
        return "order_by", self._path(c[2]), _span(c)

    def emits(self, c: list[Any]) -> tuple[str, Any, Span]:
        return "emits", tuple(self._event_type(t) for t in c[1].tokens), _span(c)

    def on_exhausted(self, c: list[Any]) -> tuple[str, Any, Span]:
        return "on_exhausted", self._keyword(c[1], "on_exhausted", ON_EXHAUSTED), _span(c)

    # -- HTTP targets --------------------------------------------------------------

    def env(self, c: list[Any]) -> ast.EnvRef | _Invalid:
        span = _span(c)
        name = next(x for x in c if isinstance(x, ast.Scalar | _Invalid))
        if isinstance(name, _Invalid):
            return name
        if not isinstance(name.value, str) or not http.ENV_NAME.match(name.value):
            _report(error("E0022", f"{name.value!r} is not an environment variable name", name.span,
                          "not a variable name", "a variable name is letters, digits and `_`, such as `PAYMENTS_URL`"))
            return _Invalid(span)
        return ast.EnvRef(name.value, span)

    def http(self, c: list[Any]) -> tuple[str, Any, Span]:
        span = _span(c)
        method = self._keyword(c[1], "http method", http.METHODS)
        url = c[-1]
        if isinstance(url, ast.Scalar) and not _check_url(url):
            url = _Invalid(url.span)
        if isinstance(method, _Invalid) or isinstance(url, _Invalid):
            return "http", _Invalid(span), span
        return "http", ast.HttpEndpoint(method, url, span), span

    def header(self, c: list[Any]) -> ast.Header | _Invalid:
        span = _span(c)
        name, value = [x for x in c if not isinstance(x, Token)]
        if isinstance(name, _Invalid) or isinstance(value, _Invalid):
            return _Invalid(span)
        text = str(name.value)
        if not http.HEADER_NAME.match(text):
            _report(error("E0023", f"{text!r} is not an HTTP header name", name.span, "not a header name",
                          "a header name is letters, digits and `-` (and a few marks: !#$%&'*+.^_`|~)"))
            return _Invalid(span)
        if http.reserved_header(text):
            _report(error("E0024", f"header `{text}` is set by interlock", name.span, "set on every request",
                          "interlock writes `Content-Type`, `Content-Length`, `Host`, the CloudEvents `ce-*` "
                          "headers and its own `Interlock-*` itself: leave this one out"))
            return _Invalid(span)
        if isinstance(value, ast.Scalar):
            if not http.FIELD_VALUE.match(str(value.value)):
                _report(error("E0023", f"the value of header `{text}` is not one HTTP allows", value.span,
                              "not a header value", "a header value is printable ASCII on one line, with no space "
                              "at either end"))
                return _Invalid(span)
            if http.credential_header(text):
                _report(error("E0025", f"header `{text}` carries a credential written in the source", value.span,
                              "a secret in the source", f'read it from the environment: `"{text}": env("NAME")` '
                              "(a compiled artifact never holds a secret)"))
                return _Invalid(span)
        return ast.Header(name, value, span)

    def headers(self, c: list[Any]) -> tuple[str, Any, Span]:
        span = _span(c)
        seen: dict[str, ast.Header] = {}
        for header in c:
            if not isinstance(header, ast.Header):
                continue
            lowered = str(header.name.value).lower()
            if lowered in seen:
                _report(error("E0019", f"header `{header.name.value}` given twice", header.name.span,
                              "given again here", "header names are case-insensitive: give each once",
                              [Related(seen[lowered].name.span, "first given here")]))
                continue
            seen[lowered] = header
        return "headers", tuple(seen.values()), span

    def content_format(self, c: list[Any]) -> tuple[str, Any, Span]:
        return "format", self._keyword(c[1], "format", http.FORMATS), _span(c)

    def target_body(self, c: list[Any]) -> tuple[list[tuple[str, Any, Span]], Span]:
        return [x for x in c if isinstance(x, tuple)], _span(c)

    def target_decl(self, c: list[Any]) -> ast.TargetDecl:
        options, _ = c[2]
        table = _option_table(options, "target")
        given = {name: span for name, _value, span in options}
        if "http" not in given:
            for name in ("headers", "format"):
                if name in given:
                    _report(error("E0027", f"`{name}` on a target that is not an HTTP target", given[name],
                                  "for HTTP targets only", "give the target an endpoint (`http POST \"https://...\"`) "
                                  f"or remove `{name}`"))
                    table.pop(name, None)
        return ast.TargetDecl(self._name(c[1], "target"), ast.TargetOptions(**table), _span(c))

    def defaults_decl(self, c: list[Any]) -> ast.DefaultsDecl:
        options, _ = c[1]
        allowed = []
        for option in options:
            name, _value, span = option
            if name in ("order_by", "emits", "http"):
                shown = "order by" if name == "order_by" else name
                _report(error("E0018", f"`{shown}` cannot be a default", span, "not allowed in `defaults`",
                              f"`{shown}` belongs to one target: move it into that target's block"))
            else:
                allowed.append(option)
        return ast.DefaultsDecl(ast.TargetOptions(**_option_table(allowed, "defaults block")), _span(c))

    def unrouted_decl(self, c: list[Any]) -> ast.UnroutedDecl:
        return ast.UnroutedDecl(self._name(c[3], "dead letter"), _span(c))

    # -- predicates --------------------------------------------------------------

    def compare_op(self, c: list[Token]) -> str:
        return str(c[0])

    string_op = compare_op

    def group(self, c: list[Any]) -> Any:
        # The parenthesised expression, its span widened to the parentheses, so that the
        # source text of an enclosing `not (...)` or `and` is balanced.
        if isinstance(c[1], _Invalid):
            return c[1]
        return attrs.evolve(c[1], span=_span(c))

    def not_expr(self, c: list[Any]) -> ast.Not | _Invalid:
        if isinstance(c[1], _Invalid):
            return _Invalid(_span(c))
        return ast.Not(c[1], _span(c))

    def and_expr(self, c: list[Any]) -> ast.And | _Invalid:
        return self._junction(c, ast.And)

    def or_expr(self, c: list[Any]) -> ast.Or | _Invalid:
        return self._junction(c, ast.Or)

    element_or = or_expr  # the condition of `any PATH { ... }` (see the grammar)
    element_and = and_expr

    def _junction(self, c: list[Any], kind: Callable[..., T]) -> T | _Invalid:
        operands = [x for x in c if not isinstance(x, Token)]
        if any(isinstance(x, _Invalid) for x in operands):
            return _Invalid(_span(c))
        return kind(tuple(operands), _span(c))

    def compare(self, c: list[Any]) -> ast.Compare | _Invalid:
        if isinstance(c[2], _Invalid):
            return _Invalid(_span(c))
        node = ast.Compare(self._path(c[0]), c[1], c[2], _span(c))
        if node.value.value is None and node.op != "!=":
            # `x != null` is true exactly when x has a value (different kinds are unequal);
            # every other comparison with null is false whatever x holds.
            hint = f"write `missing {node.path.text}`" if node.op == "==" else "compare with a value"
            _report(warning("W0010", f"`{node.path.text} {node.op} null` is never true", node.span, "never true",
                            f"a null field counts as missing, and a comparison with a missing field is false: {hint}"))
        return node

    def _list_values(self, lit: ast.ListLit) -> tuple[ast.Scalar, ...] | None:
        values = []
        for item in lit.items:
            if not isinstance(item, ast.Scalar):
                _report(error("E0020", "a list after `in` holds single values", item.span,
                              "a list or object here", "compare against strings, numbers, booleans or `null`"))
                return None
            values.append(item)
        return tuple(values)

    def _in_list(self, path_token: Token, lit: ast.ListLit, span: Span, negated: bool, any_element: bool) -> Any:
        values = self._list_values(lit)
        if values is None:
            return _Invalid(span)
        for value in values:
            if value.value is None:
                _report(warning("W0010", "`null` in a list never matches", value.span, "never matches",
                                "a null field counts as missing, and a missing field matches no list: "
                                "use `missing FIELD` for that case"))
        return ast.InList(self._path(path_token), values, negated, any_element, span)

    def in_list(self, c: list[Any]) -> Any:
        return self._in_list(c[0], c[2], _span(c), negated=False, any_element=False)

    def not_in_list(self, c: list[Any]) -> Any:
        return self._in_list(c[0], c[3], _span(c), negated=True, any_element=False)

    def any_in_list(self, c: list[Any]) -> Any:
        return self._in_list(c[1], c[3], _span(c), negated=False, any_element=True)

    def in_range(self, c: list[Any]) -> ast.InRange | _Invalid:
        low, high = c[2], c[4]
        if isinstance(low, _Invalid) or isinstance(high, _Invalid):
            return _Invalid(_span(c))
        return ast.InRange(self._path(c[0]), low, high, _span(c))

    def in_cidr(self, c: list[Any]) -> ast.InCidr | _Invalid:
        lit = c[3]
        span = _span(c)
        if isinstance(lit, _Invalid):
            return _Invalid(span)
        try:
            network = ipaddress.ip_network(lit.value, strict=True)
        except ValueError as exc:
            hint = "write a network address and prefix length, such as `10.0.0.0/8` or `fd00::/8`"
            try:
                loose = ipaddress.ip_network(lit.value, strict=False)
                hint = f"the host bits are set: did you mean `{loose}`?"
            except ValueError:
                pass
            problem = "host bits set" if "host bits" in str(exc) else "not a network"
            _report(error("E0013", f"invalid CIDR block `{lit.value}`", lit.span, problem, hint))
            return _Invalid(span)
        return ast.InCidr(self._path(c[0]), str(network), span)

    def is_null(self, c: list[Any]) -> ast.IsNull:
        return ast.IsNull(self._path(c[0]), _span(c))

    def regex_test(self, c: list[Any]) -> ast.RegexTest | _Invalid:
        # Between the quotes exactly as RE2 reads it: its backslashes are the pattern's own.
        pattern = ast.Scalar(str(c[3])[1:-1], tok_span(c[3]))
        problem = regex_problem(str(pattern.value))
        if problem is not None:
            _report(error("E0028", f"invalid regular expression: {problem}", pattern.span, "not a regular expression",
                          "the syntax is RE2's, which runs in linear time: no backreferences (`\\1`) and no "
                          "lookaround (`(?=...)`); repetition counts up to 1000"))
            return _Invalid(_span(c))
        return ast.RegexTest(self._path(c[0]), pattern, _span(c))

    def any_element(self, c: list[Any]) -> ast.AnyElement | _Invalid:
        condition = c[3]
        if isinstance(condition, _Invalid):
            return _Invalid(_span(c))
        return ast.AnyElement(self._path(c[1]), condition, _span(c))

    def exists(self, c: list[Any]) -> ast.Exists:
        return ast.Exists(self._path(c[1]), _span(c))

    def missing(self, c: list[Any]) -> ast.Missing:
        return ast.Missing(self._path(c[1]), _span(c))

    def string_test(self, c: list[Any]) -> ast.StringTest | _Invalid:
        if isinstance(c[2], _Invalid):
            return _Invalid(_span(c))
        return ast.StringTest(self._path(c[0]), c[1], c[2], _span(c))

    def contains(self, c: list[Any]) -> ast.Contains | _Invalid:
        if isinstance(c[2], _Invalid):
            return _Invalid(_span(c))
        node = ast.Contains(self._path(c[0]), c[2], _span(c))
        if node.value.value is None:
            _report(warning("W0010", f"`{node.path.text} contains null` is never true", node.span, "never true",
                            "a null in a list counts as no value: no list contains it, and no string does"))
        return node

    # -- routes and choices --------------------------------------------------------

    def on_clause(self, c: list[Any]) -> tuple[ast.EventPattern, ...]:
        patterns = []
        for token in c[1:]:
            if token.type != "IDENT":
                continue
            span = tok_span(token)
            patterns.append(ast.EventPattern(str(token), span))
        return tuple(patterns)

    def when_clause(self, c: list[Any]) -> Any:
        return c[1]

    def to_clause(self, c: list[Any]) -> tuple[ast.Delivery, ...]:
        return tuple(_nodes(c, ast.Delivery))

    def delivery(self, c: list[Any]) -> ast.Delivery:
        transform = c[1] if len(c) > 1 else None
        return ast.Delivery(self._name(c[0], "target"), transform, _span(c))

    def copy_field(self, c: list[Token]) -> ast.Path:
        return self._path(c[0])

    def default_field(self, c: list[Any]) -> ast.Default | _Invalid:
        path = self._path(c[0])
        if isinstance(c[2], _Invalid):
            return _Invalid(_span(c))
        # A chain is built from its end; the passes and the runtime walk it recursively.
        chained, inner = 1, c[2]
        while isinstance(inner, ast.Default) and chained <= MAX_FALLBACKS:
            chained, inner = chained + 1, inner.fallback
        if chained > MAX_FALLBACKS:
            _report(error("E0006", f"more than {MAX_FALLBACKS} `??` in a row", tok_span(c[1]), "too many",
                          "a value falls back to a few others at most: shorten the chain"))
            return _Invalid(_span(c))
        return ast.Default(path, c[2], _span(c))

    def template(self, c: list[Token]) -> ast.Template | _Invalid:
        span = tok_span(c[0])
        parts = decode_template(str(c[0]), span)
        return _Invalid(span) if parts is None else ast.Template(parts, span)

    def spread(self, c: list[Token]) -> ast.Spread:
        return ast.Spread(tok_span(c[0]))

    def transform_entry(self, c: list[Any]) -> ast.TransformEntry | _Invalid:
        key = self._key_name(c[0])
        if key is None or isinstance(c[2], _Invalid):
            return _Invalid(_span(c))
        return ast.TransformEntry(key, c[2], _span(c))

    def with_clause(self, c: list[Any]) -> ast.Transform:
        return c[1]  # type: ignore[no-any-return]

    def transform_object(self, c: list[Any]) -> ast.Transform:
        items = [x for x in c if isinstance(x, ast.TransformEntry | ast.Spread | _Invalid)]
        spreads = [x for x in items if isinstance(x, ast.Spread)]
        for item in spreads[1:]:
            _report(error("E0031", "`...` given twice in one object", item.span, "given again here",
                          "the event's fields are put in once: remove this `...`",
                          [Related(spreads[0].span, "first given here")]))
        spread = spreads[0] if spreads else None
        if spread is not None and items[0] is not spread:
            _report(error("E0031", "`...` comes first in its object", spread.span, "after a key",
                          "move `...` to the start: the keys written after it replace the event's fields "
                          "of the same name"))
            spread = None
        entries = _nodes(items, ast.TransformEntry)
        self._unique((e.key for e in entries), "key")
        return ast.Transform(tuple(entries), _span(c), spread)

    def route_decl(self, c: list[Any]) -> ast.RouteDecl:
        on = c[3]
        when = c[4] if len(c) == 7 else None
        to = c[-2]
        if isinstance(when, _Invalid):
            when = None
        return ast.RouteDecl(self._name(c[1], "route"), on, when, to, _span(c))

    def choice(self, c: list[Any]) -> ast.Branch:
        when = None if isinstance(c[1], _Invalid) else c[1]
        return ast.Branch(when, c[2], _span(c))

    def otherwise(self, c: list[Any]) -> ast.Branch:
        return ast.Branch(None, c[1], _span(c))

    def choose_decl(self, c: list[Any]) -> ast.ChooseDecl:
        branches = _nodes(c, ast.Branch)
        return ast.ChooseDecl(self._name(c[1], "choose"), c[3], tuple(branches), _span(c))

    # -- tests ---------------------------------------------------------------------

    def send(self, c: list[Any]) -> ast.Send:
        data = c[2] if len(c) > 2 else None
        return ast.Send(self._event_type(c[1]), data, _span(c))

    def expected(self, c: list[Token]) -> ast.Name:
        return self._name(c[0], "target")

    def expected_with(self, c: list[Any]) -> ast.ExpectedPayload:
        return ast.ExpectedPayload(self._name(c[0], "target"), c[-1], exact=False, span=_span(c))

    def expected_exactly(self, c: list[Any]) -> ast.ExpectedPayload:
        return ast.ExpectedPayload(self._name(c[0], "target"), c[-1], exact=True, span=_span(c))

    def expect_targets(self, c: list[Any]) -> ast.Expect:
        items = [x for x in c if isinstance(x, ast.Name | ast.ExpectedPayload)]
        names = [x if isinstance(x, ast.Name) else x.target for x in items]
        self._unique(names, "target")
        payloads = tuple(x for x in items if isinstance(x, ast.ExpectedPayload))
        return ast.Expect(tuple(names), _span(c), payloads)

    def expect_nothing(self, c: list[Any]) -> ast.Expect:
        return ast.Expect((), _span(c))

    def test_step(self, c: list[Any]) -> ast.TestStep:
        return ast.TestStep(c[0], c[1], _span(c))

    def emit_step(self, c: list[Any]) -> ast.TestStep:
        # then TARGET emits TYPE [object] expect
        data = c[4] if isinstance(c[4], ast.ObjectLit) else None
        send = ast.Send(self._event_type(c[3]), data, _span(c[:-1]), emitted_by=self._name(c[1], "target"))
        return ast.TestStep(send, c[-1], _span(c))

    def test_decl(self, c: list[Any]) -> ast.TestDecl:
        return ast.TestDecl(self._name(c[1], "test"), tuple(_nodes(c, ast.TestStep)), _span(c))

    # -- files ---------------------------------------------------------------------

    def import_decl(self, c: list[Any]) -> ast.Import | _Invalid:
        if isinstance(c[1], _Invalid):
            return _Invalid(_span(c))
        return ast.Import(c[1].value, _span(c))

    def start(self, c: list[Any]) -> list[Any]:
        return [x for x in c if not isinstance(x, _Invalid)]
