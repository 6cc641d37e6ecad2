"""Property-based tests of the front end: whatever the text, a parse or diagnostics, never an exception.

The parser is fed random text drawn from the language's own words and characters, and
random mutations (deleted, duplicated, swapped, replaced and inserted spans and tokens;
truncations; splices of one file into another) of valid files: the normative examples of
the language brief, copied below, every fixture under `tests/fixtures/`, and every
`examples/**/*.route` file that exists when the tests are collected. Each case checks:

- `parse_text` returns a module and a list of diagnostics;
- every diagnostic has a known code, and a span (and related spans) inside the text whose
  line and column agree with its offsets;
- a lexical error points at a character that really starts no token;
- a text that parses without errors parses again to an equal module (determinism).

`load_project` gets the same treatment on two files that may import each other.

Randomness: locally each run draws new cases (a failure prints the falsifying example and a
`@reproduce_failure` blob, and the `.hypothesis` database replays it on the next run). On a
CI server Hypothesis loads its own `ci` profile, which derandomizes, so CI runs are
repeatable. `pytest --hypothesis-seed=N` replays a given run.

The number of cases is counted, not trusted: `test_enough_cases_ran` fails when the tests
of this module ran fewer than `MIN_CASES` between them.

Bugs the fuzzer found stay as regressions at the end of the module (`ONCE_CRASHED`), and
inputs that once failed stay as `@example`s, which run on every run.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from interlock.dsl import CODES, Diagnostic, Severity, Span, load_project, parse_text
from interlock.dsl.parser import grammar_text, parser

ROOT = Path(__file__).resolve().parent.parent
MIN_CASES = 10_000

# How the cases are split. A parse of a few kilobytes takes about a millisecond, a broken
# one up to twenty times that (error recovery parses again after each syntax error), and a
# project case writes two files; together they stay well under a minute on two cores.
RANDOM_TEXT_CASES = 3_500
RANDOM_TOKENS_CASES = 2_000
MUTATION_CASES = 6_000
STRING_CASES = 1_000
PROJECT_CASES = 300

# ---- seeds: the normative examples of the language brief (docs: "Normative examples") ----

NORMATIVE: dict[str, str] = {
    "imports": """\
import "common.route"          # relative to this file; imported names share one namespace
""",
    "schemas": """\
event order.created {
  id: string
  amount: float
  currency: string
  customer: { id: string, tier: string }   # nested object
  tags: list<string>
  coupon: string?                           # optional field
}
event order.cancelled { id: string, reason: string? }
""",
    "retry": """\
retry standard {
  attempts 5                                   # first try included
  backoff exponential initial 100ms factor 2 max 10s jitter full
  retry_on [TimeoutError, ConnectionError]     # error kinds that are retried
  give_up_on [ValidationError]                 # straight to the dead letter, no retry
  deadline 2m                                  # stop retrying after this long
}
retry quick { attempts 3 backoff fixed 50ms }
retry never { attempts 1 }

dead_letter billing_dlq { retain 7d }
""",
    "targets": """\
target billing {
  mode async                 # delivered from the event store by workers; publish does not wait
  retry standard
  dead_letter billing_dlq
  timeout 2s                 # per attempt
  concurrency 8              # in-flight deliveries at most
  order by customer.id       # deliveries with the same key run one at a time, in order
  emits [invoice.issued]     # events this target may publish (feeds the event-flow graph)
}
target fraud {
  mode sync                  # called inside publish; its reply comes back to the caller
  timeout 200ms
  retry quick
}
target audit { mode async, retry standard, dead_letter billing_dlq }   # commas also separate
""",
    "routes": """\
route big_orders {
  on order.created
  when amount >= 1000 and currency in ["USD", "EUR"] and customer.tier != "free"
  to fraud, billing
}
route every_order {
  on order.*                 # glob over event types: * is one dotted segment, ** any number
  to audit
}
""",
    "choose": """\
choose by_region {
  on order.created
  when customer.tier == "gold" to priority_billing     # first match wins
  when currency == "EUR"       to eu_billing
  otherwise                    to billing
}
""",
    "defaults": """\
defaults {
  retry standard
  dead_letter billing_dlq
  timeout 5s
}
unrouted to dead_letter unrouted_dlq     # an event no route matched is kept, never dropped silently
""",
    "transform": """\
route slim {
  on order.created
  to analytics with { order_id: id, total: amount, tier: customer.tier }
}
""",
    "tests": """\
test big_order_goes_to_fraud {
  send order.created { id: "o1", amount: 5000, currency: "USD",
                       customer: { id: "c1", tier: "gold" }, tags: [] }
  expect fraud, billing, audit, priority_billing, analytics
}
test small_order {
  send order.created { id: "o2", amount: 5, currency: "GBP",
                       customer: { id: "c2", tier: "free" }, tags: [] }
  expect billing, audit, analytics      # exactly these targets, no others
}
""",
}

# Every predicate form of the brief in one route, so that mutations reach each of them.
PREDICATES = """\
route every_predicate {
  on order.**, payment.card.declined
  when (amount in 10..100 or amount > 1e6) and not (tier equals_ignore_case "gold")
       and currency not in ["USD", "EUR"] and any tags in ["vip", "press"]
       and exists coupon and missing refund and id startswith "EU-" and file endswith ".pdf"
       and note contains "x" and ref matches "ord-*-eu" and tags contains "vip"
       and source_ip in cidr "10.0.0.0/8" and price <= -7 and ratio < 3.14 and ok == true
       and gone != null and label == "caf\\u00e9 \\"quoted\\" \\\\ \\n\\t"
  to fraud with { order_id: id, total: amount, meta: { tier: customer.tier, tags: ["a", 1, false] } }
}
retry linear_policy { attempts 4, backoff linear initial 1s step 500ms max 1m30s, jitter equal }
target inline { mode async, retry { attempts 2 backoff fixed 1h }, on_exhausted drop }
"""


def _file_seeds() -> list[str]:
    """The `.route` files of the repository that exist now (examples/ may be empty or absent)."""
    texts = []
    for folder in (ROOT / "examples", ROOT / "tests" / "fixtures"):
        for path in sorted(folder.rglob("*.route")) if folder.is_dir() else ():
            try:
                texts.append(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                continue
    return texts


SEEDS: tuple[str, ...] = (
    *NORMATIVE.values(),
    PREDICATES,
    "\n".join(NORMATIVE.values()) + PREDICATES,
    *_file_seeds(),
)

# ---- the alphabet: the grammar's own words, literals good and bad, odd characters ----------

_GRAMMAR_STRINGS = sorted(set(re.findall(r'"((?:[^"\\\n]|\\.)+)"', grammar_text())))
KEYWORDS = [s for s in _GRAMMAR_STRINGS if re.fullmatch(r"[a-z_]+", s)]
PUNCTUATION = [s for s in _GRAMMAR_STRINGS if not re.fullmatch(r"[a-z_]+", s)] + [
    "=", "!", ".", "..", "...", "-", "&&", "||", ";", "'", "/", "\\", '"', "#", "@", "$", "%", "+", "`",
]
LITERALS = [
    # names, dotted names, globs
    "billing", "eu-billing", "fraud_check", "_x", "a1", "order.created", "payment.card.declined",
    "order.*", "**", "*", "a.**.b", "a..b", "a.", ".a", "a-", "-a", "customer.tier", "x.y.z",
    # strings, with good and bad escapes
    '""', '"USD"', '"EU-"', '"a b"', '"\\""', '"\\\\"', '"\\n\\t\\r\\/"', '"\\u00e9"', '"\\uD83D\\uDE00"',
    '"\\ud800"', '"\\udc00"', '"\\u12"', '"\\x"', '"\\', '"unterminated', '"10.0.0.0/8"', '"fd00::/8"',
    '"10.0.0.1/8"', '"::1/129"', '"ord-*-eu"', '"é€😀"',
    # numbers, good and bad
    "0", "42", "-7", "3.14", "1e6", "1E-3", "-0.0", "1e999", "-1e999", "007", "1.", ".5", "1.2.3", "10_000",
    "9" * 40, "1e", "0x10", "10..100", "1..", "..2", "9007199254740993", "9007199254740992.0", "-9223372036854775809",
    "1" + "0" * 400,
    # durations, good and bad
    "250ms", "2s", "5m", "1h", "7d", "1m30s", "30s1m", "1.5s", "-5s", "5min", "0ms", "10sec", "1e5ms",
    # templates, good and bad
    'f"order {id} for {customer.id}"', 'f"{{x}}"', 'f"{"', 'f"}"', 'f"{}"', 'f"{a b}"', 'f"\\{"', 'f"{x',
    # the other words
    "true", "false", "null", "TimeoutError", "list<string>", "string?",
    # comments
    "# a comment", "#", "#route r {",
]
WHITESPACE = [" ", "  ", "\n", "\t", "\r\n", "\r", "\f", "\n\n", "\n  "]
ODD = ["\x00", "\x01", "\x7f", "é", "€", "😀", "\ufeff", "\u200b", "\ud7ff", "\uffff", "\U0010ffff",
       "\x0b", "\x1c", "\x85", "\xa0", "\u2028", "\u3000"]

_token = st.one_of(
    st.sampled_from(KEYWORDS),
    st.sampled_from(KEYWORDS),
    st.sampled_from(PUNCTUATION),
    st.sampled_from(LITERALS),
    st.sampled_from(WHITESPACE),
    st.sampled_from(ODD),
    st.characters(),  # any code point, lone surrogates included: `parse_text` takes any str
)
# Tokens with a blank between them: near-miss declarations rather than one long word.
random_tokens = st.lists(st.tuples(_token, st.sampled_from([" ", " ", "\n", ""])), max_size=60).map(
    lambda pairs: "".join(t + sep for t, sep in pairs)
)
# Characters of the language and anything else, glued without separators.
_char = st.one_of(
    st.sampled_from(list("{}[]()<>,:?=!.-*#\"\\_ \n\t")),
    st.sampled_from(list("aeiorstnmd0123456789")),
    st.sampled_from(ODD),
    st.characters(),
)
random_text = st.one_of(st.lists(st.one_of(_char, _token), max_size=120).map("".join), st.text(max_size=200))

# ---- mutations of valid files ----------------------------------------------------------

# Roughly the language's tokens: strings (closed or not), words, two-character operators, one character.
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|[\w*][\w.*-]*|\.\.|[<>=!]=|#[^\n]*|\S')


def _spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _TOKEN.finditer(text)]


@st.composite
def _mutation(draw: st.DrawFn, text: str) -> str:
    n = len(text)
    kind = draw(st.sampled_from([
        "delete_span", "duplicate_span", "swap_spans", "insert", "replace_char", "truncate",
        "delete_token", "duplicate_token", "swap_tokens", "replace_token", "replace_token", "splice",
    ]))
    if kind in ("delete_token", "duplicate_token", "swap_tokens", "replace_token"):
        tokens = _spans(text)
        if not tokens:
            kind = "insert"
    if kind == "delete_span":
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, min(n, i + 40)))
        return text[:i] + text[j:]
    if kind == "duplicate_span":
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, min(n, i + 80)))
        k = draw(st.integers(0, n))
        return text[:k] + text[i:j] + text[k:]
    if kind == "swap_spans":
        a, b, c, d = sorted(draw(st.lists(st.integers(0, n), min_size=4, max_size=4)))
        return text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]
    if kind == "insert":
        k = draw(st.integers(0, n))
        return text[:k] + draw(_token) + text[k:]
    if kind == "replace_char":
        if n == 0:
            return draw(_char)
        k = draw(st.integers(0, n - 1))
        return text[:k] + draw(_char) + text[k + 1:]
    if kind == "truncate":
        return text[: draw(st.integers(0, n))]
    if kind == "splice":
        other = draw(st.sampled_from(SEEDS))
        i = draw(st.integers(0, len(other)))
        j = draw(st.integers(i, len(other)))
        k = draw(st.integers(0, n))
        return text[:k] + other[i:j] + text[k:]
    i = draw(st.integers(0, len(tokens) - 1))
    start, end = tokens[i]
    if kind == "delete_token":
        return text[:start] + text[end:]
    if kind == "duplicate_token":
        return text[:end] + " " + text[start:end] + text[end:]
    if kind == "replace_token":
        new = draw(st.one_of(_token, st.sampled_from(LITERALS)))
        return text[:start] + new + text[end:]
    j = draw(st.integers(0, len(tokens) - 1))
    (a, b), (c, d) = sorted([tokens[i], tokens[j]])
    if b > c:
        return text
    return text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]


@st.composite
def mutated_seed(draw: st.DrawFn) -> str:
    seed = text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        text = draw(_mutation(text))
    if text == seed:  # the mutations undid each other or changed nothing: a case is a new text
        k = draw(st.integers(0, len(text)))
        text = text[:k] + draw(_token) + text[k:]
    return text


# ---- the properties ----------------------------------------------------------------------

CASES: Counter[str] = Counter()
TEXTS: dict[str, set[int]] = {}


def _position(text: str, offset: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def _check_span(span: Span, text: str, path: str) -> None:
    assert span.file == path
    assert 0 <= span.start <= span.end <= len(text), span
    assert (span.line, span.column) == _position(text, span.start), span
    assert (span.end_line, span.end_column) == _position(text, span.end), span


# The grammar's terminals, ignored ones (white space, comments) included: a lexical error
# (E0002) must point at a character where none of them matches.
_TERMINALS = {t.name: re.compile(t.pattern.to_regexp()) for t in parser().terminals}


def _check_diagnostic(diagnostic: Diagnostic, text: str, path: str) -> None:
    assert isinstance(diagnostic, Diagnostic)
    assert diagnostic.code in CODES, diagnostic
    assert diagnostic.severity is (Severity.WARNING if diagnostic.code.startswith("W") else Severity.ERROR)
    assert diagnostic.message, diagnostic
    _check_span(diagnostic.span, text, path)
    for related in diagnostic.related:
        _check_span(related.span, text, path)
    span = diagnostic.span
    if diagnostic.code == "E0002":  # an unexpected character: exactly that character
        assert span.end == span.start + 1, diagnostic
        assert not [name for name, terminal in _TERMINALS.items() if terminal.match(text, span.start)], diagnostic
    elif diagnostic.code == "E0003":  # an unterminated string: from its quote, and really not closed
        assert text[span.start] == '"' and not _TERMINALS["STRING"].match(text, span.start), diagnostic
    elif diagnostic.code == "E0001":  # an unexpected token: not empty
        assert span.start < span.end, diagnostic


def check_parse(text: str, test: str) -> None:
    path = "fuzz.route"
    module, diagnostics = parse_text(text, path)
    assert module.path == path
    assert isinstance(diagnostics, list)
    for diagnostic in diagnostics:
        _check_diagnostic(diagnostic, text, path)
    if not any(d.is_error for d in diagnostics):
        assert parse_text(text, path) == (module, diagnostics)
    CASES[test] += 1
    TEXTS.setdefault(test, set()).add(hash(text))


FUZZ = settings(deadline=None, print_blob=True)


@settings(FUZZ, max_examples=RANDOM_TEXT_CASES)
@given(random_text)
@example("")
@example("\x00")
@example("route")
@example('"')
@example("route r { on a to b }\n#")
@example("}" * 50 + "{" * 50)
@example("route r {\n" * 30)
@example("test t { send e { a: [[[[[[[[[[[[[[[[ }")
# White space that Python's `\s` knows and the grammar does not: once an IndexError at the end
# of a file, and an E0002 pointing at the character after it (or E0003 at a closed string).
@example("route r { on a to b }\x0b")
@example("\xa0")
@example("route r { on a to b }\n\u2028")
@example("route r { on a to b }\n\u3000event x")
@example("route r {\x0b on a to b }")
@example('route r { on a when x ==\xa0"y" to b }')
@example("route r { on a when x ==\u30001 to b }")
def test_random_text_parses_or_reports(text: str) -> None:
    check_parse(text, "random_text")


@settings(FUZZ, max_examples=RANDOM_TOKENS_CASES)
@given(random_tokens)
def test_random_tokens_parse_or_report(text: str) -> None:
    check_parse(text, "random_tokens")


@settings(FUZZ, max_examples=MUTATION_CASES)
@given(mutated_seed())
def test_mutated_files_parse_or_report(text: str) -> None:
    check_parse(text, "mutated")


@pytest.mark.parametrize("name", sorted(NORMATIVE))
def test_normative_examples_parse_cleanly(name: str) -> None:
    """The seeds themselves are valid, or the mutations would start from broken files."""
    module, diagnostics = parse_text(NORMATIVE[name], f"{name}.route")
    assert diagnostics == []
    assert module.decls


def test_seed_of_every_predicate_parses_cleanly() -> None:
    assert [d for d in parse_text(PREDICATES)[1] if d.is_error] == []


# ---- strings decode like JSON strings, or are reported ------------------------------------

_string_piece = st.one_of(
    st.characters(exclude_characters='"\\\n', exclude_categories=("Cs",)),
    st.sampled_from(['\\"', "\\\\", "\\n", "\\t", "\\r", "\\/", "\\b", "\\f", "\\x", "\\u", "\\u12", "\\U0001f600",
                     "\\u00e9", "\\u0000", "\\uD83D\\uDE00", "\\\t", "\\é"]),
    st.integers(0, 0xFFFF).map(lambda c: f"\\u{c:04x}"),
    st.integers(0xD800, 0xDFFF).map(lambda c: f"\\u{c:04X}"),
)


@settings(FUZZ, max_examples=STRING_CASES)
@given(st.lists(_string_piece, max_size=8).map("".join))
@example("\\ud83d\\ude00")
@example("\\ud800")
@example("\\udc00\\ud800")
# A lone high surrogate followed by another escape was once dropped without a diagnostic.
@example("\\ud800\\n")
@example("\\ud800abc\\t")
@example("\\ud800\\ud83d\\ude00")
@example("\\ud800\\u0041\\udc00")
def test_string_escapes_decode_like_json(body: str) -> None:
    text = f'route r {{ on a when x == "{body}" to b }}'
    module, diagnostics = parse_text(text, "fuzz.route")
    for diagnostic in diagnostics:
        _check_diagnostic(diagnostic, text, "fuzz.route")
    # The language's escapes are JSON's without `\b` and `\f`; a lone surrogate is an error.
    try:
        expected: str | None = None if re.search(r"\\[bf]", body.replace("\\\\", "")) else json.loads(
            f'"{body}"', strict=False)
    except ValueError:
        expected = None
    if expected is not None and re.search("[\ud800-\udfff]", expected):
        expected = None
    if expected is None:
        assert [d.code for d in diagnostics] == ["E0010"] * len(diagnostics) and diagnostics, (body, diagnostics)
    else:
        assert diagnostics == [], (body, diagnostics)
        assert module.decls[0].when.value.value == expected
    CASES["strings"] += 1
    TEXTS.setdefault("strings", set()).add(hash(text))


# ---- whole projects: two files that may import each other -----------------------------------

_import_line = st.sampled_from([
    "", 'import "a.route"\n', 'import "b.route"\n', 'import "./a.route"\n', 'import "missing.route"\n',
    'import "."\n', 'import "sub/../b.route"\n', 'import ""\n', 'import "a.route"\nimport "a.route"\n',
])
_file_text = st.one_of(mutated_seed(), st.sampled_from(SEEDS), random_tokens)


@settings(FUZZ, max_examples=PROJECT_CASES)
@given(_import_line, _file_text, _import_line, _file_text, st.booleans())
@example("", 'import "common.route"\n', "", "\ufeff ", True)
@example("", "route r { on a to b }", 'import "a.route"\n', "\ud800 ", True)
def test_projects_load_or_report(import_a: str, text_a: str, import_b: str, text_b: str, whole: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        written = {}
        for name, text in (("a.route", import_a + text_a), ("b.route", import_b + text_b)):
            # A lone surrogate makes bytes that are not UTF-8: the loader must report them.
            data = text.encode("utf-8", "surrogatepass")
            with open(os.path.join(folder, name), "wb") as handle:
                handle.write(data)
            written[os.path.realpath(os.path.join(folder, name))] = data
        paths = [folder] if whole else [os.path.join(folder, "a.route")]
        project = load_project(paths)
        for diagnostic in project.diagnostics:
            assert diagnostic.code in CODES, diagnostic
            for span in (diagnostic.span, *(r.span for r in diagnostic.related)):
                if span.file in project.sources:
                    _check_span(span, project.sources[span.file].text, span.file)
                else:  # a file that could not be read at all: the start of its name
                    assert span[1:] == (0, 0, 1, 1, 1, 1), diagnostic
        for path, source in project.sources.items():
            # Read back exactly, newlines and all; a byte order mark is not text; bytes that are
            # not UTF-8 are shown as replacement characters.
            assert source.text == written[os.path.realpath(path)].decode("utf-8-sig", errors="replace")
    CASES["projects"] += 1
    TEXTS.setdefault("projects", set()).add(hash((import_a + text_a, import_b + text_b, whole)))


# ---- the count ----------------------------------------------------------------------------

COUNTED = ("random_text", "random_tokens", "mutated", "strings", "projects")


def test_enough_cases_ran() -> None:
    """Runs after the tests above: fails if they ran fewer than `MIN_CASES` different inputs."""
    if any(CASES[name] == 0 for name in COUNTED):
        pytest.skip("only part of this module was selected")
    ran = sum(CASES[name] for name in COUNTED)
    # Different random choices can make the same input (Hypothesis tries small values often):
    # only different inputs count.
    distinct = sum(len(TEXTS[name]) for name in COUNTED)
    counts = {name: f"{len(TEXTS[name])} different of {CASES[name]}" for name in COUNTED}
    assert distinct >= MIN_CASES, f"only {distinct} different fuzz inputs ran ({counts}); the target is {MIN_CASES}"
    assert ran >= distinct


# ---- regressions of bugs the fuzzer found -------------------------------------------------

ONCE_CRASHED = {
    "number of 5000 digits": ("retry r { attempts " + "9" * 5000 + " }", "E0012"),
    "duration of 5000 digits": ("retry r { backoff fixed " + "9" * 5000 + "ms }", "E0011"),
    "range bound of 5000 digits": ("route r { on a when x in 1.." + "1" * 5000 + " to b }", "E0012"),
    # the AST was as deep as the nesting, and attrs' recursive `__eq__` / `__repr__` (and the
    # reference interpreter) overflowed the stack from about 500 levels
    "1000 nested not": ("route r { on a when " + "not " * 1000 + "x == 1 to b }", "E0006"),
    "1000 nested lists": ("test t { send e { a: " + "[" * 1000 + "]" * 1000 + " } expect nothing }", "E0006"),
    "1000 nested objects in a transform": ("route r { on a to b with { " + "a: { " * 1000 + "}" * 1000 + " } }",
                                           "E0006"),
}


@pytest.mark.parametrize(("text", "code"), ONCE_CRASHED.values(), ids=list(ONCE_CRASHED))
def test_once_crashed(text: str, code: str) -> None:
    check_parse(text, "regressions")
    _, diagnostics = parse_text(text)
    assert [d.code for d in diagnostics] == [code]
