"""Adversarial review of the parser's fast path (dsl/fast_lexer.py, dsl/fast_parser.py): the
breaks found, each as a failing test.

The nesting limits bound brackets (64), consecutive `not`s (64) and consecutive `??` (64)
one at a time, but each count starts again: `??` at every `{`, `not` at every `any`, so a
few kilobytes of text build an AST thousands of levels deep. Parsing it raises nothing, but
everything that walks it afterwards does: comparing the two parsers' modules, `interlock
check`, `fmt` and `compile` (internal error: RecursionError).

(The review also found the fast path slower than Lark's parser, by a constant factor, on a
file of one huge declaration broken early, and a file of 20 syntax errors parsed 14x slower
than one of 19: both are in the session's closing note; tests do not assert on timings.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.cli import main
from interlock.dsl import parse_text

HEAD = "event e { a: string }\ntarget b { mode async }\n"


def fallbacks_in_objects(levels: int) -> str:
    """`v: a ?? ... ?? a ?? { k: a ?? ... ?? { k: x } }`: 64 `??` (the limit) at each of `levels` objects."""
    value = "x"
    for _ in range(levels):
        value = " ?? ".join(["a"] * 64) + " ?? { k: " + value + " }"
    return HEAD + "route r {\n  on e\n  to b with { v: " + value + " }\n}\n"


def nots_in_any(levels: int) -> str:
    """`not not ... any xs { not not ... any xs { a == 1 } }`: 63 `not`s at each of `levels` `any`."""
    condition = "a == 1"
    for _ in range(levels):
        condition = "not " * 63 + "any xs { " + condition + " }"
    return HEAD + "route r {\n  on e\n  when " + condition + "\n  to b\n}\n"


DEEP = {
    "fallbacks in objects": fallbacks_in_objects(16),  # 5 KB
    "nots in any": nots_in_any(20),  # 5 KB
}


@pytest.mark.parametrize("name", sorted(DEEP))
def test_deep_ast_parses_alike_and_compares(name: str) -> None:
    """Both parsers accepted the text without a diagnostic, and their modules could not even be
    compared: `==` raised RecursionError. Now both refuse it alike (E0006)."""
    text = DEEP[name]
    fast = parse_text(text, "f.route")
    whole = parse_text(text, "f.route", fast=False)
    assert fast == whole
    assert [d.code for d in fast[1]] == ["E0006"] and fast[0].broken == ("r",)


@pytest.mark.parametrize("command", ["check", "fmt", "compile"])
@pytest.mark.parametrize("name", sorted(DEEP))
def test_cli_on_deep_ast_gives_diagnostics_not_internal_error(
    name: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`interlock check|fmt|compile` on 5 KB of text: "internal error: RecursionError: maximum
    recursion depth exceeded", where an E0006 ("nested too deep") is expected (dsl/parser.py
    MAX_DEPTH)."""
    monkeypatch.chdir(tmp_path)
    Path("deep.route").write_text(DEEP[name], encoding="utf-8")
    argv = {"check": ["check", "deep.route"], "fmt": ["fmt", "deep.route"],
            "compile": ["compile", "deep.route", "-o", "out.json"]}[command]
    main(argv)
    out, err = capsys.readouterr()
    assert "internal error" not in err, err
    assert "E0006" in out + err and "nested more than 256 levels deep" in out + err
