"""Lark's reductions to the typed AST: the rule callbacks of the LALR parser.

`Builder` is run by the LALR parser itself (Lark's inline transformer), so no parse
tree is ever built. Each method receives its rule's children, keywords and punctuation
included (`keep_all_tokens`), which is what gives every node a span from its first
token to its last. What a node is, and what is wrong with it, is `transform.py`'s: each
method hands the texts and spans of its tokens, and the nodes made already, to the
function there that makes the node.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar, cast

import attrs
from lark import Token, Transformer

from . import ast, http, transform
from .source import Span
from .transform import CURRENT, Invalid, Option

T = TypeVar("T")


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


def _not_tokens(children: Iterable[Any]) -> list[Any]:
    return [c for c in children if not isinstance(c, Token)]


@attrs.frozen(slots=True)
class _NameList:
    tokens: tuple[Token, ...]
    span: Span


class Builder(Transformer[Token, Any]):
    """Rule callbacks for the LALR parser: children in, AST nodes out."""

    # -- names -----------------------------------------------------------------

    def _name(self, token: Token, what: str) -> ast.Name:
        return transform.name_node(str(token), tok_span(token), what)

    def _event_type(self, token: Token) -> ast.Name:
        return transform.event_type_node(str(token), tok_span(token))

    def _path(self, token: Token) -> ast.Path:
        return transform.path_node(str(token), tok_span(token))

    def _keyword(self, token: Token, option: str, choices: Sequence[str]) -> ast.Keyword | Invalid:
        return transform.keyword_node(str(token), tok_span(token), option, choices)

    # -- literals ----------------------------------------------------------------

    def string(self, c: list[Token]) -> ast.Scalar | Invalid:
        return transform.string_node(str(c[0]), tok_span(c[0]))

    def number(self, c: list[Token]) -> ast.Scalar | Invalid:
        return transform.number_node(str(c[0]), tok_span(c[0]))

    def duration(self, c: list[Token]) -> ast.Duration | Invalid:
        return transform.duration_node(str(c[0]), tok_span(c[0]))

    def true(self, c: list[Token]) -> ast.Scalar:
        return ast.Scalar(True, tok_span(c[0]))

    def false(self, c: list[Token]) -> ast.Scalar:
        return ast.Scalar(False, tok_span(c[0]))

    def null(self, c: list[Token]) -> ast.Scalar:
        return ast.Scalar(None, tok_span(c[0]))

    def list_lit(self, c: list[Any]) -> ast.ListLit:
        return transform.list_node(_not_tokens(c[1:-1]), _span(c))

    def _key_name(self, key: Token | ast.Scalar | Invalid) -> ast.Name | None:
        if isinstance(key, Token):
            return self._name(key, "key")
        return transform.string_key(key)

    def object_entry(self, c: list[Any]) -> ast.ObjectEntry | Invalid:
        return transform.object_entry_node(self._key_name(c[0]), c[2], _span(c))

    def object_lit(self, c: list[Any]) -> ast.ObjectLit:
        return transform.object_node(c, _span(c))

    def name_list(self, c: list[Any]) -> _NameList:
        return _NameList(tuple(t for t in c if isinstance(t, Token) and t.type == "IDENT"), _span(c))

    # -- schemas -------------------------------------------------------------------

    def named_type(self, c: list[Token]) -> ast.ScalarType:
        return transform.named_type_node(str(c[0]), tok_span(c[0]))

    def list_type(self, c: list[Any]) -> ast.ListType:
        return ast.ListType(c[2], _span(c))

    def field(self, c: list[Any]) -> ast.Field | Invalid:
        optional = isinstance(c[-1], Token) and c[-1].type == "OPTIONAL"
        return transform.field_node(self._field_name(c[0]), c[2], optional, _span(c))

    def _field_name(self, key: Token | ast.Scalar | Invalid) -> ast.Name | None:
        """A schema's field name: a plain name, one segment in backticks, or a string."""
        if isinstance(key, Token) and key.type == "QPATH":
            return transform.quoted_field_name(str(key), tok_span(key))
        if isinstance(key, Token):
            return self._name(key, "field")
        return transform.string_key(key)

    def object_type(self, c: list[Any]) -> ast.ObjectType:
        return transform.object_type_node(c, _span(c))

    def event_decl(self, c: list[Any]) -> ast.EventDecl:
        schema = c[2] if len(c) > 2 else None
        return ast.EventDecl(self._event_type(c[1]), schema, _span(c))

    # -- retry policies ----------------------------------------------------------

    def attempts(self, c: list[Any]) -> Option:
        return "attempts", transform.count_node(c[1], "attempts"), _span(c)

    def backoff_max(self, c: list[Any]) -> ast.Duration | Invalid:
        return c[1]  # type: ignore[no-any-return]

    def backoff_fixed(self, c: list[Any]) -> Option:
        return transform.fixed_backoff(c[2], _span(c))

    def backoff_linear(self, c: list[Any]) -> Option:
        return transform.linear_backoff(c[3], c[5], c[6] if len(c) > 6 else None, _span(c))

    def backoff_exponential(self, c: list[Any]) -> Option:
        return transform.exponential_backoff(c[3], c[5], c[6] if len(c) > 6 else None, _span(c))

    def jitter(self, c: list[Any]) -> Option:
        return "jitter", self._keyword(c[1], "jitter", transform.JITTERS), _span(c)

    def retry_on(self, c: list[Any]) -> Option:
        return "retry_on", transform.error_kinds((str(t), tok_span(t)) for t in c[1].tokens), _span(c)

    def give_up_on(self, c: list[Any]) -> Option:
        return "give_up_on", transform.error_kinds((str(t), tok_span(t)) for t in c[1].tokens), _span(c)

    def deadline(self, c: list[Any]) -> Option:
        return "deadline", c[1], _span(c)

    def retry_body(self, c: list[Any]) -> tuple[dict[str, Any], Span]:
        return transform.option_table(_nodes(c, tuple), "retry policy"), _span(c)

    def retry_decl(self, c: list[Any]) -> ast.RetryPolicy:
        return transform.retry_policy_node(self._name(c[1], "retry policy"), c[2][0], _span(c))

    # -- dead letters, targets -------------------------------------------------

    def retain(self, c: list[Any]) -> Option:
        return "retain", c[1], _span(c)

    def dead_letter_body(self, c: list[Any]) -> tuple[dict[str, Any], Span]:
        return transform.option_table(_nodes(c, tuple), "dead letter"), _span(c)

    def dead_letter_decl(self, c: list[Any]) -> ast.DeadLetterDecl:
        opts = c[2][0] if len(c) > 2 else {}
        return ast.DeadLetterDecl(self._name(c[1], "dead letter"), opts.get("retain"), _span(c))

    def mode(self, c: list[Any]) -> Option:
        return "mode", self._keyword(c[1], "mode", transform.MODES), _span(c)

    def use_retry(self, c: list[Any]) -> Option:
        return "retry", self._name(c[1], "retry policy"), _span(c)

    def inline_retry(self, c: list[Any]) -> Option:
        span = _span(c)
        return "retry", transform.retry_policy_node(None, c[1][0], span), span

    def use_dead_letter(self, c: list[Any]) -> Option:
        return "dead_letter", self._name(c[1], "dead letter"), _span(c)

    def timeout(self, c: list[Any]) -> Option:
        return "timeout", c[1], _span(c)

    def concurrency(self, c: list[Any]) -> Option:
        return "concurrency", transform.count_node(c[1], "concurrency"), _span(c)

    def order_by(self, c: list[Any]) -> Option:
        return "order_by", self._path(c[2]), _span(c)

    def emits(self, c: list[Any]) -> Option:
        return "emits", tuple(self._event_type(t) for t in c[1].tokens), _span(c)

    def on_exhausted(self, c: list[Any]) -> Option:
        return "on_exhausted", self._keyword(c[1], "on_exhausted", transform.ON_EXHAUSTED), _span(c)

    # -- HTTP targets --------------------------------------------------------------

    def env(self, c: list[Any]) -> ast.EnvRef | Invalid:
        return transform.env_node(next(x for x in c if isinstance(x, ast.Scalar | Invalid)), _span(c))

    def http(self, c: list[Any]) -> Option:
        return transform.http_option(str(c[1]), tok_span(c[1]), c[-1], _span(c))

    def header(self, c: list[Any]) -> ast.Header | Invalid:
        name, value = _not_tokens(c)
        return transform.header_node(name, value, _span(c))

    def headers(self, c: list[Any]) -> Option:
        return transform.headers_option(c, _span(c))

    def content_format(self, c: list[Any]) -> Option:
        return "format", self._keyword(c[1], "format", http.FORMATS), _span(c)

    def target_body(self, c: list[Any]) -> tuple[list[Option], Span]:
        return _nodes(c, tuple), _span(c)

    def target_decl(self, c: list[Any]) -> ast.TargetDecl:
        return transform.target_node(str(c[1]), tok_span(c[1]), c[2][0], _span(c))

    def defaults_decl(self, c: list[Any]) -> ast.DefaultsDecl:
        return transform.defaults_node(c[1][0], _span(c))

    def unrouted_decl(self, c: list[Any]) -> ast.UnroutedDecl:
        return ast.UnroutedDecl(self._name(c[3], "dead letter"), _span(c))

    # -- predicates --------------------------------------------------------------

    def compare_op(self, c: list[Token]) -> str:
        return str(c[0])

    string_op = compare_op

    def group(self, c: list[Any]) -> Any:
        return transform.group_node(c[1], _span(c))

    def not_expr(self, c: list[Any]) -> ast.Not | Invalid:
        return transform.not_node(c[1], _span(c))

    def and_expr(self, c: list[Any]) -> ast.And | Invalid:
        return transform.junction_node(_not_tokens(c), _span(c), ast.And)

    def or_expr(self, c: list[Any]) -> ast.Or | Invalid:
        return transform.junction_node(_not_tokens(c), _span(c), ast.Or)

    element_or = or_expr  # the condition of `any PATH { ... }` (see the grammar)
    element_and = and_expr

    def compare(self, c: list[Any]) -> ast.Compare | Invalid:
        return transform.compare_node(str(c[0]), tok_span(c[0]), c[1], c[2], _span(c))

    def in_list(self, c: list[Any]) -> ast.InList | Invalid:
        return transform.in_list_node(str(c[0]), tok_span(c[0]), c[2], _span(c), negated=False, any_element=False)

    def not_in_list(self, c: list[Any]) -> ast.InList | Invalid:
        return transform.in_list_node(str(c[0]), tok_span(c[0]), c[3], _span(c), negated=True, any_element=False)

    def any_in_list(self, c: list[Any]) -> ast.InList | Invalid:
        return transform.in_list_node(str(c[1]), tok_span(c[1]), c[3], _span(c), negated=False, any_element=True)

    def in_range(self, c: list[Any]) -> ast.InRange | Invalid:
        return transform.in_range_node(str(c[0]), tok_span(c[0]), c[2], c[4], _span(c))

    def in_cidr(self, c: list[Any]) -> ast.InCidr | Invalid:
        return transform.in_cidr_node(str(c[0]), tok_span(c[0]), c[3], _span(c))

    def is_null(self, c: list[Any]) -> ast.IsNull:
        return ast.IsNull(self._path(c[0]), _span(c))

    def regex_test(self, c: list[Any]) -> ast.RegexTest | Invalid:
        return transform.regex_node(str(c[0]), tok_span(c[0]), str(c[3]), tok_span(c[3]), _span(c))

    def any_element(self, c: list[Any]) -> ast.AnyElement | Invalid:
        return transform.any_element_node(str(c[1]), tok_span(c[1]), c[3], _span(c))

    def exists(self, c: list[Any]) -> ast.Exists:
        return ast.Exists(self._path(c[1]), _span(c))

    def missing(self, c: list[Any]) -> ast.Missing:
        return ast.Missing(self._path(c[1]), _span(c))

    def string_test(self, c: list[Any]) -> ast.StringTest | Invalid:
        return transform.string_test_node(str(c[0]), tok_span(c[0]), c[1], c[2], _span(c))

    def contains(self, c: list[Any]) -> ast.Contains | Invalid:
        return transform.contains_node(str(c[0]), tok_span(c[0]), c[2], _span(c))

    # -- routes and choices --------------------------------------------------------

    def on_clause(self, c: list[Any]) -> tuple[ast.EventPattern, ...]:
        return tuple(ast.EventPattern(str(t), tok_span(t)) for t in c[1:] if t.type == "IDENT")

    def when_clause(self, c: list[Any]) -> Any:
        return c[1]

    def to_clause(self, c: list[Any]) -> tuple[ast.Delivery, ...]:
        return tuple(_nodes(c, ast.Delivery))

    def delivery(self, c: list[Any]) -> ast.Delivery:
        transform = c[1] if len(c) > 1 else None
        return ast.Delivery(self._name(c[0], "target"), transform, _span(c))

    def copy_field(self, c: list[Token]) -> ast.Path:
        return self._path(c[0])

    def default_field(self, c: list[Any]) -> ast.Default | Invalid:
        return transform.default_node(str(c[0]), tok_span(c[0]), c[2], tok_span(c[1]), _span(c))

    def template(self, c: list[Token]) -> ast.Template | Invalid:
        return transform.template_node(str(c[0]), tok_span(c[0]))

    def spread(self, c: list[Token]) -> ast.Spread:
        return ast.Spread(tok_span(c[0]))

    def transform_entry(self, c: list[Any]) -> ast.TransformEntry | Invalid:
        return transform.transform_entry_node(self._key_name(c[0]), c[2], _span(c))

    def with_clause(self, c: list[Any]) -> ast.Transform:
        return c[1]  # type: ignore[no-any-return]

    def transform_object(self, c: list[Any]) -> ast.Transform:
        return transform.transform_node(c, _span(c))

    def route_decl(self, c: list[Any]) -> ast.RouteDecl:
        on = c[3]
        when = c[4] if len(c) == 7 else None
        to = c[-2]
        if isinstance(when, Invalid):
            when = None
        return ast.RouteDecl(self._name(c[1], "route"), on, when, to, _span(c))

    def choice(self, c: list[Any]) -> ast.Branch:
        when = None if isinstance(c[1], Invalid) else c[1]
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
        transform.unique(names, "target")
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

    def import_decl(self, c: list[Any]) -> ast.Import | Invalid:
        if isinstance(c[1], Invalid):
            return Invalid(_span(c))
        return ast.Import(c[1].value, _span(c))

    def start(self, c: list[Any]) -> list[Any]:
        return [x for x in c if not isinstance(x, Invalid)]
