"""The typed AST of the `.route` language.

Frozen `attrs` classes, one per construct, each with the `Span` it came from. Nothing
of Lark leaves `dsl/`: the compiler and the tools see only these classes. Values a
user wrote as literals keep their Python form (`Scalar.value` is a `str`, `int`,
`float`, `bool` or `None`); durations are whole milliseconds.
"""

from __future__ import annotations

import re
from typing import TypeAlias

import attrs

from .source import Span

ScalarValue: TypeAlias = str | int | float | bool | None
Value: TypeAlias = ScalarValue | list["Value"] | dict[str, "Value"]


# ---- names and values ------------------------------------------------------


@attrs.frozen(slots=True)
class Name:
    """A reference to, or the definition of, a named thing (`billing`, `order.created`)."""

    text: str
    span: Span


@attrs.frozen(slots=True)
class Path:
    """A field path into an event's data: `customer.tier` is ("customer", "tier")."""

    parts: tuple[str, ...]
    span: Span
    # Where each part is written, [start, end) from the span's start; None when the path is
    # written plainly, its parts joined by dots (backticks make the two differ).
    written: tuple[tuple[int, int], ...] | None = attrs.field(default=None, eq=False)

    def part_span(self, index: int) -> Span:
        """The source of one part (one token: no spaces around the dots)."""
        if self.written is not None:
            start, end = self.written[index]
        else:
            start = sum(len(p) + 1 for p in self.parts[:index])
            end = start + len(self.parts[index])
        return self.span._replace(start=self.span.start + start, end=self.span.start + end,
                                  column=self.span.column + start, end_column=self.span.column + end)

    def prefix(self, length: int) -> str:
        """The first `length` parts, as written in a `.route` file."""
        return Path(self.parts[:length], self.span).text

    @property
    def text(self) -> str:
        """As written in a `.route` file: a segment that is not a plain name in backticks."""
        return ".".join(part if (_PLAIN_FIRST if i == 0 else _PLAIN_SEGMENT).fullmatch(part) else quote_segment(part)
                        for i, part in enumerate(self.parts))


_PLAIN_FIRST = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")


def quote_segment(part: str) -> str:
    """A path segment in backticks, with its backslashes and backticks escaped."""
    return "`" + part.replace("\\", "\\\\").replace("`", "\\`") + "`"


@attrs.frozen(slots=True)
class EventPattern:
    """An event type, or a glob over event types (`order.*`, `payment.**`)."""

    text: str
    span: Span

    @property
    def is_glob(self) -> bool:
        return "*" in self.text


@attrs.frozen(slots=True)
class Scalar:
    value: ScalarValue
    span: Span


@attrs.frozen(slots=True)
class ListLit:
    items: tuple[Literal, ...]
    span: Span


@attrs.frozen(slots=True)
class ObjectEntry:
    key: Name
    value: Literal
    span: Span


@attrs.frozen(slots=True)
class ObjectLit:
    entries: tuple[ObjectEntry, ...]
    span: Span


Literal: TypeAlias = Scalar | ListLit | ObjectLit


def to_python(literal: Literal) -> Value:
    """The plain Python value of a literal (what an event's data would hold)."""
    if isinstance(literal, Scalar):
        return literal.value
    if isinstance(literal, ListLit):
        return [to_python(item) for item in literal.items]
    return {entry.key.text: to_python(entry.value) for entry in literal.entries}


@attrs.frozen(slots=True)
class Duration:
    ms: int
    text: str
    span: Span


@attrs.frozen(slots=True)
class Count:
    """A whole number option value (`attempts 5`, `concurrency 8`)."""

    value: int
    span: Span


@attrs.frozen(slots=True)
class Factor:
    value: float
    span: Span


@attrs.frozen(slots=True)
class Keyword:
    """An option value from a closed set (`mode async`, `jitter full`, `on_exhausted drop`)."""

    value: str
    span: Span


# ---- event schemas ---------------------------------------------------------

SCALAR_TYPES = ("string", "int", "float", "bool", "timestamp", "any")


@attrs.frozen(slots=True)
class ScalarType:
    name: str  # one of SCALAR_TYPES
    span: Span


@attrs.frozen(slots=True)
class ListType:
    item: Type
    span: Span


@attrs.frozen(slots=True)
class Field:
    name: Name
    type: Type
    optional: bool
    span: Span


@attrs.frozen(slots=True)
class ObjectType:
    fields: tuple[Field, ...]
    span: Span


Type: TypeAlias = ScalarType | ListType | ObjectType


@attrs.frozen(slots=True)
class EventDecl:
    """`event order.created { ... }`; `schema` is None for a declared but open event."""

    name: Name
    schema: ObjectType | None
    span: Span


# ---- retry policies, dead letters, targets ---------------------------------


@attrs.frozen(slots=True)
class FixedBackoff:
    delay: Duration
    span: Span


@attrs.frozen(slots=True)
class LinearBackoff:
    initial: Duration
    step: Duration
    max: Duration | None
    span: Span


@attrs.frozen(slots=True)
class ExponentialBackoff:
    initial: Duration
    factor: Factor
    max: Duration | None
    span: Span


Backoff: TypeAlias = FixedBackoff | LinearBackoff | ExponentialBackoff


@attrs.frozen(slots=True)
class RetryPolicy:
    """`retry NAME { ... }`, or an inline `retry { ... }` in a target (`name` None)."""

    name: Name | None
    attempts: Count | None
    backoff: Backoff | None
    jitter: Keyword | None
    retry_on: tuple[Name, ...] | None
    give_up_on: tuple[Name, ...] | None
    deadline: Duration | None
    span: Span


@attrs.frozen(slots=True)
class DeadLetterDecl:
    name: Name
    retain: Duration | None
    span: Span


@attrs.frozen(slots=True)
class EnvRef:
    """`env("NAME")`: a value read from the environment variable NAME when the router starts."""

    name: str
    span: Span


@attrs.frozen(slots=True)
class HttpEndpoint:
    """`http METHOD URL`: the target is an HTTP endpoint; the URL a string or `env(...)`."""

    method: Keyword
    url: Scalar | EnvRef
    span: Span


@attrs.frozen(slots=True)
class Header:
    """One entry of `headers { "NAME": VALUE }`; the value a string or `env(...)`."""

    name: Scalar
    value: Scalar | EnvRef
    span: Span


@attrs.frozen(slots=True)
class TargetOptions:
    """The options of a target or of `defaults`; None where not given."""

    mode: Keyword | None = None
    retry: Name | RetryPolicy | None = None
    dead_letter: Name | None = None
    timeout: Duration | None = None
    concurrency: Count | None = None
    order_by: Path | None = None
    emits: tuple[Name, ...] | None = None
    on_exhausted: Keyword | None = None
    http: HttpEndpoint | None = None
    headers: tuple[Header, ...] | None = None
    format: Keyword | None = None
    retry_on: tuple[Name, ...] | None = None  # a target's own: in place of its policy's
    give_up_on: tuple[Name, ...] | None = None


@attrs.frozen(slots=True)
class TargetDecl:
    name: Name
    options: TargetOptions
    span: Span


@attrs.frozen(slots=True)
class DefaultsDecl:
    options: TargetOptions
    span: Span


@attrs.frozen(slots=True)
class UnroutedDecl:
    dead_letter: Name
    span: Span


# ---- predicates ------------------------------------------------------------


@attrs.frozen(slots=True)
class Compare:
    """`path OP value` with OP one of == != < <= > >=."""

    path: Path
    op: str
    value: Scalar
    span: Span


@attrs.frozen(slots=True)
class InList:
    """`path in [...]`, `path not in [...]`, and `any path in [...]` (`quantifier` "any")."""

    path: Path
    values: tuple[Scalar, ...]
    negated: bool
    any_element: bool
    span: Span


@attrs.frozen(slots=True)
class InRange:
    """`path in low..high`, both ends included."""

    path: Path
    low: Scalar
    high: Scalar
    span: Span


@attrs.frozen(slots=True)
class InCidr:
    path: Path
    cidr: str  # normalised network, as `ipaddress.ip_network` prints it
    span: Span


@attrs.frozen(slots=True)
class Exists:
    path: Path
    span: Span


@attrs.frozen(slots=True)
class Missing:
    path: Path
    span: Span


@attrs.frozen(slots=True)
class IsNull:
    """`path is null`: the path reaches a `null` that is present (a missing field is not)."""

    path: Path
    span: Span


@attrs.frozen(slots=True)
class StringTest:
    """`path OP "text"` with OP one of startswith endswith matches equals_ignore_case
    startswith_ignore_case endswith_ignore_case."""

    path: Path
    op: str
    value: Scalar
    span: Span


@attrs.frozen(slots=True)
class Contains:
    """Substring test on a string, membership test on a list."""

    path: Path
    value: Scalar
    span: Span


@attrs.frozen(slots=True)
class RegexTest:
    """`path matches regex "re"`: the whole string matches the RE2 expression."""

    path: Path
    value: Scalar
    span: Span


@attrs.frozen(slots=True)
class AnyElement:
    """`any path { expr }`: one element of the list at `path` satisfies `expr`, whose paths
    start at that element."""

    path: Path
    condition: Expr
    span: Span


@attrs.frozen(slots=True)
class Not:
    operand: Expr
    span: Span


@attrs.frozen(slots=True)
class And:
    operands: tuple[Expr, ...]
    span: Span


@attrs.frozen(slots=True)
class Or:
    operands: tuple[Expr, ...]
    span: Span


Predicate: TypeAlias = (Compare | InList | InRange | InCidr | Exists | Missing | IsNull | StringTest | RegexTest
                        | Contains | AnyElement)
Expr: TypeAlias = Predicate | Not | And | Or


# ---- routes and choices ----------------------------------------------------


@attrs.frozen(slots=True)
class Template:
    """`f"order {id} for {customer.id}"`: text (`str` parts, escapes and `{{` `}}` decoded)
    and the paths whose values are put in its place."""

    parts: tuple[str | Path, ...]
    span: Span


@attrs.frozen(slots=True)
class Default:
    """`path ?? fallback`: the value the path copies, or the fallback when it has none."""

    path: Path
    fallback: TransformValue
    span: Span


@attrs.frozen(slots=True)
class Spread:
    """`...` in a transform's object: the fields of the event's data, under the object's own keys."""

    span: Span


@attrs.frozen(slots=True)
class TransformEntry:
    """`key: value` in a `with { }`: a copied field, a default, a template, a constant, or a
    nested object."""

    key: Name
    value: TransformValue
    span: Span


@attrs.frozen(slots=True)
class Transform:
    entries: tuple[TransformEntry, ...]
    span: Span
    spread: Spread | None = None


TransformValue: TypeAlias = Path | Default | Template | Scalar | ListLit | Transform


@attrs.frozen(slots=True)
class Delivery:
    """One target of a `to` clause, with what it receives."""

    target: Name
    transform: Transform | None
    span: Span


@attrs.frozen(slots=True)
class RouteDecl:
    name: Name
    on: tuple[EventPattern, ...]
    when: Expr | None
    to: tuple[Delivery, ...]
    span: Span


@attrs.frozen(slots=True)
class Branch:
    """One arm of a `choose`; `when` is None for `otherwise`."""

    when: Expr | None
    to: tuple[Delivery, ...]
    span: Span


@attrs.frozen(slots=True)
class ChooseDecl:
    name: Name
    on: tuple[EventPattern, ...]
    branches: tuple[Branch, ...]
    span: Span


# ---- tests -----------------------------------------------------------------


@attrs.frozen(slots=True)
class Send:
    """`send TYPE { ... }`, or `then TARGET emits TYPE { ... }` (`emitted_by` the target)."""

    event_type: Name
    data: ObjectLit | None
    span: Span
    emitted_by: Name | None = None


@attrs.frozen(slots=True)
class ExpectedPayload:
    """`TARGET with { ... }` in an `expect`: fields the target receives (`exact`: its whole payload)."""

    target: Name
    data: ObjectLit
    exact: bool
    span: Span


@attrs.frozen(slots=True)
class Expect:
    """The exact set of targets expected, empty for `expect nothing`, and what some of them receive."""

    targets: tuple[Name, ...]
    span: Span
    payloads: tuple[ExpectedPayload, ...] = ()


@attrs.frozen(slots=True)
class TestStep:
    __test__ = False  # not a pytest test class

    send: Send
    expect: Expect
    span: Span


@attrs.frozen(slots=True)
class TestDecl:
    __test__ = False  # not a pytest test class

    name: Name
    steps: tuple[TestStep, ...]
    span: Span


# ---- files -----------------------------------------------------------------


@attrs.frozen(slots=True)
class Import:
    path: str
    span: Span


Decl: TypeAlias = (
    Import | EventDecl | RetryPolicy | DeadLetterDecl | TargetDecl | DefaultsDecl | UnroutedDecl | RouteDecl
    | ChooseDecl | TestDecl
)


@attrs.frozen(slots=True)
class Module:
    """One parsed `.route` file.

    After a syntax error, the declaration around it is left out of `decls`; the name it
    was defining, if it got that far, is in `broken`, so that references to it are not
    reported as undefined on top of the syntax error.
    """

    path: str
    decls: tuple[Decl, ...]
    broken: tuple[str, ...] = ()
