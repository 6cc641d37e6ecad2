"""`interlock fmt`: the canonical layout is idempotent, keeps every comment, and changes
nothing a program can see (the parse, without commas; the compiled artifact, without source
positions); files with errors are refused and left alone."""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark import Token, Tree
from test_compiled_matching import _project as matching_project
from test_docs_examples import _blocks as docs_blocks
from test_fuzz import SEEDS, mutated_seed

import interlock
from interlock.cli import main
from interlock.compiler.artifact import build_artifact
from interlock.compiler.pipeline import check
from interlock.dsl import load_project, parse_text
from interlock.dsl.printer import WIDTH, FormatError, format_source
from interlock.dsl.trivia import tokens, tree_parser

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir() and any(p.rglob("*.route")))
_COMMENT = re.compile(r"#[^\n]*")

# Where the artifact says where something was written: not part of what it means.
POSITIONS = frozenset({"text", "at", "file", "line", "column", "source_hash", "integrity"})


def _sans_positions(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sans_positions(v) for k, v in value.items() if k not in POSITIONS}
    if isinstance(value, list):
        return [_sans_positions(v) for v in value]
    return value


def _sans_commas(node: Tree[Token] | Token) -> Any:
    if isinstance(node, Token):
        return (node.type, str(node))
    return (node.data, [_sans_commas(c) for c in node.children if not (isinstance(c, Token) and c.type == "COMMA")])


def _comments(text: str) -> Counter[str]:
    """The comments of a file that parses: the text between its tokens."""
    found: Counter[str] = Counter()
    end = 0
    for token in [*tokens(tree_parser().parse(text)), None]:
        start = len(text) if token is None else token.start_pos or 0
        found.update(m.group().rstrip() for m in _COMMENT.finditer(text, end, start))
        if token is not None:
            end = token.end_pos or start
    return found


def assert_formats_well(text: str, path: str = "<text>") -> str:
    """Format `text`: idempotent, the same parse, the same comments. Returns the result."""
    formatted = format_source(text, path)
    assert format_source(formatted, path) == formatted, formatted
    assert _sans_commas(tree_parser().parse(formatted)) == _sans_commas(tree_parser().parse(text))
    assert _comments(formatted) == _comments(text)
    assert not any(line != line.rstrip() for line in formatted.splitlines())
    return formatted


def _artifact(folder: Path) -> Any:
    project = load_project([str(folder)])
    assert [d for d in check(project) if d.is_error] == []
    return _sans_positions(build_artifact(project))


def _format_tree(source: Path, target: Path) -> None:
    for path in source.rglob("*"):
        copy = target / path.relative_to(source)
        if path.is_dir():
            copy.mkdir(parents=True, exist_ok=True)
        elif path.suffix == ".route":
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(assert_formats_well(path.read_text(encoding="utf-8"), str(path)), encoding="utf-8")


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_projects_format_idempotently_and_compile_the_same(example: Path, tmp_path: Path) -> None:
    _format_tree(example, tmp_path)
    assert _artifact(tmp_path) == _artifact(example)


@pytest.mark.parametrize(("where", "text"), docs_blocks(), ids=[where for where, _ in docs_blocks()])
def test_docs_examples_format_idempotently(where: str, text: str) -> None:
    assert_formats_well(text, where)


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_fuzz_seeds_format_idempotently(seed: int) -> None:
    text = SEEDS[seed]
    if not any(d.is_error for d in parse_text(text)[1]):
        assert_formats_well(text)


@st.composite
def _commented(draw: st.DrawFn, text: str) -> str:
    """`text` with comments after some of its tokens: at the end of their line, or on lines of their own."""
    ends = sorted({t.end_pos or 0 for t in tokens(tree_parser().parse(text))})
    chosen = draw(st.lists(st.sampled_from(ends), max_size=8, unique=True)) if ends else []
    out, last = [], 0
    for number, end in enumerate(sorted(chosen)):
        out.append(text[last:end])
        out.append(draw(st.sampled_from([f"  # c{number}\n", f"\n# c{number}\n", f"\n\n  # c{number} x\n\n"])))
        last = end
    out.append(text[last:])
    return "".join(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(matching_project().flatmap(_commented))
def test_random_projects_format_to_the_same_artifact(text: str) -> None:
    formatted = assert_formats_well(text)
    with tempfile.TemporaryDirectory() as folder:
        original, result = Path(folder) / "a", Path(folder) / "b"
        original.mkdir()
        result.mkdir()
        (original / "p.route").write_text(text)
        (result / "p.route").write_text(formatted)
        assert _artifact(result) == _artifact(original)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_seed())
def test_mutated_files_that_parse_format_well(text: str) -> None:
    if not any(d.is_error for d in parse_text(text)[1]):
        assert_formats_well(text)


# ---- the layout ----------------------------------------------------------------------------


def test_layout_of_each_construct() -> None:
    text = """import "a.route"
import "b.route"
event   e { id : string , tags : list < string > , `a.b` : int ? , "x y": { z: bool } }
event bare
retry r { attempts 3 backoff exponential initial 1s factor 2 max 10s jitter full retry_on [A, B] }
dead_letter d { retain 7d }
dead_letter d2
target t { mode async, retry r, dead_letter d, timeout 2s, concurrency 4, order by id, emits [e] }
target h { http POST env("URL") headers { "X-A": "1", "X-B": env("B") } format binary retry { attempts 2 } }
defaults { timeout 1s }
unrouted to dead_letter d
route x { on e , bare when not (id == "a") and (tags contains "v" or `a.b` in 1..5)
  to t with { ... , id: id, n: `a.b` ?? 0, s: f"id {id}", l: [1, 2], o: { k: "v" } } }
choose c { on e when id matches regex "a b\\\\d" to t otherwise to h }
test tt { send e { id: "a" } expect t with { id: "a" }, h with exactly { id: "a" }
  then t emits e expect nothing }
"""
    assert format_source(text) == """import "a.route"
import "b.route"

event e {
  id: string
  tags: list<string>
  `a.b`: int?
  "x y": { z: bool }
}

event bare

retry r {
  attempts 3
  backoff exponential initial 1s factor 2 max 10s
  jitter full
  retry_on [A, B]
}

dead_letter d { retain 7d }
dead_letter d2

target t {
  mode async
  retry r
  dead_letter d
  timeout 2s
  concurrency 4
  order by id
  emits [e]
}

target h {
  http POST env("URL")
  headers { "X-A": "1", "X-B": env("B") }
  format binary
  retry { attempts 2 }
}

defaults { timeout 1s }

unrouted to dead_letter d

route x {
  on e, bare
  when not (id == "a") and (tags contains "v" or `a.b` in 1..5)
  to t with { ..., id: id, n: `a.b` ?? 0, s: f"id {id}", l: [1, 2], o: { k: "v" } }
}

choose c {
  on e
  when id matches regex "a b\\\\d" to t
  otherwise to h
}

test tt {
  send e { id: "a" }
  expect t with { id: "a" }, h with exactly { id: "a" }
  then t emits e
  expect nothing
}
"""


def test_long_conditions_break_before_and_or_at_the_top_level() -> None:
    fields = " and ".join(f"field_{i} == {i}" for i in range(12))
    text = f"route r {{ on e when (a == 1 or b == 2) and {fields} to t }}"
    formatted = assert_formats_well(text)
    lines = formatted.splitlines()
    assert lines[2] == "  when (a == 1 or b == 2)"
    assert lines[3:15] == [f"    and field_{i} == {i}" for i in range(12)]
    assert all(len(line) <= WIDTH for line in lines)


def test_long_objects_break_one_entry_a_line() -> None:
    entries = ", ".join(f'k{i}: "{"v" * 10}"' for i in range(8))
    formatted = assert_formats_well(f"test t {{ send e {{ {entries} }} expect nothing }}")
    assert '    k0: "vvvvvvvvvv"\n    k1: "vvvvvvvvvv"\n' in formatted


def test_comments_stay_where_they_were() -> None:
    text = """# file header

# about e
event e {  # opening
  # before id
  id: string  # after id


  n: int
  # at the end of e
}   # after e
route r { on e
  when id == "a"  # why
    # between
    and n > 1
  to t }
# at the end
"""
    assert assert_formats_well(text) == """# file header

# about e
event e {  # opening
  # before id
  id: string  # after id

  n: int
  # at the end of e
}  # after e

route r {
  on e
  when id == "a"  # why
    # between
    and n > 1
  to t
}
# at the end
"""


def test_trailing_comments_of_neighbouring_lines_are_aligned() -> None:
    formatted = assert_formats_well("event e {\n  id: string # a\n  amount: float # b\n}\n")
    assert formatted == "event e {\n  id: string     # a\n  amount: float  # b\n}\n"


def test_a_regex_is_kept_byte_for_byte() -> None:
    text = 'route r { on e when a matches regex "\\\\d+\\\\.[a-z]{2,}  x" to t }'
    assert '"\\\\d+\\\\.[a-z]{2,}  x"' in format_source(text)


def test_a_file_with_syntax_errors_is_refused() -> None:
    with pytest.raises(FormatError) as raised:
        format_source("route r { on e when to t }", "bad.route")
    assert [d.code for d in raised.value.diagnostics] == ["E0001"]
    with pytest.raises(FormatError):
        format_source("retry r { backoff fixed 5min }")  # (what parsing checks: a bad duration)


def test_empty_and_comment_only_files() -> None:
    assert format_source("") == ""
    assert format_source("\n\n") == ""
    assert format_source("# only\n\n\n# comments") == "# only\n\n# comments\n"


# ---- the command ---------------------------------------------------------------------------


def _write(path: Path, text: str, mode: int = 0o640) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_fmt_rewrites_files_in_place_keeping_permissions(tmp_path: Path) -> None:
    messy = _write(tmp_path / "p" / "a.route", "event   e\n", 0o604)
    tidy = _write(tmp_path / "p" / "sub" / "b.route", "event f\n")
    before = tidy.stat().st_mtime_ns
    assert main(["fmt", str(tmp_path / "p")]) == 0
    assert messy.read_text() == "event e\n"
    assert stat.S_IMODE(messy.stat().st_mode) == 0o604
    assert tidy.stat().st_mtime_ns == before  # unchanged files are not written
    assert sorted(os.listdir(tmp_path / "p")) == ["a.route", "sub"]  # no temporary file left


def test_fmt_check_says_which_files_would_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messy = _write(tmp_path / "a.route", "event   e\n")
    _write(tmp_path / "b.route", "event f\n")
    assert main(["fmt", "--check", str(tmp_path)]) == 1
    assert messy.read_text() == "event   e\n"
    assert "a.route" in capsys.readouterr().err
    assert main(["fmt", "--check", str(tmp_path / "b.route")]) == 0


def test_fmt_diff_prints_a_unified_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messy = _write(tmp_path / "a.route", "event   e\n")
    assert main(["fmt", "--diff", str(messy)]) == 0
    out = capsys.readouterr().out
    assert f"--- {messy}\n+++ {messy}\n" in out and "-event   e\n+event e\n" in out
    assert messy.read_text() == "event   e\n"  # --diff writes nothing
    assert main(["fmt", "--diff", "--check", str(messy)]) == 1


def test_fmt_refuses_a_file_with_syntax_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path / "bad.route", "route r { on e when to t }\n")
    good = _write(tmp_path / "good.route", "event   e\n")
    assert main(["fmt", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "bad.route:1:" in err and "E0001" in err
    assert bad.read_text() == "route r { on e when to t }\n"
    assert good.read_text() == "event e\n"  # the other files are still formatted


def test_fmt_usage_errors_exit_2(tmp_path: Path) -> None:
    assert main(["fmt", str(tmp_path / "missing.route")]) == 2
    with pytest.raises(SystemExit) as exited:
        main(["fmt"])
    assert exited.value.code == 2


def test_long_lists_of_scalars_fill_their_lines() -> None:
    codes = ", ".join(f'"C{i:02}"' for i in range(30))
    formatted = assert_formats_well(f"route r {{ on e when country in [{codes}] to t }}")
    lines = formatted.splitlines()
    assert lines[2] == "  when country in ["
    assert lines[3].startswith('      "C00", "C01", ') and 90 < len(lines[3]) <= WIDTH
    assert lines[-3] == "    ]"
    assert all(len(line) <= WIDTH for line in lines)


def test_a_key_that_is_a_keyword_keeps_its_comma_when_broken() -> None:
    long = '"' + "x" * 80 + '"'
    formatted = assert_formats_well(f"test t {{ send e {{ id: 1, and: 2, or: {long} }} expect nothing }}")
    assert "    id: 1,\n    and: 2,\n    or: " in formatted


def test_an_empty_list_with_a_comment_stays_a_list(tmp_path: Path) -> None:
    """`emits [ # none yet\n]` was written `emits [  # none yet\n    ,\n  ]`, which does not
    parse (found by review: the empty list was filled, and a fill ends with a comma)."""
    from interlock.dsl import parse_text
    from interlock.fmt import format_source

    formatted = format_source("target t { mode async, on_exhausted drop, emits [ # none yet\n] }\n")
    assert [d.code for d in parse_text(formatted)[1]] == []
    assert "# none yet" in formatted and "," not in formatted
    assert format_source(formatted) == formatted


def test_a_byte_order_mark_is_dropped_not_refused() -> None:
    from interlock.fmt import format_source

    assert format_source("\ufefftarget t { mode sync }\n") == "target t { mode sync }\n"


def test_list_types_nest_within_the_limit_of_brackets(tmp_path: Path) -> None:
    """`list<list<...>>` 5,000 deep checked clean, then fmt and the language server overflowed
    the stack (found by review): `list<` counts as a bracket, E0006 past 64."""
    deep = "event e { x: " + "list<" * 70 + "string" + ">" * 70 + " }\n"
    (tmp_path / "p.route").write_text(deep)
    assert [d.code for d in interlock.check(str(tmp_path))] == ["E0006"]
    fine = "event e { x: " + "list<" * 20 + "string" + ">" * 20 + " }\nroute r { on e when exists x to t }\n"
    (tmp_path / "p.route").write_text(fine + "target t { mode sync }\n")
    assert [d.code for d in interlock.check(str(tmp_path)) if d.is_error] == []


def test_a_file_reached_twice_is_formatted_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A symlink to a file of the same folder: the file was handled twice, its diff printed
    twice (found by review)."""
    messy = _write(tmp_path / "a.route", "event   e\n")
    (tmp_path / "b.route").symlink_to(messy)
    assert main(["fmt", "--diff", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("+event e\n") == 1
