"""`interlock test`: the `test` blocks of a project, run on the reference interpreter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interlock.cli import main
from interlock.compiler.route_tests import run_tests
from interlock.dsl import load_project

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: Every project under examples/: each folder is a project of its own.
PROJECTS = ["shop", "http"]

PROJECT = """
target fraud { mode sync, timeout 100ms }
target billing { mode async, on_exhausted drop }
target audit { mode async, on_exhausted drop }
route big { on order.created when amount >= 1000 to fraud, billing }
route every { on order.* to audit }
"""


@pytest.mark.parametrize("name", PROJECTS)
def test_the_examples_pass(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(EXAMPLES / name)]) == 0
    out = capsys.readouterr().out
    assert "0 failing" in out


def test_every_folder_of_examples_with_route_files_is_a_listed_project() -> None:
    folders = {path.relative_to(EXAMPLES).parts[0] for path in EXAMPLES.rglob("*.route")}
    assert folders == set(PROJECTS)


@pytest.mark.parametrize("name", PROJECTS)
def test_the_examples_check_clean(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(EXAMPLES / name)]) == 0
    assert capsys.readouterr() == ("", "")


def test_every_step_is_run_and_compared(tmp_path: Path) -> None:
    (tmp_path / "p.route").write_text(PROJECT + """
test t {
  send order.created { amount: 5000 }
  expect fraud, billing, audit
  send order.created { amount: 5 }
  expect audit, billing
  send payment.failed { }
  expect nothing
}""")
    results = run_tests(load_project([str(tmp_path)]))
    assert [(r.step, r.passed) for r in results] == [(1, True), (2, False), (3, True)]
    second = results[1]
    assert second.missing == {"billing"} and second.unexpected == frozenset()
    assert second.actual == {"audit"}


def test_a_failure_shows_expected_and_actual_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.route").write_text(PROJECT + "test small { send order.created { amount: 5 } expect billing }\n")
    assert main(["test", "p.route"]) == 1
    out = capsys.readouterr().out
    assert "FAIL small (step 1, send order.created)  p.route:7:14" in out
    assert "expected" in out and "actual" in out and "missing" in out and "unexpected" in out
    assert "0 tests ok, 1 failing (1 steps)" in out
    assert main(["test", "--format", "json", "p.route"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["steps"][0]["expected"] == ["billing"] and report["steps"][0]["actual"] == ["audit"]
    assert report["summary"] == {"steps": 1, "failed": 1}


def test_a_project_with_errors_is_not_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.route").write_text("test t { send e { } expect nowhere }\n")
    assert main(["test", str(tmp_path)]) == 1
    assert "error[E0104]" in capsys.readouterr().err
