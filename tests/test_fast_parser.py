"""The parser's fast path (dsl/fast_parser.py) changes nothing that parsing returns.

`parse_text(text)` (the fast path, and Lark's parser for what it declines) and
`parse_text(text, fast=False)` (Lark's parser for the whole file) must return equal modules,
spans included, and equal diagnostics, on:

- every `.route` file of examples/ and tests/fixtures/, every ```route block of README.md
  and docs/*.md, the fuzzer's seeds, and the projects bench/parse.py and bench/match.py
  generate;
- random valid projects (test_compiled_matching's), random tokens and mutations of all the
  files above (test_fuzz's strategies), so that error recovery is covered;
- a word the grammar spells out, in every place where the fast path takes any name;
- cases written for each place where the parse of the rest could differ from that of the
  whole file (`parser._parse_rest`), which fail without its check.

And the fast path must take what it is for: every declaration of generated 1,000-route
projects, and everything of a valid random project.
"""

from __future__ import annotations

import importlib.util
import random
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_compiled_matching import _project as random_project
from test_docs_examples import _blocks as docs_blocks
from test_fuzz import SEEDS, mutated_seed, random_tokens

from interlock.dsl import fast_lexer, fast_parser, parse_text
from interlock.dsl import parser as parser_module
from interlock.dsl.lexicon import GUARDS, Lexicon
from interlock.dsl.parser import lexicon
from interlock.dsl.source import SourceFile

ROOT = Path(__file__).resolve().parent.parent


def _bench(name: str) -> ModuleType:
    """A script of bench/ (not a package), for the projects it generates."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _generated(tmp: Path, routes: int) -> dict[str, str]:
    """The files of bench/parse.py's project and bench/match.py's two projects."""
    paths, _ = _bench("parse").generate(str(tmp), routes)
    texts = {f"bench/parse.py {Path(p).name}": Path(p).read_text(encoding="utf-8") for p in paths}
    match = _bench("match")
    texts["bench/match.py constant output"] = match.project_text(match.generate(routes, scale=routes // 50))
    texts["bench/match.py dense"] = match.project_text(match.dense(routes))
    return texts


def _files() -> dict[str, str]:
    texts = {}
    for folder in ("examples", "tests/fixtures"):
        for path in sorted((ROOT / folder).rglob("*.route")):
            try:
                texts[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue  # (a fixture that is not UTF-8 on purpose)
    texts.update(docs_blocks())
    texts.update({f"fuzz seed {i}": seed for i, seed in enumerate(SEEDS)})
    return texts


FILES = _files()


def assert_alike(text: str) -> None:
    fast = parse_text(text, "f.route")
    whole = parse_text(text, "f.route", fast=False)
    assert fast == whole


def taken(text: str) -> list[bool]:
    """For each unit of the text, whether the fast path takes it."""
    found = fast_parser.declarations(SourceFile("f.route", text), fast_lexer.units(text, lexicon()),
                                     lexicon().keywords)
    assert found is not None, "the fast path gave the file up"
    return [decl is not None for _, _, decl in found]


# ---- the corpus ----------------------------------------------------------------------


def test_the_corpus_has_files_of_every_kind() -> None:
    assert sum(name.startswith("examples/") for name in FILES) >= 5
    assert sum(name.startswith("tests/fixtures/") for name in FILES) >= 50
    assert sum(".md:" in name for name in FILES) >= 19


@pytest.mark.parametrize("name", sorted(FILES))
def test_files_parse_alike(name: str) -> None:
    assert_alike(FILES[name])


def test_generated_projects_parse_alike_and_are_taken_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _generated(tmp_path, 1000)
    assert len(texts) >= 5
    for name, text in texts.items():
        assert_alike(text)
        units = taken(text)
        assert len(units) >= text.count("\nroute ") and all(units), name

    def lark(*args: Any) -> Any:
        raise AssertionError("Lark's parser was called")

    monkeypatch.setattr(parser_module, "_parse_lark", lark)
    for text in texts.values():
        module, diagnostics = parse_text(text, "f.route")
        assert module.decls and not diagnostics


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_project())
def test_random_projects_parse_alike_and_are_taken_when_clean(text: str) -> None:
    assert_alike(text)
    if not parse_text(text, "f.route", fast=False)[1]:  # nothing to report: nothing to decline
        assert all(taken(text))


# ---- broken files: error recovery -------------------------------------------------------


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_seed())
def test_mutated_files_parse_alike(text: str) -> None:
    assert_alike(text)


@settings(max_examples=500, deadline=None)
@given(random_tokens)
def test_random_tokens_parse_alike(text: str) -> None:
    assert_alike(text)


_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|[\w*`][\w.*`-]*|\.\.\.?|\?\?|[<>=!]=|#[^\n]*|\S')
_NOISE = ["{", "}", "(", ")", "[", "]", ",", "and", "or", "not", "to", "when", "on", "in", "route", "event",
          "\nroute", "target", "with", "..", "==", "?", "1", '"x"', "@", '"', "5min", "`a b`", "list<", "}\n"]


def test_mutated_generated_projects_parse_alike(tmp_path: Path) -> None:
    """Seeded mutations of pieces of the generated projects: tokens deleted, duplicated,
    swapped or replaced, several in a piece (pieces, as a whole project parses slowly)."""
    rng = random.Random(15)
    texts = list(_generated(tmp_path, 200).values())
    for _ in range(400):
        text = rng.choice(texts)
        start = text.rfind("\n", 0, rng.randrange(len(text))) + 1
        text = text[start:start + rng.randrange(200, 3000)]
        for _ in range(rng.randint(1, 4)):
            spans = [m.span() for m in _TOKEN.finditer(text)]
            a, b = spans[rng.randrange(len(spans))]
            c, d = spans[rng.randrange(len(spans))]
            kind = rng.randrange(4)
            if kind == 0:
                text = text[:a] + text[b:]
            elif kind == 1:
                text = text[:b] + " " + text[a:b] + text[b:]
            elif kind == 2 and b <= c:
                text = text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]
            else:
                text = text[:a] + rng.choice(_NOISE) + text[b:]
        assert_alike(text)


# Each fails without its check in `parser._parse_rest` or `RouteLexer._check_between`.
MISALIGNED = {
    # `unrouted to` is unfinished where the taken route was blanked: in the whole file `route`
    # ends it with an error, in the rest it would be finished by `dead_letter d.*`, no error
    "unfinished before a taken one": "unrouted to\nroute a { on x to y }\ndead_letter d.*\n",
    # recovery from `)` in `route b` restarts at `route.x`, a name, not a declaration: in the
    # rest it would follow `dead_letter q.*` (which may take a `{`), in the whole file `route a`
    "a name where a blanked one ended": "dead_letter q.*\nroute a { on x to y }\nroute b { on )\nroute.x { }\n",
    # the 20th error cuts the rest of the file, taken declarations with it
    "more errors than the cap": "".join(f"route r{i} {{ on a to }}\n" for i in range(21)) + "route ok { on a to b }\n",
}


@pytest.mark.parametrize("name", sorted(MISALIGNED))
def test_where_the_rest_would_parse_otherwise(name: str) -> None:
    text = MISALIGNED[name]
    assert any(taken(text)) and not all(taken(text))
    assert_alike(text)


def test_a_file_mostly_declined_is_left_to_lark_whole() -> None:
    """Past `GIVE_UP` units, more than half of them declined, the fast path stops: Lark's
    parser reads the file whole (the fast path's work would only add to its cost)."""
    declined = "route r{} {{ on a when x == null to b }}\n"  # W0010: a warning declines
    good = "route g{} {{ on a when x == 1 to b }}\n"
    mostly = "".join((declined if i % 3 else good).format(i) for i in range(3 * fast_parser.GIVE_UP))
    source = SourceFile("f.route", mostly)
    assert fast_parser.declarations(source, fast_lexer.units(mostly, lexicon()), lexicon().keywords) is None
    assert_alike(mostly)
    half = "".join((declined if i % 2 else good).format(i) for i in range(3 * fast_parser.GIVE_UP))
    assert taken(half).count(True) == 3 * fast_parser.GIVE_UP // 2
    assert_alike(half)


def test_a_syntax_error_costs_one_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lark's parser reads only what the fast path declined, even when that has syntax
    errors (whose messages parse examples of their own, which are not the blanked text)."""
    texts: list[str] = []
    parse_lark = parser_module._parse_lark

    def spy(source: SourceFile, text: str, taken: Any = ()) -> Any:
        texts.append(text)
        return parse_lark(source, text, taken)

    monkeypatch.setattr(parser_module, "_parse_lark", spy)
    good = "".join(f"route r{i} {{ on a when x == {i} to t }}\n" for i in range(50))
    module, diagnostics = parse_text(good + "route bad { on a when x == to t }\n" + good.replace(" r", " s"))
    assert [d.code for d in diagnostics] == ["E0001"] and len(module.decls) == 100 and module.broken == ("bad",)
    assert len(texts) == 1 and texts[0].strip().startswith("route bad")


# ---- words of the grammar as names -------------------------------------------------------

# Every place where the fast path takes any word as a name, because Lark's parser reads a
# name there whatever the word (`_Parser.name`, `_Parser.path_token`): `{}` stands for the word.
NAME_PLACES = [
    "event {}", "event {} {{ a: int }}", "retry {} {{ attempts 1 }}", "dead_letter {}",
    "dead_letter {} {{ retain 1d }}", "target {} {{ mode async }}", "unrouted to dead_letter {}",
    "route {} {{ on a to b }}", "choose {} {{ on a when x == 1 to b }}", "route r {{ on {} to b }}",
    "route r {{ on a, {} to b }}", "route r {{ on a to {} }}", "route r {{ on a to b, {} }}",
    "route r {{ on a to {} with {{ x: y }} }}", "target t {{ mode {} }}", "target t {{ on_exhausted {} }}",
    "target t {{ http {} \"https://a.b\", format {} }}", "target t {{ retry {} }}", "target t {{ dead_letter {} }}",
    "target t {{ emits [{}] }}", "retry r {{ jitter {} }}", "retry r {{ retry_on [{}, b] }}",
    "retry r {{ give_up_on [a, {}] }}", "target t {{ order by {} }}",
    "route r {{ on a when {} == 1 to b }}", "route r {{ on a when {} in [1] and {} is null to b }}",
    "route r {{ on a when exists {} to b }}", "route r {{ on a when missing {} or x == 1 to b }}",
    "route r {{ on a when any {} in [1] to b }}", "route r {{ on a when any {} {{ {} == 1 }} to b }}",
    "route r {{ on a when not {} == 1 to b }}", "route r {{ on a when not ({} == 1) to b }}",
    "route r {{ on a to b with {{ x: {} }} }}", "route r {{ on a to b with {{ x: {} ?? {} }} }}",
    "test {} {{ send e expect nothing }}", "test t {{ send {} expect {} }}", "test t {{ send e expect a, {} }}",
    "test t {{ send e expect a then {} emits {} expect b }}",
    "test t {{ send e {{ {}: 1 }} expect a with {{ {}: 2 }} }}",
    "route r {{ on a to b with {{ {}: x }} }}", "route r {{ on a to b with {{ x: 1, {}: y }} }}",
    "route r {{ on a to b with {{ x: [{{ {}: 1 }}] }} }}", "event e {{ {}: int }}", "event e {{ a: int, {}: int }}",
    "event e {{ a: {} }}", "event e {{ a: list<{}> }}",
    # and where a keyword might be read, which the fast path declines
    "route r {{ on a to b with {{ x: 1 {}: y }} }}", "route r {{ on a to b with {{ x: [{{ a: 1 {}: 1 }}] }} }}",
    "event e {{ a: {{ b: int }} {}: int }}",
]


@pytest.mark.parametrize("place", NAME_PLACES)
def test_every_word_of_the_grammar_as_a_name(place: str) -> None:
    for word in [*lexicon().keywords, "null", "list"]:
        assert_alike(place.format(word, word))


# ---- bounds and the lexicon ----------------------------------------------------------------


NESTED = {  # each nested `depth` levels deep (a transform's or a schema's own braces count)
    "parentheses": lambda depth: "route r { on a when " + "(" * depth + "x == 1" + ")" * depth + " to b }",
    "not": lambda depth: "route r { on a when " + "not " * depth + "x == 1 to b }",
    "transform": lambda depth: "route r { on a to b with { " + "a: { " * (depth - 1) + "}" * depth + " }",
    "lists": lambda depth: "route r { on a to b with { x: " + "[" * (depth - 1) + "]" * (depth - 1) + " } }",
    "schema": lambda depth: "event e { " + "a: { " * (depth - 1) + "b: int" + " }" * depth,
    "list types": lambda depth: "event e { a: " + "list<" * (depth - 1) + "int" + ">" * (depth - 1) + " }",
}


@pytest.mark.parametrize("form", sorted(NESTED))
def test_nesting_beyond_the_fast_paths_depth_is_declined(form: str) -> None:
    deepest = NESTED[form](fast_parser.MAX_DEPTH)
    assert taken(deepest) == [True]
    too_deep = NESTED[form](fast_parser.MAX_DEPTH + 1)
    assert taken(too_deep) == [False]
    assert_alike(too_deep)


def test_too_deep_for_lark_is_reported_by_lark() -> None:
    text = "route r { on a when " + "(" * 70 + "x == 1" + ")" * 70 + " to b }"
    assert [d.code for d in parse_text(text)[1]] == ["E0006"]
    assert_alike(text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(mutated_seed(), random_tokens))
@example("when a.`b c`.d == 1 and `x`.y-z == 2 and h.`x\\`y` exists a-b.`c` d.e.`f`.g to t")
@example("x.`unclosed y.` `` a.b. `c` a.`b`c `a`.`b`.`c` 1.`a` _a.`b` a..`b` *.`a`")
def test_the_guards_of_the_lexicon_change_no_token(text: str) -> None:
    """`GUARDS` only let the master expression give up early: without them, the same tokens."""
    unguarded = lexicon().master.pattern
    for name, guard in GUARDS.items():
        unguarded = unguarded.replace(f"(?P<{name}>{guard}", f"(?P<{name}>")
    assert unguarded != lexicon().master.pattern
    plain = attrs.evolve(lexicon(), master=re.compile(unguarded))

    def read(table: Lexicon) -> list[Any]:
        return [(unit.tokens, unit.lexed, unit.starts) for unit in fast_lexer.units(text, table)]

    assert read(lexicon()) == read(plain)
