"""From what a parser read to the typed AST, checking literals on the way.

Both parsers build through the functions here: the fast path (`dsl/fast_parser.py`) and
Lark's LALR parser, whose reductions `dsl/builder.py` hands to them. Each takes what its
rule read (the text and span of a token, the nodes made already, the span of the whole)
and returns the node, so that both parsers build the same nodes with the same spans.

Literal checks live here because this is the one place that sees the raw text:
durations, numbers, string escapes, CIDR blocks, names of the wrong shape, unknown
types, options given twice, values outside an option's choices. A bad literal is
reported (into the `BuildContext` of the parse, `CURRENT`) and its option dropped, so
one mistake yields one diagnostic.
"""

from __future__ import annotations

import contextvars
import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import attrs

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


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{matches[0]}`?" if matches else None


@attrs.frozen(slots=True)
class Invalid:
    """Stands for a literal that was reported as wrong; its option is dropped."""

    span: Span


# An option of a block as read: its name, its value (or Invalid) and the span of the whole option.
Option = tuple[str, Any, Span]

# ---- literal decoding ------------------------------------------------------

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_INTEGER = re.compile(r"-?\d+\Z")
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


# ---- nodes: names and literals ------------------------------------------------


def name_node(text: str, span: Span, what: str) -> ast.Name:
    """A name where a plain one is needed (`what` says of what, in the message)."""
    if not _PLAIN_NAME.match(text):
        _report(error("E0015", f"`{text}` is not a valid {what} name", span, "not a plain name",
                      "names are letters, digits, `_` and `-`; dots are for event types and field paths"))
    return ast.Name(text, span)


def event_type_node(text: str, span: Span) -> ast.Name:
    if not _DOTTED_NAME.match(text):
        _report(error("E0015", f"`{text}` is not an event type", span, "globs are not allowed here",
                      "name one event type, such as `order.created`; globs belong in a route's `on`"))
    return ast.Name(text, span)


def path_node(text: str, span: Span) -> ast.Path:
    return path_of(text, span)[0]


def keyword_node(text: str, span: Span, option: str, choices: Sequence[str]) -> ast.Keyword | Invalid:
    if text not in choices:
        listed = ", ".join(f"`{c}`" for c in choices)
        hint = did_you_mean(text, choices)
        _report(error("E0016", f"`{text}` is not a valid `{option}`", span, f"expected one of {listed}",
                      hint or f"`{option}` is one of {listed}"))
        return Invalid(span)
    return ast.Keyword(text, span)


def string_node(raw: str, span: Span) -> ast.Scalar | Invalid:
    """A string token (quotes included)."""
    value = decode_string(raw, span)
    return Invalid(span) if value is None else ast.Scalar(value, span)


def number_node(text: str, span: Span) -> ast.Scalar | Invalid:
    value: int | float
    if len(text) > 40:  # beyond any 64-bit number (and Python's limit on int() of text)
        _report(error("E0012", "number is too large", span, f"{len(text)} characters",
                      "numbers must fit in a 64-bit float"))
        return Invalid(span)
    if _INTEGER.match(text):
        value = int(text)
    else:
        value = float(text)
        if value in (float("inf"), float("-inf")):
            _report(error("E0012", f"number `{text}` is too large", span, "out of range",
                          "numbers must fit in a 64-bit float"))
            return Invalid(span)
    return ast.Scalar(value, span)


def duration_node(text: str, span: Span) -> ast.Duration | Invalid:
    ms, problem = parse_duration(text)
    if ms is None:
        shown = text if len(text) <= 24 else text[:20] + "..."
        _report(error("E0011", f"invalid duration `{shown}`", span, "not a duration", problem))
        return Invalid(span)
    return ast.Duration(ms, text, span)


def list_node(items: Iterable[Any], span: Span) -> ast.ListLit:
    """A list literal of the literals read (those reported as wrong left out)."""
    return ast.ListLit(tuple(i for i in items if not isinstance(i, Invalid)), span)


def string_key(key: ast.Scalar | Invalid) -> ast.Name | None:
    """A key written as a string (`"a b": 1`), or None after reporting it."""
    if isinstance(key, ast.Scalar) and isinstance(key.value, str):
        if not key.value:
            _report(error("E0015", "a key cannot be empty", key.span, "empty key", "name the key: `order_id: id`"))
            return None
        return ast.Name(key.value, key.span)
    return None


def object_entry_node(key: ast.Name | None, value: Any, span: Span) -> ast.ObjectEntry | Invalid:
    if key is None or isinstance(value, Invalid):
        return Invalid(span)
    return ast.ObjectEntry(key, value, span)


def object_node(entries: Iterable[Any], span: Span) -> ast.ObjectLit:
    kept = [e for e in entries if isinstance(e, ast.ObjectEntry)]
    unique((e.key for e in kept), "key")
    return ast.ObjectLit(tuple(kept), span)


def unique(names: Iterable[ast.Name], what: str) -> None:
    """Reports every name given before (`what`: field, key, target)."""
    seen: dict[str, ast.Name] = {}
    for name in names:
        if name.text in seen:
            _report(error("E0019", f"{what} `{name.text}` given twice", name.span, "given again here",
                          f"each {what} may appear once", [Related(seen[name.text].span, "first given here")]))
        else:
            seen[name.text] = name


# ---- nodes: schemas ------------------------------------------------------------


def named_type_node(name: str, span: Span) -> ast.ScalarType:
    if name not in ast.SCALAR_TYPES:
        hint = did_you_mean(name, (*ast.SCALAR_TYPES, "list"))
        _report(error("E0014", f"unknown type `{name}`", span, "not a type",
                      hint or "types are `string`, `int`, `float`, `bool`, `timestamp`, `any`, "
                      "`list<T>` and `{ field: T }`"))
        return ast.ScalarType("any", span)
    return ast.ScalarType(name, span)


def quoted_field_name(text: str, span: Span) -> ast.Name | None:
    """A schema's field name written with backticks (the grammar's QPATH): one segment."""
    path = path_node(text, span)
    if len(path.parts) != 1:
        _report(error("E0015", f"`{text}` is a path, not a field name", path.span, "a path",
                      "declare the field in a nested object: `{ customer: { id: string } }`; "
                      "a name with a dot in it is quoted whole: `` `c.count`: int ``"))
        return None
    return ast.Name(path.parts[0], path.span)


def field_node(name: ast.Name | None, type_: ast.Type, optional: bool, span: Span) -> ast.Field | Invalid:
    if name is None:
        return Invalid(span)
    return ast.Field(name, type_, optional, span)


def object_type_node(fields: Iterable[Any], span: Span) -> ast.ObjectType:
    kept = [f for f in fields if isinstance(f, ast.Field)]
    unique((f.name for f in kept), "field")
    return ast.ObjectType(tuple(kept), span)


# ---- nodes: retry policies, dead letters, targets --------------------------------


def count_node(value: ast.Scalar | Invalid, option: str) -> ast.Count | Invalid:
    """A whole number option (`attempts`, `concurrency`)."""
    if isinstance(value, Invalid):
        return value
    text = CURRENT.get().source.text[value.span.start:value.span.end]
    if not isinstance(value.value, int):
        _report(error("E0012", f"`{option}` must be a whole number, not `{text}`", value.span,
                      "not a whole number", f"write `{option}` as a count such as `3`"))
        return Invalid(value.span)
    if value.value < 0:
        _report(error("E0012", f"`{option}` cannot be negative", value.span, "negative",
                      f"write `{option}` as a count such as `3`"))
        return Invalid(value.span)
    return ast.Count(value.value, value.span)


def fixed_backoff(delay: ast.Duration | Invalid, span: Span) -> Option:
    return "backoff", delay if isinstance(delay, Invalid) else ast.FixedBackoff(delay, span), span


def linear_backoff(initial: Any, step: Any, maximum: Any, span: Span) -> Option:
    if any(isinstance(p, Invalid) for p in (initial, step, maximum)):
        return "backoff", Invalid(span), span
    return "backoff", ast.LinearBackoff(initial, step, maximum, span), span


def exponential_backoff(initial: Any, factor: Any, maximum: Any, span: Span) -> Option:
    if any(isinstance(p, Invalid) for p in (initial, factor, maximum)):
        return "backoff", Invalid(span), span
    return "backoff", ast.ExponentialBackoff(initial, ast.Factor(float(factor.value), factor.span), maximum,
                                             span), span


def error_kinds(names: Iterable[tuple[str, Span]]) -> tuple[ast.Name, ...]:
    """The error kinds of `retry_on [...]` or `give_up_on [...]`: names, or HTTP kinds."""
    kinds = []
    for text, span in names:
        if text.startswith("http.") and not http.is_http_kind(text):
            known = [*http.HTTP_KINDS, "http.404", "http.429", "http.503"]
            hint = did_you_mean(text, known)
            _report(error("E0026", f"`{text}` is not an error kind of HTTP targets", span, "unknown HTTP kind",
                          hint or "HTTP kinds are `http.3xx`, `http.4xx`, `http.5xx`, a status such as "
                          "`http.404`, `http.timeout`, `http.connect`, `http.tls` and `http.protocol`"))
            kinds.append(ast.Name(text, span))
        elif text.startswith("http."):
            kinds.append(ast.Name(text, span))
        else:
            kinds.append(name_node(text, span, "error kind"))
    return tuple(kinds)


def option_table(options: Sequence[Option], block: str) -> dict[str, Any]:
    """Options of a block by name; a second occurrence is reported and ignored."""
    table: dict[str, Any] = {}
    first: dict[str, Span] = {}
    for name, value, span in options:
        if name in first:
            _report(error("E0017", f"`{name}` given twice in this {block}", span, "given again here",
                          "remove one of them", [Related(first[name], "first given here")]))
            continue
        first[name] = span
        if not isinstance(value, Invalid):
            table[name] = value
    return table


def retry_policy_node(name: ast.Name | None, options: dict[str, Any], span: Span) -> ast.RetryPolicy:
    """`retry NAME { ... }`, or an inline `retry { ... }` (`name` None), from its option table."""
    return ast.RetryPolicy(
        name=name,
        attempts=options.get("attempts"),
        backoff=options.get("backoff"),
        jitter=options.get("jitter"),
        retry_on=options.get("retry_on"),
        give_up_on=options.get("give_up_on"),
        deadline=options.get("deadline"),
        span=span,
    )


def env_node(name: ast.Scalar | Invalid, span: Span) -> ast.EnvRef | Invalid:
    if isinstance(name, Invalid):
        return name
    if not isinstance(name.value, str) or not http.ENV_NAME.match(name.value):
        _report(error("E0022", f"{name.value!r} is not an environment variable name", name.span,
                      "not a variable name", "a variable name is letters, digits and `_`, such as `PAYMENTS_URL`"))
        return Invalid(span)
    return ast.EnvRef(name.value, span)


def http_option(method: str, method_span: Span, url: ast.Scalar | ast.EnvRef | Invalid, span: Span) -> Option:
    """`http METHOD URL`."""
    checked_method = keyword_node(method, method_span, "http method", http.METHODS)
    if isinstance(url, ast.Scalar) and not _check_url(url):
        url = Invalid(url.span)
    if isinstance(checked_method, Invalid) or isinstance(url, Invalid):
        return "http", Invalid(span), span
    return "http", ast.HttpEndpoint(checked_method, url, span), span


def header_node(name: ast.Scalar | Invalid, value: ast.Scalar | ast.EnvRef | Invalid,
                span: Span) -> ast.Header | Invalid:
    if isinstance(name, Invalid) or isinstance(value, Invalid):
        return Invalid(span)
    text = str(name.value)
    if not http.HEADER_NAME.match(text):
        _report(error("E0023", f"{text!r} is not an HTTP header name", name.span, "not a header name",
                      "a header name is letters, digits and `-` (and a few marks: !#$%&'*+.^_`|~)"))
        return Invalid(span)
    if http.reserved_header(text):
        _report(error("E0024", f"header `{text}` is set by interlock", name.span, "set on every request",
                      "interlock writes `Content-Type`, `Content-Length`, `Host`, the CloudEvents `ce-*` "
                      "headers and its own `Interlock-*` itself: leave this one out"))
        return Invalid(span)
    if isinstance(value, ast.Scalar):
        if not http.FIELD_VALUE.match(str(value.value)):
            _report(error("E0023", f"the value of header `{text}` is not one HTTP allows", value.span,
                          "not a header value", "a header value is printable ASCII on one line, with no space "
                          "at either end"))
            return Invalid(span)
        if http.credential_header(text):
            _report(error("E0025", f"header `{text}` carries a credential written in the source", value.span,
                          "a secret in the source", f'read it from the environment: `"{text}": env("NAME")` '
                          "(a compiled artifact never holds a secret)"))
            return Invalid(span)
    return ast.Header(name, value, span)


def headers_option(headers: Iterable[Any], span: Span) -> Option:
    """`headers { ... }`: each header name once, whatever its case."""
    seen: dict[str, ast.Header] = {}
    for header in headers:
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


def target_node(name: str, name_span: Span, options: Sequence[Option], span: Span) -> ast.TargetDecl:
    table = option_table(options, "target")
    given = {option: where for option, _value, where in options}
    if "http" not in given:
        for option in ("headers", "format"):
            if option in given:
                _report(error("E0027", f"`{option}` on a target that is not an HTTP target", given[option],
                              "for HTTP targets only", "give the target an endpoint (`http POST \"https://...\"`) "
                              f"or remove `{option}`"))
                table.pop(option, None)
    return ast.TargetDecl(name_node(name, name_span, "target"), ast.TargetOptions(**table), span)


def defaults_node(options: Sequence[Option], span: Span) -> ast.DefaultsDecl:
    allowed = []
    for option in options:
        name, _value, where = option
        if name in ("order_by", "emits", "http"):
            shown = "order by" if name == "order_by" else name
            _report(error("E0018", f"`{shown}` cannot be a default", where, "not allowed in `defaults`",
                          f"`{shown}` belongs to one target: move it into that target's block"))
        else:
            allowed.append(option)
    return ast.DefaultsDecl(ast.TargetOptions(**option_table(allowed, "defaults block")), span)


# ---- nodes: predicates ------------------------------------------------------------
# A predicate's path is given as its text and span: it is read only once the rest of the
# predicate is known to be good, so that one mistake yields one diagnostic.


def group_node(inner: Any, span: Span) -> Any:
    """A parenthesised expression, its span widened to the parentheses, so that the
    source text of an enclosing `not (...)` or `and` is balanced."""
    if isinstance(inner, Invalid):
        return inner
    return attrs.evolve(inner, span=span)


def not_node(operand: Any, span: Span) -> ast.Not | Invalid:
    if isinstance(operand, Invalid):
        return Invalid(span)
    return ast.Not(operand, span)


def junction_node(operands: Sequence[Any], span: Span, kind: Callable[..., T]) -> T | Invalid:
    """`and` or `or` (`kind`) of the operands."""
    for operand in operands:
        if isinstance(operand, Invalid):
            return Invalid(span)
    return kind(tuple(operands), span)


def compare_node(path: str, path_span: Span, op: str, value: ast.Scalar | Invalid,
                 span: Span) -> ast.Compare | Invalid:
    if isinstance(value, Invalid):
        return Invalid(span)
    node = ast.Compare(path_node(path, path_span), op, value, span)
    if node.value.value is None and node.op != "!=":
        # `x != null` is true exactly when x has a value (different kinds are unequal);
        # every other comparison with null is false whatever x holds.
        hint = f"write `missing {node.path.text}`" if node.op == "==" else "compare with a value"
        _report(warning("W0010", f"`{node.path.text} {node.op} null` is never true", node.span, "never true",
                        f"a null field counts as missing, and a comparison with a missing field is false: {hint}"))
    return node


def _list_values(lit: ast.ListLit) -> tuple[ast.Scalar, ...] | None:
    values = []
    for item in lit.items:
        if not isinstance(item, ast.Scalar):
            _report(error("E0020", "a list after `in` holds single values", item.span,
                          "a list or object here", "compare against strings, numbers, booleans or `null`"))
            return None
        values.append(item)
    return tuple(values)


def in_list_node(path: str, path_span: Span, lit: ast.ListLit, span: Span, negated: bool,
                 any_element: bool) -> ast.InList | Invalid:
    """`path in [...]`, `path not in [...]` (`negated`), `any path in [...]` (`any_element`)."""
    values = _list_values(lit)
    if values is None:
        return Invalid(span)
    for value in values:
        if value.value is None:
            _report(warning("W0010", "`null` in a list never matches", value.span, "never matches",
                            "a null field counts as missing, and a missing field matches no list: "
                            "use `missing FIELD` for that case"))
    return ast.InList(path_node(path, path_span), values, negated, any_element, span)


def in_range_node(path: str, path_span: Span, low: ast.Scalar | Invalid, high: ast.Scalar | Invalid,
                  span: Span) -> ast.InRange | Invalid:
    if isinstance(low, Invalid) or isinstance(high, Invalid):
        return Invalid(span)
    return ast.InRange(path_node(path, path_span), low, high, span)


def in_cidr_node(path: str, path_span: Span, lit: ast.Scalar | Invalid, span: Span) -> ast.InCidr | Invalid:
    if isinstance(lit, Invalid):
        return Invalid(span)
    try:
        network = ipaddress.ip_network(lit.value, strict=True)  # type: ignore[arg-type]
    except ValueError as exc:
        hint = "write a network address and prefix length, such as `10.0.0.0/8` or `fd00::/8`"
        try:
            loose = ipaddress.ip_network(lit.value, strict=False)  # type: ignore[arg-type]
            hint = f"the host bits are set: did you mean `{loose}`?"
        except ValueError:
            pass
        problem = "host bits set" if "host bits" in str(exc) else "not a network"
        _report(error("E0013", f"invalid CIDR block `{lit.value}`", lit.span, problem, hint))
        return Invalid(span)
    return ast.InCidr(path_node(path, path_span), str(network), span)


def regex_node(path: str, path_span: Span, raw: str, raw_span: Span, span: Span) -> ast.RegexTest | Invalid:
    """`path matches regex "..."`: `raw` the string token, whose backslashes are the pattern's
    own (RE2 reads it between the quotes exactly as written)."""
    pattern = ast.Scalar(raw[1:-1], raw_span)
    problem = regex_problem(str(pattern.value))
    if problem is not None:
        _report(error("E0028", f"invalid regular expression: {problem}", pattern.span, "not a regular expression",
                      "the syntax is RE2's, which runs in linear time: no backreferences (`\\1`) and no "
                      "lookaround (`(?=...)`); repetition counts up to 1000"))
        return Invalid(span)
    return ast.RegexTest(path_node(path, path_span), pattern, span)


def any_element_node(path: str, path_span: Span, condition: Any, span: Span) -> ast.AnyElement | Invalid:
    if isinstance(condition, Invalid):
        return Invalid(span)
    return ast.AnyElement(path_node(path, path_span), condition, span)


def string_test_node(path: str, path_span: Span, op: str, value: ast.Scalar | Invalid,
                     span: Span) -> ast.StringTest | Invalid:
    if isinstance(value, Invalid):
        return Invalid(span)
    return ast.StringTest(path_node(path, path_span), op, value, span)


def contains_node(path: str, path_span: Span, value: ast.Scalar | Invalid, span: Span) -> ast.Contains | Invalid:
    if isinstance(value, Invalid):
        return Invalid(span)
    node = ast.Contains(path_node(path, path_span), value, span)
    if node.value.value is None:
        _report(warning("W0010", f"`{node.path.text} contains null` is never true", node.span, "never true",
                        "a null in a list counts as no value: no list contains it, and no string does"))
    return node


# ---- nodes: transforms ----------------------------------------------------------------


def default_node(path: str, path_span: Span, fallback: Any, operator_span: Span, span: Span) -> ast.Default | Invalid:
    """`path ?? fallback`; `operator_span` is that of the `??`."""
    checked = path_node(path, path_span)
    if isinstance(fallback, Invalid):
        return Invalid(span)
    # A chain is built from its end; the passes and the runtime walk it recursively.
    chained, inner = 1, fallback
    while isinstance(inner, ast.Default) and chained <= MAX_FALLBACKS:
        chained, inner = chained + 1, inner.fallback
    if chained > MAX_FALLBACKS:
        _report(error("E0006", f"more than {MAX_FALLBACKS} `??` in a row", operator_span, "too many",
                      "a value falls back to a few others at most: shorten the chain"))
        return Invalid(span)
    return ast.Default(checked, fallback, span)


def template_node(raw: str, span: Span) -> ast.Template | Invalid:
    parts = decode_template(raw, span)
    return Invalid(span) if parts is None else ast.Template(parts, span)


def transform_entry_node(key: ast.Name | None, value: Any, span: Span) -> ast.TransformEntry | Invalid:
    if key is None or isinstance(value, Invalid):
        return Invalid(span)
    return ast.TransformEntry(key, value, span)


def transform_node(items: Sequence[Any], span: Span) -> ast.Transform:
    """`{ ... }` of a `with`: its entries and `...` (first, once), each key once."""
    items = [x for x in items if isinstance(x, ast.TransformEntry | ast.Spread | Invalid)]
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
    entries = [x for x in items if isinstance(x, ast.TransformEntry)]
    unique((e.key for e in entries), "key")
    return ast.Transform(tuple(entries), span, spread)
