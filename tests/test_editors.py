"""What the repository gives editors and commit hooks besides highlighting (tests/test_highlight.py):
the VS Code extension folder is complete, and the pre-commit hooks run what they say."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parent.parent
VSCODE = ROOT / "editors" / "vscode"
INTERLOCK = Path(sys.executable).parent / "interlock"


def test_the_extension_names_files_that_exist() -> None:
    manifest = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    contributes = manifest["contributes"]
    assert (VSCODE / manifest["main"]).is_file()
    [language] = contributes["languages"]
    assert language["extensions"] == [".route"]
    assert (VSCODE / language["configuration"]).is_file()
    json.loads((VSCODE / language["configuration"]).read_text(encoding="utf-8"))
    [grammar] = contributes["grammars"]
    assert grammar["language"] == language["id"]
    assert grammar["scopeName"] == json.loads((VSCODE / grammar["path"]).read_text(encoding="utf-8"))["scopeName"]
    assert (VSCODE / grammar["path"]).resolve() == (VSCODE / "syntaxes" / "route.tmLanguage.json").resolve()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_extension_is_javascript_node_reads() -> None:
    subprocess.run(["node", "--check", str(VSCODE / "extension.js")], check=True, timeout=60)


def _hooks() -> dict[str, dict[str, object]]:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    return {hook["id"]: hook for hook in hooks}


def test_the_hooks_take_route_files() -> None:
    hooks = _hooks()
    assert sorted(hooks) == ["interlock-check", "interlock-fmt"]
    for hook in hooks.values():
        assert re.search(str(hook["files"]), "routes/orders.route")
        assert not re.search(str(hook["files"]), "service.py")
    assert hooks["interlock-fmt"]["entry"] == "interlock fmt"
    assert hooks["interlock-check"]["pass_filenames"] is False


def test_the_check_hook_checks_the_project_it_is_given(tmp_path: Path) -> None:
    hook = _hooks()["interlock-check"]
    entry = str(hook["entry"]).split()
    assert entry[0] == "interlock"
    args = hook["args"]
    assert isinstance(args, list)
    command = [str(INTERLOCK), *entry[1:], *args]
    (tmp_path / "ok.route").write_text("event a\ntarget t { mode sync }\nroute r { on a to t }\n", encoding="utf-8")
    assert subprocess.run(command, cwd=tmp_path, capture_output=True, timeout=120).returncode == 0
    (tmp_path / "bad.route").write_text("route s { on a to nowhere }\n", encoding="utf-8")
    failed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1
    assert "bad.route:1:" in failed.stdout + failed.stderr
