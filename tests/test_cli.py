"""The `interlock` command: exit codes, silence on success, formats, flags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from interlock.cli import main


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.route").write_text("target t { mode async, on_exhausted drop }\nroute r { on e.x to t }\n")
    (tmp_path / "warn.route").write_text("target t { mode async, on_exhausted drop }\n"
                                          "route r { on e.x when a == null to t }\n")
    (tmp_path / "bad.route").write_text("target t { mode async }\nroute r { on e.x to u, v }\n")
    return tmp_path


def test_check_is_silent_on_success(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "ok.route"]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")


def test_errors_exit_1_with_a_count(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "bad.route"]) == 1
    err = capsys.readouterr().err
    assert "error[E0104]: unknown target `u`" in err
    assert " --> bad.route:2:21" in err
    assert err.rstrip().endswith("found 2 errors and 0 warnings in 1 file")


def test_warnings_pass_unless_strict(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "warn.route"]) == 0
    assert "warning[W0010]" in capsys.readouterr().err
    assert main(["check", "--strict", "warn.route"]) == 1


def test_json_format(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--format", "json", "bad.route"]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    report = json.loads(out)
    assert report["summary"] == {"errors": 2, "warnings": 0, "files": 1, "shown": 2}
    first = report["diagnostics"][0]
    assert {k: first[k] for k in ("code", "severity", "file", "line", "column", "end_column")} == {
        "code": "E0104", "severity": "error", "file": "bad.route", "line": 2, "column": 21, "end_column": 22}


def test_json_on_success_is_an_empty_report(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--format", "json", "ok.route"]) == 0
    assert json.loads(capsys.readouterr().out)["diagnostics"] == []


def test_max_errors_keeps_the_count_exact(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--max-errors", "1", "bad.route"]) == 1
    err = capsys.readouterr().err
    assert err.count("error[E0104]") == 1
    assert "found 2 errors and 0 warnings in 1 file (1 not shown: --max-errors 1)" in err


def test_usage_errors_exit_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "missing.route"]) == 2
    assert "no such file or folder: `missing.route`" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["check"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["check", "--max-errors", "-1", "ok.route"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def test_the_installed_command_runs(project: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "interlock.cli", "check", "bad.route"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "error[E0104]" in result.stderr and "Traceback" not in result.stderr


def test_output_cut_short_by_its_reader_ends_quietly(tmp_path: Path) -> None:
    # `interlock test ... --format json | head`: the reader leaves early; like Unix tools, no
    # error then (it used to be "internal error: BrokenPipeError").
    tests = "\n".join(f"test t{n} {{ send order.created {{ amount: {n} }} expect billing }}" for n in range(3000))
    (tmp_path / "p.route").write_text(
        "event order.created { amount: int }\ndead_letter dlq\ntarget billing { dead_letter dlq }\n"
        "route r { on order.created to billing }\n" + tests)
    process = subprocess.Popen([sys.executable, "-m", "interlock.cli", "test", str(tmp_path), "--format", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(10)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(60) == 0, stderr
    assert "internal error" not in stderr and "Traceback" not in stderr


def test_serve_on_uvloop_without_uvloop_exits_2_saying_what_to_install(
        project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else find_spec(name, *a))
    assert main(["serve", "ok.route", "--store", "memory://", "--loop", "uvloop"]) == 2
    assert "pip install 'interlock[fast]'" in capsys.readouterr().err


def test_root_names_the_folder_imports_may_read(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "app").mkdir()
    (project / "app" / "main.route").write_text('import "../lib.route"\nroute r { on e.x to t }\n')
    (project / "lib.route").write_text("target t { mode async, on_exhausted drop }\n")
    assert main(["check", "app/main.route"]) == 1
    assert "outside the project's folder" in capsys.readouterr().err
    assert main(["check", "--root", ".", "app/main.route"]) == 0


def test_control_characters_from_a_file_are_shown_escaped(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """review14: escape sequences from a `.route` file (in an import path, in a source line
    shown) and newlines in an import path went to the terminal raw. JSON keeps the text."""
    (project / "esc").mkdir()
    (project / "esc" / "a.route").write_text(
        'import "\\u001b]0;pwned\\u0007\\u001b[2Jx.route"\nimport "two\\nlines.route"\n'
        'target t { mode async, on_exhausted drop } # \x1b[31m red\nroute r { on e when x == "\x1b[2J\u202e" to u }\n')
    assert main(["check", "esc"]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err
    assert "\\x1b]0;pwned\\x07\\x1b[2Jx.route`: no such file" in err
    assert "two\\nlines.route`: no such file" in err
    assert '4 | route r { on e when x == "\u241b[2J\ufffd" to u }' in err
    assert "\n  | " + " " * 36 + "^ not defined" in err  # under `u`, column 37: one symbol for one character
    assert main(["check", "--format", "json", "esc"]) == 1
    messages = [d["message"] for d in json.loads(capsys.readouterr().out)["diagnostics"]]
    assert any("\x1b]0;pwned\x07\x1b[2Jx.route" in m for m in messages) and any("two\nlines" in m for m in messages)


def _deep(levels: int) -> str:
    return '{"type": "e.x", "data": {"x": ' + "[" * levels + "1" + "]" * levels + "}}"


def test_event_json_nested_too_deep_is_refused_as_bad_input(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """review14: an event nested 1000 levels deep was `internal error: RecursionError`, exit 3,
    in explain, simulate and publish; explain took data nested deeper than publish takes, which publish
    refuses."""
    (project / "deep.json").write_text(_deep(5000))
    (project / "deep.jsonl").write_text(_deep(5000) + "\n")
    for argv in (["explain", "ok.route", "--event", "deep.json"], ["simulate", "ok.route", "--events", "deep.jsonl"],
                 ["publish", "ok.route", "--event", "deep.json", "--store", "memory://"],
                 ["publish", "ok.route", "e.x", "--data", _deep(5000)[31:-1], "--store", "memory://"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "nested too deep to read" in err and "internal error" not in err, (argv, err)
    (project / "deep300.json").write_text(_deep(300))
    assert main(["explain", "ok.route", "--event", "deep300.json"]) == 2
    assert "nested deeper than 64 levels" in capsys.readouterr().err


def test_explain_refuses_data_that_is_not_an_object(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """review14: explain took a list as the event's data, and answered what no publish can
    deliver; simulate refused it."""
    (project / "list.json").write_text('{"type": "e.x", "data": [{"x": 1}]}')
    assert main(["explain", "ok.route", "--event", "list.json"]) == 2
    assert "event data must be a JSON object (a dict), not list" in capsys.readouterr().err


def test_root_must_name_a_folder(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """review14: `--root ok.route` (a file), `--root /nonexistent` and `--root ""` were taken."""
    for root, says in (("ok.route", "`ok.route` is not a folder"), ("/nonexistent", "no such folder"),
                       ("", "an empty path names no folder")):
        for argv in (["check", "--root", root, "ok.route"], ["explain", "ok.route", "--root", root, "--event", "e"],
                     ["status", "ok.route", "--root", root, "--store", "memory://"]):
            with pytest.raises(SystemExit) as exit_:
                main(argv)
            assert exit_.value.code == 2
            assert f"argument --root: {says}" in capsys.readouterr().err, argv


def test_compile_frees_the_project_before_the_collector_is_back(project: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # One pause of the collector for all of `interlock compile`: the project's objects are
    # freed unscanned (a pause per step made the collector scan the whole AST after loading).
    import gc
    import weakref

    from interlock import cli
    from interlock.dsl import load_project

    collector_on_when_freed: list[bool] = []

    def loading(*args: object) -> object:
        project = load_project(*args)  # type: ignore[arg-type]
        weakref.finalize(project, lambda: collector_on_when_freed.append(gc.isenabled()))
        return project

    monkeypatch.setattr(cli, "load_project", loading)
    assert main(["compile", "ok.route", "-o", "router.json"]) == 0
    assert collector_on_when_freed == [False]
    assert json.loads((project / "router.json").read_text())["format"] == "interlock-router"
