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
