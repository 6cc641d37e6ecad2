"""The fast path: recursive descent over one top-level declaration at a time.

`parse_source` (dsl/parser.py) tries this first. Each unit of `fast_lexer.units` is read
as one declaration, the grammar's rules followed token by token, and built with the node
functions of `transform.py`, the same the Builder calls under Lark's parser: the same
nodes, with the same spans.

A unit is *declined* (`declarations` gives None for it, and Lark's parser reads it) when
it holds anything this parser does not take: a syntax error, a word where Lark's contextual
lexer could read a keyword (`{ a: 1 and: 2 }`; a predicate word followed by an operator,
`missing == 1`), brackets or `not`s nested more than `MAX_DEPTH` deep, or anything a node
function reports (a bad duration or escape, a name of the wrong shape, a null comparison):
every diagnostic comes from Lark's parse. What is taken: every declaration of the grammar
(`import`, `event` with or without a schema, `retry`, `dead_letter`, `target` and its
options, HTTP targets included, `defaults`, `unrouted`, `route` and `choose` with every
predicate and `with { ... }` transforms, `test`), with any word as a name where Lark's
parser reads a name whatever the word.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any

from . import ast, http
from .fast_lexer import END, Token, Unit
from .lexicon import COMPARISONS, PREDICATE_WORDS
from .source import SourceFile, Span
from .transform import (
    CURRENT,
    JITTERS,
    MODES,
    ON_EXHAUSTED,
    BuildContext,
    Option,
    any_element_node,
    compare_node,
    contains_node,
    count_node,
    default_node,
    defaults_node,
    duration_node,
    env_node,
    error_kinds,
    event_type_node,
    exponential_backoff,
    field_node,
    fixed_backoff,
    group_node,
    header_node,
    headers_option,
    http_option,
    in_cidr_node,
    in_list_node,
    in_range_node,
    junction_node,
    keyword_node,
    linear_backoff,
    list_node,
    name_node,
    named_type_node,
    not_node,
    number_node,
    object_entry_node,
    object_node,
    object_type_node,
    option_table,
    path_node,
    quoted_field_name,
    regex_node,
    retry_policy_node,
    string_key,
    string_node,
    string_test_node,
    target_node,
    template_node,
    transform_entry_node,
    transform_node,
    unique,
)

# A file whose first units the fast path mostly declines is likely declined throughout:
# reading on would only add to the cost of Lark's parse of it.
GIVE_UP = 50

# Brackets, `list<`, `not`s and `{` nested in one declaration. Half of what Lark's lexer
# allows (MAX_NESTING), so that what is taken here never reaches its limit; it also bounds
# the recursion of this parser.
MAX_DEPTH = 32

_STRING_OPS = frozenset({"startswith", "endswith", "matches", "equals_ignore_case", "startswith_ignore_case",
                         "endswith_ignore_case"})
_OPERATOR_WORDS = _STRING_OPS | {"in", "not", "is", "contains"}
_SCALAR_WORDS = {"true": True, "false": False, "null": None}
_new = tuple.__new__


class Decline(Exception):
    """This declaration is not one the fast path takes: Lark's parser reads it."""


def declarations(source: SourceFile, units: Iterable[Unit],
                 keywords: Collection[str]) -> list[tuple[int, int, ast.Decl | None]] | None:
    """Each unit's start, end and declaration, None where the unit is declined; or None for
    a file of which the fast path declines most (more than half of the first `GIVE_UP`
    units or more), which Lark's parser had better read whole. `keywords`: every word the
    grammar spells out."""
    context = BuildContext(source)  # what the node functions report: any report declines
    token = CURRENT.set(context)
    try:
        found: list[tuple[int, int, ast.Decl | None]] = []
        declined = 0
        for unit in units:
            decl = None
            if unit.lexed and unit.starts:
                decl = _Parser(source.path, unit.tokens, keywords).declaration()
                if context.diagnostics:
                    decl = None
                    context.diagnostics.clear()
            found.append((unit.start, unit.end, decl))
            if decl is None:
                declined += 1
                if declined * 2 > len(found) >= GIVE_UP:
                    return None
        return found
    finally:
        CURRENT.reset(token)


class _Parser:
    """One declaration's tokens, then an `END` token.

    A word or punctuation mark is recognised by its text alone (`expect`, `at`): no token of
    another kind has the text of a word or of a punctuation mark (strings have their quotes).
    """

    __slots__ = ("depth", "i", "keywords", "path", "tokens")

    def __init__(self, path: str, tokens: list[Token], keywords: Collection[str]) -> None:
        self.path = path
        self.tokens = tokens
        self.keywords = keywords
        self.i = 0  # the next token
        self.depth = 0

    # -- tokens and spans ------------------------------------------------------------

    # (`Span`s are made as `tuple.__new__` makes them, without the call of `Span.__new__`.)

    def span(self, token: Token) -> Span:
        _, text, start, line, column = token
        n = len(text)
        return _new(Span, (self.path, start, start + n, line, column, line, column + n))

    def join(self, first: Token, last: Token) -> Span:
        """From the start of one token to the end of another."""
        n = len(last[1])
        return _new(Span, (self.path, first[2], last[2] + n, first[3], first[4], last[3], last[4] + n))

    def since(self, first: Token, node: Any) -> Span:
        """From the start of a token to the end of a node."""
        end: Span = node.span
        return _new(Span, (self.path, first[2], end[2], first[3], first[4], end[5], end[6]))

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at(self, text: str) -> bool:
        """Whether the next token is this word or punctuation mark."""
        return self.tokens[self.i][1] == text

    def expect(self, text: str) -> Token:
        """The next token, which must be this word or punctuation mark."""
        token = self.tokens[self.i]
        if token[1] != text:
            raise Decline
        self.i += 1
        return token

    def expect_kind(self, kind: str) -> Token:
        token = self.tokens[self.i]
        if token[0] != kind:
            raise Decline
        self.i += 1
        return token

    def name(self) -> Token:
        """A name where the grammar takes nothing but a name, so that no word is a keyword there."""
        return self.expect_kind("IDENT")

    def path_token(self) -> Token:
        """A field path. Where one stands, Lark's parser takes no keyword but those the callers
        look for first (`not`, `any`, `exists`, `missing`; `true`, `false`, `null`), so any
        other word is a name there."""
        token = self.tokens[self.i]
        if token[0] != "QPATH" and token[0] != "IDENT":
            raise Decline
        self.i += 1
        return token

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Decline

    def comma(self) -> None:
        """An optional comma between the members of a block."""
        if self.tokens[self.i][1] == ",":
            self.i += 1

    # -- declarations ----------------------------------------------------------------

    def declaration(self) -> ast.Decl | None:
        """The declaration, or None where the fast path declines it."""
        first = self.take()
        read = _DECLARATIONS.get(first[1])
        if read is None:
            return None
        try:
            decl: ast.Decl = read(self, first)
        except Decline:
            return None
        return decl if self.tokens[self.i][0] == END else None

    def import_decl(self, first: Token) -> ast.Import:
        path = self.expect_kind("STRING")
        value = string_node(path[1], self.span(path))
        if not isinstance(value, ast.Scalar):
            raise Decline
        return ast.Import(str(value.value), self.join(first, path))

    def event_decl(self, first: Token) -> ast.EventDecl:
        name = self.name()
        schema = self.object_type() if self.at("{") else None
        span = self.since(first, schema) if schema is not None else self.join(first, name)
        return ast.EventDecl(event_type_node(name[1], self.span(name)), schema, span)

    def retry_decl(self, first: Token) -> ast.RetryPolicy:
        name = self.name()
        options, last = self.block(self.retry_option)
        return retry_policy_node(name_node(name[1], self.span(name), "retry policy"),
                                 option_table(options, "retry policy"), self.join(first, last))

    def dead_letter_decl(self, first: Token) -> ast.DeadLetterDecl:
        name = self.name()
        last, retain = name, None
        if self.at("{"):
            options, last = self.block(self.retain_option)
            retain = option_table(options, "dead letter").get("retain")
        return ast.DeadLetterDecl(name_node(name[1], self.span(name), "dead letter"), retain,
                                  self.join(first, last))

    def target_decl(self, first: Token) -> ast.TargetDecl:
        name = self.name()
        options, last = self.block(self.target_option)
        return target_node(name[1], self.span(name), options, self.join(first, last))

    def defaults_decl(self, first: Token) -> ast.DefaultsDecl:
        options, last = self.block(self.target_option)
        return defaults_node(options, self.join(first, last))

    def unrouted_decl(self, first: Token) -> ast.UnroutedDecl:
        self.expect("to")
        self.expect("dead_letter")
        name = self.name()
        return ast.UnroutedDecl(name_node(name[1], self.span(name), "dead letter"), self.join(first, name))

    def route_decl(self, first: Token) -> ast.RouteDecl:
        name = self.name()
        self.expect("{")
        on = self.on_clause()
        when = None
        if self.tokens[self.i][1] == "when":
            self.i += 1
            when = self.condition()
        to = self.to_clause()
        last = self.expect("}")
        return ast.RouteDecl(name_node(name[1], self.span(name), "route"), on, when, to, self.join(first, last))

    def choose_decl(self, first: Token) -> ast.ChooseDecl:
        name = self.name()
        self.expect("{")
        on = self.on_clause()
        branches = []
        while self.at("when"):
            when = self.take()
            condition = self.condition()
            to = self.to_clause()
            branches.append(ast.Branch(condition, to, self.since(when, to[-1])))
        if not branches:
            raise Decline
        if self.at("otherwise"):
            otherwise = self.take()
            to = self.to_clause()
            branches.append(ast.Branch(None, to, self.since(otherwise, to[-1])))
        last = self.expect("}")
        return ast.ChooseDecl(name_node(name[1], self.span(name), "choose"), on, tuple(branches),
                              self.join(first, last))

    def test_decl(self, first: Token) -> ast.TestDecl:
        name = self.name()
        self.expect("{")
        steps = [self.test_step()]
        while not self.at("}"):
            steps.append(self.test_step() if self.at("send") else self.emit_step())
        last = self.take()
        return ast.TestDecl(name_node(name[1], self.span(name), "test"), tuple(steps), self.join(first, last))

    def test_step(self) -> ast.TestStep:
        """`send TYPE [{ ... }] expect ...`."""
        first = self.expect("send")
        event_type = self.name()
        data = self.object_literal() if self.at("{") else None
        send = ast.Send(event_type_node(event_type[1], self.span(event_type)), data,
                        self.since(first, data) if data is not None else self.join(first, event_type))
        expect = self.expect_clause()
        return ast.TestStep(send, expect, self.since(first, expect))

    def emit_step(self) -> ast.TestStep:
        """`then TARGET emits TYPE [{ ... }] expect ...`."""
        first = self.expect("then")
        target = self.name()
        self.expect("emits")
        event_type = self.name()
        data = self.object_literal() if self.at("{") else None
        send = ast.Send(event_type_node(event_type[1], self.span(event_type)), data,
                        self.since(first, data) if data is not None else self.join(first, event_type),
                        emitted_by=name_node(target[1], self.span(target), "target"))
        expect = self.expect_clause()
        return ast.TestStep(send, expect, self.since(first, expect))

    def expect_clause(self) -> ast.Expect:
        """`expect nothing`, or `expect TARGET [with [exactly] { ... }], ...`."""
        first = self.expect("expect")
        if self.at("nothing"):
            return ast.Expect((), self.join(first, self.take()))
        names, payloads = [], []
        while True:
            target = self.name()
            name = name_node(target[1], self.span(target), "target")
            names.append(name)
            last: Any = target
            if self.at("with"):
                self.i += 1
                exact = self.at("exactly")
                self.i += exact
                data = self.object_literal()
                payloads.append(ast.ExpectedPayload(name, data, exact=exact, span=self.since(target, data)))
                last = data
            if not self.at(","):
                break
            self.i += 1
        unique(names, "target")
        span = self.since(first, last) if isinstance(last, ast.ObjectLit) else self.join(first, last)
        return ast.Expect(tuple(names), span, tuple(payloads))

    # -- blocks of options -------------------------------------------------------------

    def block(self, option: Callable[[Token], Option]) -> tuple[list[Option], Token]:
        """`{ OPTION ,? ... }`: the options read, and the closing brace."""
        self.expect("{")
        options = []
        while not self.at("}"):
            options.append(option(self.take()))
            self.comma()
        return options, self.take()

    def retry_option(self, keyword: Token) -> Option:
        word = keyword[1]
        if word == "attempts":
            number = self.expect_kind("NUMBER")
            return "attempts", count_node(number_node(number[1], self.span(number)), "attempts"), \
                self.join(keyword, number)
        if word == "backoff":
            return self.backoff(keyword)
        if word == "jitter":
            value = self.name()
            return "jitter", keyword_node(value[1], self.span(value), "jitter", JITTERS), self.join(keyword, value)
        if word in ("retry_on", "give_up_on"):
            names, last = self.name_list()
            return word, error_kinds((t[1], self.span(t)) for t in names), self.join(keyword, last)
        if word == "deadline":
            return self.duration_option(keyword)
        raise Decline

    def duration_option(self, keyword: Token) -> Option:
        duration = self.expect_kind("DURATION")
        return keyword[1], duration_node(duration[1], self.span(duration)), self.join(keyword, duration)

    def backoff(self, keyword: Token) -> Option:
        kind = self.take()[1]
        if kind == "fixed":
            delay = self.expect_kind("DURATION")
            return fixed_backoff(duration_node(delay[1], self.span(delay)), self.join(keyword, delay))
        if kind not in ("linear", "exponential"):
            raise Decline
        self.expect("initial")
        initial_token = self.expect_kind("DURATION")
        initial = duration_node(initial_token[1], self.span(initial_token))
        self.expect("step" if kind == "linear" else "factor")
        second = self.expect_kind("DURATION" if kind == "linear" else "NUMBER")
        last, maximum = second, None
        if self.at("max"):
            self.i += 1
            last = self.expect_kind("DURATION")
            maximum = duration_node(last[1], self.span(last))
        span = self.join(keyword, last)
        if kind == "linear":
            return linear_backoff(initial, duration_node(second[1], self.span(second)), maximum, span)
        return exponential_backoff(initial, number_node(second[1], self.span(second)), maximum, span)

    def retain_option(self, keyword: Token) -> Option:
        if keyword[1] != "retain":
            raise Decline
        return self.duration_option(keyword)

    def target_option(self, keyword: Token) -> Option:
        word = keyword[1]
        if word in ("mode", "on_exhausted", "format"):
            value = self.name()
            choices = MODES if word == "mode" else ON_EXHAUSTED if word == "on_exhausted" else http.FORMATS
            return word, keyword_node(value[1], self.span(value), word, choices), self.join(keyword, value)
        if word == "retry":
            if self.at("{"):
                options, last = self.block(self.retry_option)
                span = self.join(keyword, last)
                return "retry", retry_policy_node(None, option_table(options, "retry policy"), span), span
            value = self.name()
            return "retry", name_node(value[1], self.span(value), "retry policy"), self.join(keyword, value)
        if word == "dead_letter":
            value = self.name()
            return "dead_letter", name_node(value[1], self.span(value), "dead letter"), self.join(keyword, value)
        if word == "timeout":
            return self.duration_option(keyword)
        if word == "concurrency":
            number = self.expect_kind("NUMBER")
            return "concurrency", count_node(number_node(number[1], self.span(number)), "concurrency"), \
                self.join(keyword, number)
        if word == "order":
            self.expect("by")
            path = self.path_token()
            return "order_by", path_node(path[1], self.span(path)), self.join(keyword, path)
        if word == "emits":
            names, last = self.name_list()
            return "emits", tuple(event_type_node(t[1], self.span(t)) for t in names), self.join(keyword, last)
        if word == "http":
            method = self.name()
            url = self.text_value()
            return http_option(method[1], self.span(method), url, self.since(keyword, url))
        if word == "headers":
            return self.headers(keyword)
        if word in ("retry_on", "give_up_on"):
            return self.retry_option(keyword)
        raise Decline

    def name_list(self) -> tuple[list[Token], Token]:
        """`[NAME, ...]`: the names, and the closing bracket."""
        self.expect("[")
        names = []
        while not self.at("]"):
            names.append(self.name())
            if not self.at("]"):
                self.expect(",")
        return names, self.take()

    def text_value(self) -> Any:
        """A string, or `env("NAME")`."""
        token = self.take()
        if token[0] == "STRING":
            return string_node(token[1], self.span(token))
        if token[1] != "env":
            raise Decline
        self.expect("(")
        name = self.expect_kind("STRING")
        last = self.expect(")")
        return env_node(string_node(name[1], self.span(name)), self.join(token, last))

    def headers(self, keyword: Token) -> Option:
        self.expect("{")
        headers = []
        while not self.at("}"):
            name = self.expect_kind("STRING")
            self.expect(":")
            value = self.text_value()
            headers.append(header_node(string_node(name[1], self.span(name)), value, self.since(name, value)))
            self.comma()
        return headers_option(headers, self.join(keyword, self.take()))

    # -- schemas ---------------------------------------------------------------------

    def object_type(self) -> ast.ObjectType:
        first = self.expect("{")
        self.deeper()
        fields = []
        while not self.at("}"):
            key = self.take()
            name: ast.Name | None
            if key[0] == "IDENT" and self.key_word(key):
                name = name_node(key[1], self.span(key), "field")
            elif key[0] == "QPATH":
                name = quoted_field_name(key[1], self.span(key))
            elif key[0] == "STRING":
                name = string_key(string_node(key[1], self.span(key)))
            else:
                raise Decline
            self.expect(":")
            field_type = self.field_type()
            optional = self.at("?")
            span = self.join(key, self.take()) if optional else self.since(key, field_type)
            fields.append(field_node(name, field_type, optional, span))
            self.comma()
        self.depth -= 1
        return object_type_node(fields, self.join(first, self.take()))

    def field_type(self) -> ast.Type:
        if self.at("{"):
            return self.object_type()
        token = self.take()
        if token[1] == "list":
            self.expect("<")
            self.deeper()
            item = self.field_type()
            self.depth -= 1
            return ast.ListType(item, self.join(token, self.expect(">")))
        if token[0] != "IDENT":  # (where a type stands, `list` is the one keyword: `any` is a name)
            raise Decline
        return named_type_node(token[1], self.span(token))

    # -- routes ------------------------------------------------------------------------

    def on_clause(self) -> tuple[ast.EventPattern, ...]:
        self.expect("on")
        patterns = []
        while True:
            pattern = self.name()
            patterns.append(ast.EventPattern(pattern[1], self.span(pattern)))
            if self.tokens[self.i][1] != ",":
                return tuple(patterns)
            self.i += 1

    def to_clause(self) -> tuple[ast.Delivery, ...]:
        """`to TARGET [with { ... }], ...`."""
        self.expect("to")
        deliveries = []
        tokens = self.tokens
        while True:
            target = self.name()
            span = self.span(target)
            name = name_node(target[1], span, "target")
            if tokens[self.i][1] == "with":
                self.i += 1
                transform = self.transform()
                deliveries.append(ast.Delivery(name, transform, self.since(target, transform)))
            else:
                deliveries.append(ast.Delivery(name, None, span))
            if tokens[self.i][1] != ",":
                return tuple(deliveries)
            self.i += 1

    # -- conditions --------------------------------------------------------------------

    def condition(self) -> Any:
        """`A or B or ...`, each an `and` of negations."""
        return self.junction("or", self.conjunction, ast.Or)

    def conjunction(self) -> Any:
        return self.junction("and", self.negation, ast.And)

    def junction(self, word: str, operand: Callable[[], Any], kind: Callable[..., Any]) -> Any:
        """Operands joined by `word`; one alone is itself."""
        first = operand()
        if self.tokens[self.i][1] != word:
            return first
        operands = [first]
        while self.tokens[self.i][1] == word:
            self.i += 1
            operands.append(operand())
        return junction_node(operands, first.span.to(operands[-1].span), kind)

    def negation(self) -> Any:
        token = self.tokens[self.i]
        text = token[1]
        if text == "(":
            self.i += 1
            self.deeper()
            inner = self.condition()
            self.depth -= 1
            return group_node(inner, self.join(token, self.expect(")")))
        if text == "not" and self.keyword_follows():
            self.i += 1
            self.deeper()
            operand = self.negation()
            self.depth -= 1
            return not_node(operand, self.since(token, operand))
        return self.predicate()

    def keyword_follows(self) -> bool:
        """Whether the predicate word just ahead (`not`, `any`, `exists`, `missing`) is the
        keyword: followed by a path, by `(` after `not`, or by another predicate word after
        `not`. Anything else (an operator: `missing == 1` tests a field named `missing`, and
        `exists in ...` may) is declined, as the word may then be a field."""
        word = self.tokens[self.i][1]
        kind, text = self.tokens[self.i + 1][:2]
        if kind == "QPATH" or (kind == "IDENT" and text not in _OPERATOR_WORDS and text not in PREDICATE_WORDS):
            return True
        if word != "not":
            return False
        if text == "(" or text in PREDICATE_WORDS:
            return True
        raise Decline

    def predicate(self) -> Any:
        tokens = self.tokens
        path = tokens[self.i]
        text = path[1]
        if text in PREDICATE_WORDS:
            return self.quantified()
        if path[0] != "QPATH" and path[0] != "IDENT":
            raise Decline
        where = self.span(path)
        op = tokens[self.i + 1][1]
        self.i += 2
        if op in COMPARISONS:
            value = self.scalar()
            return compare_node(text, where, op, value, self.since(path, value))
        if op == "in":
            after = tokens[self.i]
            if after[1] == "[":
                values = self.list_literal()
                return in_list_node(text, where, values, self.since(path, values), negated=False, any_element=False)
            if after[0] == "NUMBER":
                self.i += 1
                self.expect("..")
                high = self.expect_kind("NUMBER")
                return in_range_node(text, where, number_node(after[1], self.span(after)),
                                     number_node(high[1], self.span(high)), self.join(path, high))
            self.expect("cidr")
            block = self.expect_kind("STRING")
            return in_cidr_node(text, where, string_node(block[1], self.span(block)), self.join(path, block))
        if op in _STRING_OPS:
            if op == "matches" and self.at("regex"):
                self.i += 1
                pattern = self.expect_kind("STRING")
                return regex_node(text, where, pattern[1], self.span(pattern), self.join(path, pattern))
            value_token = self.expect_kind("STRING")
            value = string_node(value_token[1], self.span(value_token))
            return string_test_node(text, where, op, value, self.join(path, value_token))
        if op == "not":
            self.expect("in")
            values = self.list_literal()
            return in_list_node(text, where, values, self.since(path, values), negated=True, any_element=False)
        if op == "is":
            return ast.IsNull(path_node(text, where), self.join(path, self.expect("null")))
        if op == "contains":
            value = self.scalar()
            return contains_node(text, where, value, self.since(path, value))
        raise Decline

    def quantified(self) -> Any:
        """`exists PATH`, `missing PATH`, `any PATH in [...]`, `any PATH { CONDITION }`."""
        first = self.tokens[self.i]
        word = first[1]
        if word == "not" or not self.keyword_follows():
            raise Decline
        self.i += 1
        path = self.path_token()
        if word == "exists":
            return ast.Exists(path_node(path[1], self.span(path)), self.join(first, path))
        if word == "missing":
            return ast.Missing(path_node(path[1], self.span(path)), self.join(first, path))
        if self.at("{"):
            self.i += 1
            self.deeper()
            condition = self.condition()
            self.depth -= 1
            last = self.expect("}")
            return any_element_node(path[1], self.span(path), condition, self.join(first, last))
        self.expect("in")
        values = self.list_literal()
        return in_list_node(path[1], self.span(path), values, self.since(first, values), negated=False,
                            any_element=True)

    # -- literals ------------------------------------------------------------------------

    def scalar(self) -> Any:
        token = self.take()
        kind = token[0]
        if kind == "STRING":
            return string_node(token[1], self.span(token))
        if kind == "NUMBER":
            return number_node(token[1], self.span(token))
        if token[1] in _SCALAR_WORDS:
            return ast.Scalar(_SCALAR_WORDS[token[1]], self.span(token))
        raise Decline

    def literal(self) -> Any:
        text = self.tokens[self.i][1]
        if text == "[":
            return self.list_literal()
        if text == "{":
            return self.object_literal()
        return self.scalar()

    def list_literal(self) -> ast.ListLit:
        first = self.expect("[")
        self.deeper()
        items = []
        tokens = self.tokens
        while tokens[self.i][1] != "]":
            token = tokens[self.i]
            if token[0] == "STRING":  # (the common case, read here)
                self.i += 1
                items.append(string_node(token[1], self.span(token)))
            else:
                items.append(self.literal())
            if tokens[self.i][1] == ",":
                self.i += 1
            elif tokens[self.i][1] != "]":
                raise Decline
        self.depth -= 1
        return list_node(items, self.join(first, self.take()))

    def key_word(self, token: Token) -> bool:
        """Whether a word just read is a key (or a field's name): after `{` or `,` only a key can
        follow, so Lark's parser reads any word as one; after a value, a word it spells out
        might be read as a keyword (`{ a: 1 and: 2 }`), and is declined."""
        return token[1] not in self.keywords or self.tokens[self.i - 2][1] in ("{", ",")

    def key(self) -> ast.Name | None:
        token = self.take()
        if token[0] == "IDENT" and self.key_word(token):
            return name_node(token[1], self.span(token), "key")
        if token[0] == "STRING":
            return string_key(string_node(token[1], self.span(token)))
        raise Decline

    def object_literal(self) -> ast.ObjectLit:
        return object_node(*self.entries(self.literal, object_entry_node))

    def entries(self, value: Callable[[], Any], entry: Callable[[ast.Name | None, Any, Span], Any],
                spread: bool = False) -> tuple[list[Any], Span]:
        """`{ KEY: VALUE ,? ... }` (and `...` where `spread`): the entries, and the span of the braces."""
        first = self.expect("{")
        self.deeper()
        entries: list[Any] = []
        while not self.at("}"):
            if spread and self.at("..."):
                entries.append(ast.Spread(self.span(self.take())))
            else:
                key_token = self.tokens[self.i]
                key = self.key()
                self.expect(":")
                read = value()
                entries.append(entry(key, read, self.since(key_token, read)))
            self.comma()
        self.depth -= 1
        return entries, self.join(first, self.take())

    # -- transforms ----------------------------------------------------------------------

    def transform(self) -> ast.Transform:
        return transform_node(*self.entries(self.transform_value, transform_entry_node, spread=True))

    def transform_value(self) -> Any:
        """A value, or a chain `path ?? path ?? ... ?? value`, built from its end."""
        chain: list[tuple[Token, Token]] = []
        while True:
            token = self.tokens[self.i]
            kind = token[0]
            if kind == "QPATH" or (kind == "IDENT" and token[1] not in _SCALAR_WORDS):
                path = self.path_token()
                if not self.at("??"):
                    value: Any = path_node(path[1], self.span(path))
                    break
                chain.append((path, self.take()))
                if len(chain) > MAX_DEPTH:
                    raise Decline
                continue
            if kind == "TEMPLATE":
                self.i += 1
                value = template_node(token[1], self.span(token))
            elif kind == "[":
                value = self.list_literal()
            elif kind == "{":
                value = self.transform()
            else:
                value = self.scalar()
            break
        for path, operator in reversed(chain):
            value = default_node(path[1], self.span(path), value, self.span(operator), self.since(path, value))
        return value


_DECLARATIONS: dict[str, Callable[[_Parser, Token], Any]] = {
    "import": _Parser.import_decl,
    "event": _Parser.event_decl,
    "retry": _Parser.retry_decl,
    "dead_letter": _Parser.dead_letter_decl,
    "target": _Parser.target_decl,
    "defaults": _Parser.defaults_decl,
    "unrouted": _Parser.unrouted_decl,
    "route": _Parser.route_decl,
    "choose": _Parser.choose_decl,
    "test": _Parser.test_decl,
}
