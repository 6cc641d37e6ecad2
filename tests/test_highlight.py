"""Highlighting `.route`: the Pygments lexer (interlock/highlight.py) and the TextMate grammar of
the VS Code extension (editors/vscode) read every example of the project without an error
token, and their keywords are the grammar's.

The TextMate grammar is run here by a small matcher of its `patterns`, `match`, `begin`/`end`,
`captures` and `include`s, with Python's `re` (the grammar keeps to the regular expressions that
Oniguruma and `re` read alike), line by line and leftmost match first, as editors run it."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from lark.lexer import PatternStr
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, Punctuation, String, _TokenType

from interlock.dsl.parser import parser
from interlock.highlight import KEYWORDS, RouteLexer

ROOT = Path(__file__).parent.parent
VSCODE = ROOT / "editors" / "vscode"  # (its TextMate grammar)
BLOCK = re.compile(r"```route\n(.*?)```", re.S)
BLANK = " \t\f\r\n"


def _examples() -> list[tuple[str, str]]:
    """Every `.route` text of the project that the parser reads without a syntax error."""
    files = [*sorted(ROOT.glob("examples/**/*.route")), *sorted(ROOT.glob("tests/fixtures/normative/**/*.route")),
             *sorted(ROOT.glob("tests/fixtures/passes/*.route"))]
    found = [(str(f.relative_to(ROOT)), f.read_text(encoding="utf-8")) for f in files]
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for block in BLOCK.finditer(text):
            line = text.count("\n", 0, block.start()) + 2
            found.append((f"{page.relative_to(ROOT)}:{line}", block.group(1)))
    return found


EXAMPLES = _examples()


def test_there_are_examples() -> None:
    assert sum(where.endswith(".route") for where, _ in EXAMPLES) >= 25
    assert sum(".md:" in where for where, _ in EXAMPLES) >= 19


# ---- Pygments ---------------------------------------------------------------------------------

def _tokens(text: str) -> list[tuple[_TokenType, str]]:
    return [(kind, value) for _, kind, value in RouteLexer().get_tokens_unprocessed(text)]


def _position(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    return f"{line}:{offset - (text.rfind(chr(10), 0, offset) + 1) + 1}"


@pytest.mark.parametrize(("where", "text"), EXAMPLES, ids=[where for where, _ in EXAMPLES])
def test_pygments_reads_every_example(where: str, text: str) -> None:
    tokens = list(RouteLexer().get_tokens_unprocessed(text))
    assert "".join(value for _, _, value in tokens) == text
    errors = [f"{_position(text, offset)} {value!r}" for offset, kind, value in tokens if kind in Error]
    assert errors == []


def test_pygments_finds_the_lexer_by_name_and_file_name() -> None:
    assert isinstance(get_lexer_by_name("route"), RouteLexer)
    assert isinstance(get_lexer_by_name("interlock"), RouteLexer)
    assert isinstance(get_lexer_for_filename("shop/orders.route"), RouteLexer)


def test_rich_highlights_route() -> None:
    from rich.syntax import Syntax

    code = "route big { on order.created to billing }  # a comment"
    text = Syntax(code, "route", theme="monokai").highlight(code)
    styles = {code[span.start:span.end]: str(span.style) for span in text.spans}
    assert styles["route"] != styles["big"] != styles["# a comment"] != styles["route"]


def test_pygments_tokens() -> None:
    tokens = [t for t in _tokens(
        'target order { order by order.key }\n'
        'route type { on ticket.* when type == "a\\"b" and `c.count` in 10..100 and x.`y z`.w > -1.5e3\n'
        '  to order with { ...,  id: f"order {id} {{x}}", n: note ?? "none", t: true } }\n'
        'retry quick { backoff fixed 250ms }  # a comment\n'
        'event e { "a b": string, `c.d`: int? }\n'
        'x = ;') if t[1].strip()]
    assert tokens == [
        (Keyword.Declaration, "target"), (Name.Class, "order"), (Punctuation, "{"), (Keyword, "order"),
        (Keyword, "by"), (Name, "order.key"), (Punctuation, "}"),
        (Keyword.Declaration, "route"), (Name.Function, "type"), (Punctuation, "{"), (Keyword, "on"),
        (Name, "ticket.*"), (Keyword, "when"), (Name, "type"), (Operator, "=="), (String.Double, '"'),
        (String.Double, "a"), (String.Escape, '\\"'), (String.Double, "b"), (String.Double, '"'),
        (Operator.Word, "and"), (String.Backtick, "`c.count`"), (Operator.Word, "in"), (Number, "10"),
        (Operator, ".."), (Number, "100"), (Operator.Word, "and"), (Name.Variable, "x"), (Punctuation, "."),
        (String.Backtick, "`y z`"), (Punctuation, "."), (Name.Variable, "w"), (Operator, ">"),
        (Number, "-1.5e3"),
        (Keyword, "to"), (Keyword, "order"), (Keyword, "with"), (Punctuation, "{"), (Operator, "..."),
        (Punctuation, ","), (Name.Attribute, "id"), (Punctuation, ":"), (String.Affix, 'f"'),
        (String.Double, "order "), (String.Interpol, "{id}"), (String.Escape, "{{"),
        (String.Double, "x"), (String.Escape, "}}"), (String.Double, '"'), (Punctuation, ","),
        (Name.Attribute, "n"), (Punctuation, ":"), (Name, "note"), (Operator, "??"), (String.Double, '"'),
        (String.Double, "none"), (String.Double, '"'), (Punctuation, ","), (Name.Attribute, "t"),
        (Punctuation, ":"), (Keyword.Constant, "true"), (Punctuation, "}"), (Punctuation, "}"),
        (Keyword.Declaration, "retry"), (Name, "quick"), (Punctuation, "{"), (Keyword, "backoff"),
        (Keyword, "fixed"), (Number, "250ms"), (Punctuation, "}"), (Comment.Single, "# a comment"),
        (Keyword.Declaration, "event"), (Name.Class, "e"), (Punctuation, "{"), (String.Double, '"'),
        (String.Double, "a b"), (String.Double, '"'), (Punctuation, ":"), (Name, "string"), (Punctuation, ","),
        (String.Backtick, "`c.d`"), (Punctuation, ":"), (Name, "int"), (Operator, "?"), (Punctuation, "}"),
        (Name, "x"), (Error, "="), (Error, ";"),
    ]


def test_an_unterminated_string_ends_with_its_line() -> None:
    tokens = _tokens('a == "open\nroute r { on x to y }')
    assert (String.Double, "open") in tokens
    assert (Keyword.Declaration, "route") in tokens


# ---- the keywords ------------------------------------------------------------------------------

@cache
def _grammar_keywords() -> frozenset[str]:
    word = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
    return frozenset(t.pattern.value for t in parser().terminals
                     if isinstance(t.pattern, PatternStr) and word.fullmatch(t.pattern.value))


def test_the_lexer_knows_the_grammars_keywords() -> None:
    assert len(_grammar_keywords()) > 50
    assert sorted(KEYWORDS - _grammar_keywords()) == []
    assert sorted(_grammar_keywords() - KEYWORDS) == []


def test_the_textmate_grammar_knows_the_grammars_keywords() -> None:
    keywords = set()
    for rule in _grammar()["repository"]["keyword"]["patterns"]:
        alternatives = re.search(r"\(\?:([a-z_|]+)\)", rule["match"])
        assert alternatives is not None, rule
        keywords |= set(alternatives.group(1).split("|"))
    assert keywords == _grammar_keywords()


def test_the_language_reference_lists_the_keywords() -> None:
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    listed = text[text.index("The keywords:"):]
    listed = listed[:listed.index("\n\n")]
    assert set(re.findall(r"`([a-z_]+)`", listed)) == _grammar_keywords()


# ---- the TextMate grammar ----------------------------------------------------------------------

@cache
def _grammar() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VSCODE / "syntaxes" / "route.tmLanguage.json").read_text(encoding="utf-8"))
    return data


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _rules(patterns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rules of a list of patterns, `include`s and groups of patterns expanded, in order."""
    found = []
    for pattern in patterns:
        if "include" in pattern:
            assert pattern["include"].startswith("#"), pattern
            found.extend(_rules([_grammar()["repository"][pattern["include"][1:]]]))
        elif "match" in pattern or "begin" in pattern:
            found.append(pattern)
        else:
            found.extend(_rules(pattern["patterns"]))
    return found


def _scopes(text: str) -> list[list[str]]:
    """Per character of `text`, the scopes the grammar gives it (outermost first)."""
    scopes: list[list[str]] = [[] for _ in text]

    def mark(start: int, end: int, names: list[str]) -> None:
        for i in range(start, end):
            scopes[i].extend(names)

    def names(rule: dict[str, Any], key: str = "name") -> list[str]:
        return rule[key].split() if key in rule else []

    def captures(match: re.Match[str], base: int, rule: dict[str, Any], key: str) -> None:
        for group, capture in rule.get(key, {}).items():
            if match.group(int(group)) is not None:
                mark(base + match.start(int(group)), base + match.end(int(group)), names(capture))

    stack: list[dict[str, Any]] = []  # the begin/end rules open
    base = 0
    for line in text.splitlines(keepends=True):
        scanned = line if line.endswith("\n") else line + "\n"  # (editors match lines with their newline)
        pos = 0
        while pos < len(line):
            inside = [n for rule in stack for n in names(rule) + names(rule, "contentName")]
            candidates: list[tuple[str, dict[str, Any]]] = [("end", stack[-1])] if stack else []
            candidates += [("rule", rule) for rule in _rules(stack[-1].get("patterns", []) if stack
                                                            else _grammar()["patterns"])]
            best: tuple[str, dict[str, Any], re.Match[str]] | None = None
            for kind, rule in candidates:
                pattern = rule["end"] if kind == "end" else rule.get("match", rule.get("begin"))
                found = _regex(pattern).search(scanned, pos)
                if found is not None and (best is None or found.start() < best[2].start()):
                    best = (kind, rule, found)
            if best is None or best[2].start() >= len(line):
                mark(base + pos, base + len(line), inside)
                break
            kind, rule, found = best
            mark(base + pos, base + found.start(), inside)
            mark(base + found.start(), base + found.end(), inside)
            if kind == "end":
                captures(found, base, rule, "endCaptures")
                stack.pop()
            elif "match" in rule:
                mark(base + found.start(), base + found.end(), names(rule))
                captures(found, base, rule, "captures")
            else:
                mark(base + found.start(), base + found.end(), names(rule))
                captures(found, base, rule, "beginCaptures")
                stack.append(rule)
            # a rule that matched nothing and opened or closed nothing: step over a character
            pos = found.end() if found.end() > pos or kind == "end" or "begin" in rule else pos + 1
        base += len(line)
    return scopes


def _uncovered(text: str) -> list[str]:
    problems = []
    for offset, (char, names) in enumerate(zip(text, _scopes(text), strict=True)):
        if char in BLANK:
            continue
        if not names or any(n.startswith("invalid") for n in names):
            problems.append(f"{_position(text, offset)} {char!r} {names}")
    return problems


def test_the_textmate_grammar_is_read_by_python() -> None:
    patterns = [r.get("match") or r.get("begin") for r in _rules(_grammar()["patterns"])]
    patterns += [r["end"] for r in _rules(_grammar()["patterns"]) if "end" in r]
    for pattern in patterns:
        _regex(pattern)
    assert len(patterns) > 15


@pytest.mark.parametrize(("where", "text"), EXAMPLES, ids=[where for where, _ in EXAMPLES])
def test_the_textmate_grammar_covers_every_example(where: str, text: str) -> None:
    assert _uncovered(text) == []


def test_the_textmate_grammar_scopes() -> None:
    text = 'target order { order by order.key, timeout 2s }  # c\nroute r { on o.* to a with { t: f"{id}}}", ...} }'
    scopes = _scopes(text)

    def at(word: str, nth: int = 0) -> list[str]:
        offset = -1
        for _ in range(nth + 1):
            offset = text.index(word, offset + 1)
        return scopes[offset]

    assert at("target") == ["keyword.other.declaration.route"]
    assert at("order") == ["entity.name.type.route"]
    assert at("order", 1) == ["keyword.other.route"]
    assert at("order.key") == ["variable.other.route"]
    assert at("2s") == ["constant.numeric.duration.route"]
    assert at("# c") == ["comment.line.number-sign.route"]
    assert at("r { on") == ["entity.name.function.route"]
    assert at("o.*") == ["variable.other.route"]
    assert at("t:") == ["variable.other.property.route"]
    assert at("{id}") == ["string.interpolated.route", "meta.interpolation.route", "variable.other.placeholder.route"]
    assert at('}}"') == ["string.interpolated.route", "constant.character.escape.route"]
    assert at("...") == ["keyword.operator.route"]
    assert _uncovered(text) == []
    assert _uncovered("x = 1;") == ["1:3 '=' ['invalid.illegal.route']", "1:6 ';' ['invalid.illegal.route']"]
    assert _uncovered('a == "open\nb') == []  # an unterminated string ends with its line


def test_a_backtick_not_closed_is_one_token_to_the_end_of_its_line() -> None:
    """`` ` `` then `` \\` `` repeated, never closed: each backtick started a scan to the end of
    the line, in both highlighters, so a 100 KB line took 32 s (found by review). Now the
    Pygments lexer takes the rest of the line as one error token, and the TextMate grammar's
    paths do not start at an escaped backtick."""
    from pygments import lex

    from interlock.highlight import RouteLexer

    line = "`" + "\\`" * 20_000
    tokens = [(kind, text) for kind, text in lex(line + "\nroute", RouteLexer()) if text.strip()]
    assert tokens[0][1] == line and "Error" in str(tokens[0][0])
    grammar = json.loads((ROOT / "editors" / "vscode" / "syntaxes" / "route.tmLanguage.json").read_text())
    for rule in ("path", "key"):
        pattern = re.compile(grammar["repository"][rule]["match"])
        assert all(pattern.match(line, position) is None for position in range(2, 200, 2)), rule
