"""The artifact's format, as types: msgspec Structs of everything `interlock compile`
writes, which runtime/artifact_check.py decodes an artifact into.

A Struct says each field's type, which fields are required, the enumerations, and, by
its tag, which kind of predicate, route or anchor an object is. What a type cannot say
of one object is its `check` method, which raises FormatError naming the field (a CIDR
block that does not parse, a number a float cannot hold). What depends on the whole
artifact (indexes in range, names that exist, nesting) is artifact_check.py's.

Maps from names (targets, dead letters, events, a transform's keys, the types' tables)
are `dict[str, Any]` here and walked by artifact_check.py, so that a problem's place
names its key.

A new predicate kind: one Struct in "Predicates", with its `op` as the tag, its fields,
`nested` when it holds predicates, and a `check` when it has an invariant; then its name
in `Predicate`. runtime/predicates.py documents the same JSON.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

from msgspec import Meta, Struct

from .regex import full_match

_LARGEST = sys.float_info.max


class FormatError(Exception):
    """A problem in an artifact: `where` (`dispatch.rules[3].route`), and what is wrong."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where = where
        self.problem = problem

    def within(self, outer: str) -> FormatError:
        """The same problem, its place given from `outer` (a place with this one inside)."""
        joined = outer + self.where if not self.where or self.where.startswith("[") else f"{outer}.{self.where}"
        return FormatError(joined, self.problem)


def shown(value: Any) -> str:
    """A value as a message shows it: null, true and false as in JSON, the others as Python
    writes them, cut short."""
    if value is None or type(value) is bool:
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_number(value: Any, where: str = "") -> None:
    """A number must be one a 64-bit float holds (not NaN, not infinite): what the
    language's numbers are, and what the runtime's comparisons can take."""
    t = type(value)
    if (t is float or t is int) and not -_LARGEST <= value <= _LARGEST:
        raise FormatError(where, f"expected a number a 64-bit float holds, got {shown(value)}")


def check_numbers(values: Sequence[Any], where: str, suffix: str = "") -> None:
    """`check_number` on each of `values`, at `where[N]suffix`."""
    for number, value in enumerate(values):
        t = type(value)
        if (t is float or t is int) and not -_LARGEST <= value <= _LARGEST:
            check_number(value, f"{where}[{number}]{suffix}")


Index = Annotated[int, Meta(ge=0)]  # (in range: checked by artifact_check.py)
Count = Annotated[int, Meta(ge=1)]
MAX_CONCURRENCY = 10_000  # deliveries in flight to one target in one instance, each holding a worker
Millis = Annotated[int, Meta(ge=0)]
FieldPath = Annotated[list[str], Meta(min_length=1)]
Number = int | float
Scalar = str | int | float | bool | None
Key = str | int | float | bool  # a value an index looks up


# ---- predicates ----------------------------------------------------------------------


class Node(Struct, tag_field="op", gc=False):
    """Every predicate: its source text and [line, column], for `explain`."""

    #: The field that holds the predicates inside this one (a list of them, or one), if any.
    nested: ClassVar[str | None] = None

    text: str
    at: tuple[int, int]

    def check(self) -> None:
        """Raise FormatError when a value breaks an invariant of this kind."""


class And(Node, tag="and"):
    nested = "args"
    args: Annotated[list[Predicate], Meta(min_length=1)]


class Or(Node, tag="or"):
    nested = "args"
    args: Annotated[list[Predicate], Meta(min_length=1)]


class Not(Node, tag="not"):
    nested = "arg"
    arg: Predicate


class Leaf(Node):
    path: FieldPath


class Compare(Leaf, tag="cmp"):
    cmp: Literal["==", "!=", "<", "<=", ">", ">="]
    value: Scalar
    timestamp: bool = False

    def check(self) -> None:
        check_number(self.value, "value")


class InList(Leaf, tag="in"):
    values: list[Scalar]
    negated: bool
    timestamp: bool = False

    def check(self) -> None:
        check_numbers(self.values, "values")


class InRange(Leaf, tag="range"):
    low: Number
    high: Number

    def check(self) -> None:
        check_number(self.low, "low")
        check_number(self.high, "high")


class InCidr(Leaf, tag="cidr"):
    network: str

    def check(self) -> None:
        try:
            ipaddress.ip_network(self.network)
        except ValueError as exc:
            raise FormatError("network", f"expected a CIDR block such as '10.0.0.0/8', got {shown(self.network)} "
                                         f"({exc})") from None


class Exists(Leaf, tag="exists"):
    pass


class Missing(Leaf, tag="missing"):
    pass


class IsNull(Leaf, tag="null"):
    pass


class StringTest(Leaf, tag="str"):
    test: Literal["startswith", "endswith", "matches", "equals_ignore_case", "startswith_ignore_case",
                  "endswith_ignore_case"]
    value: str


class Regex(Leaf, tag="regex"):
    value: str

    def check(self) -> None:
        try:
            full_match(self.value)
        except Exception as exc:  # (RE2 raises its own error type, and UnicodeEncodeError)
            raise FormatError("value", f"expected a regular expression RE2 takes, got {shown(self.value)} "
                                       f"({exc})") from None


class AnyElement(Leaf, tag="any"):
    nested = "arg"
    arg: Predicate


class Contains(Leaf, tag="contains"):
    value: Scalar

    def check(self) -> None:
        check_number(self.value, "value")


Predicate: TypeAlias = (And | Or | Not | Compare | InList | InRange | InCidr | Exists | Missing | IsNull | StringTest
                        | Regex | Contains | AnyElement)


# ---- routes, rules, tables -----------------------------------------------------------


class Delivery(Struct, gc=False):
    target: str
    transform: dict[str, Any] | None


class Header(Struct, tag_field="kind", gc=False):
    """A route or a choose: its name, the event types it takes, where it is written."""

    name: str
    on: list[str]
    file: str
    line: int
    column: int


class Route(Header, tag="route"):
    when: Predicate | None
    deliveries: list[Delivery]


class Branch(Struct, gc=False):
    when: Predicate | None
    deliveries: list[Delivery]


class Choose(Header, tag="choose"):
    branches: Annotated[list[Branch], Meta(min_length=1)]


class Anchor(Struct, tag_field="kind", gc=False):
    """What a rule's index entries were made from (compiler/tables.py)."""

    path: FieldPath

    def check(self) -> None:
        """Raise FormatError when a value breaks an invariant of this kind."""


class EqAnchor(Anchor, tag="eq"):
    values: list[Key]

    def check(self) -> None:
        check_numbers(self.values, "values")


class PrefixAnchor(Anchor, tag="prefix"):
    prefix: str


class FoldedAnchor(Anchor, tag="folded"):
    prefix: str  # case-folded


class RangeAnchor(Anchor, tag="range"):
    low: Number | None
    high: Number | None
    low_inclusive: bool
    high_inclusive: bool

    def check(self) -> None:
        check_number(self.low, "low")
        check_number(self.high, "high")


class Rule(Struct, gc=False):
    route: Index
    branch: Index | None
    check: list[Predicate]
    anchor: EqAnchor | PrefixAnchor | FoldedAnchor | RangeAnchor | None = None


class FieldIndex(Struct, gc=False):
    path: FieldPath
    eq: list[tuple[Key, Index]]  # (value, rule)
    prefix: list[tuple[str, Index]]  # (prefix, rule)
    range: list[tuple[Number | None, bool, Number | None, bool, Index]]  # (low, inclusive, high, inclusive, rule)
    folded: list[tuple[str, Index]] = []  # (case-folded prefix, rule); only where there is one


class Table(Struct, gc=False):
    unconditional: list[tuple[Index, Index | None]]  # (route, branch)
    index: list[FieldIndex]
    scan: list[Index]  # rules


class Dispatch(Struct, gc=False):
    routes: list[Route | Choose]
    rules: list[Rule]
    unconditional: list[tuple[Index, Index | None]]  # (route, branch)
    types: dict[str, Any]  # event type -> table
    tables: list[Table]


# ---- targets, dead letters, the artifact ---------------------------------------------


class Backoff(Struct, gc=False):
    kind: Literal["fixed", "linear", "exponential"]
    initial_ms: Millis
    step_ms: Millis
    factor: Number
    max_ms: Millis | None


class Policy(Struct, gc=False):
    name: str | None
    attempts: Count
    backoff: Backoff
    jitter: Literal["none", "full", "equal"]
    retry_on: list[str] | None
    give_up_on: list[str]
    deadline_ms: Millis | None


class Text(Struct, gc=False):
    """A URL or header value: `{"value": TEXT}` or `{"env": NAME}`."""

    value: str | None = None
    env: Annotated[str, Meta(min_length=1)] | None = None

    def check(self) -> None:
        if (self.value is None) == (self.env is None):
            raise FormatError("", 'expected {"value": TEXT} or {"env": NAME}')


class Http(Struct, gc=False):
    method: Literal["POST", "PUT", "PATCH"]
    url: Text
    headers: list[tuple[str, Text]]
    format: Literal["binary", "structured"]

    def check(self) -> None:
        for where, text in [("url", self.url), *((f"headers[{n}][1]", h[1]) for n, h in enumerate(self.headers))]:
            try:
                text.check()
            except FormatError as exc:
                raise exc.within(where) from None


class Target(Struct, gc=False):
    mode: Literal["async", "sync"]
    retry: Policy
    dead_letter: str | None
    timeout_ms: Count
    concurrency: Annotated[int, Meta(ge=1, le=MAX_CONCURRENCY)]
    order_by: FieldPath | None
    emits: list[str]
    on_exhausted: Literal["dead_letter", "drop"]
    http: Http | None
    at: tuple[str, int, int]

    def check(self) -> None:
        policy, backoff = self.retry, self.retry.backoff
        for where, value in [("timeout_ms", self.timeout_ms), ("concurrency", self.concurrency),
                             ("retry.attempts", policy.attempts), ("retry.deadline_ms", policy.deadline_ms),
                             ("retry.backoff.initial_ms", backoff.initial_ms),
                             ("retry.backoff.step_ms", backoff.step_ms), ("retry.backoff.factor", backoff.factor),
                             ("retry.backoff.max_ms", backoff.max_ms)]:
            check_number(value, where)
        if self.http is not None:
            try:
                self.http.check()
            except FormatError as exc:
                raise exc.within("http") from None


class DeadLetter(Struct, gc=False):
    retain_ms: Millis | None

    def check(self) -> None:
        check_number(self.retain_ms, "retain_ms")


class Artifact(Struct, gc=False):
    """The artifact, less `format`, `version` and `integrity` (runtime/artifact.py's)."""

    source_hash: str
    targets: dict[str, Any]  # name -> Target
    dead_letters: dict[str, Any]  # name -> DeadLetter
    events: dict[str, Any]  # type -> its schema, or null
    dispatch: Dispatch
    unrouted: str | None = None  # the dead letter of unrouted events
