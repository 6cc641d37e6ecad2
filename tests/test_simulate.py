"""`interlock simulate`: the real runtime, synthetic handlers, a report per target."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.cli import main

ROOT = Path(__file__).resolve().parent.parent
PROJECT = """
dead_letter dlq
retry twice { attempts 2 backoff fixed 1ms }
target billing { mode async, retry twice, dead_letter dlq }
target audit { mode async, dead_letter dlq }
route big { on order.created when amount >= 100 to billing }
route every { on order.* to audit }
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "p.route").write_text(PROJECT)
    lines = [f'{{"type": "order.created", "id": "e{n}", "data": {{"amount": {n * 10}}}}}' for n in range(40)]
    (tmp_path / "events.jsonl").write_text("\n".join([*lines, '{"type": "payment.failed", "data": {}}']) + "\n")
    return tmp_path


def _table(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) == 6 and cells[0] in ("billing", "audit"):
            rows[cells[0]] = cells[1:]
    return rows


def test_every_event_is_accounted_for(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", str(project / "p.route"), "--events", str(project / "events.jsonl"),
                 "--fail", "billing=1", "--slow", "audit=1"])
    assert code == 0
    out = capsys.readouterr().out
    rows = _table(out)
    # billing always fails: 30 events (amount >= 100) retried once each, then dead-lettered
    assert rows["billing"][:3] == ["0", "30", "30"]
    assert rows["audit"][:3] == ["40", "0", "0"]
    assert "unrouted (kept in their dead letter): 1" in out


def test_the_examples_simulate() -> None:
    assert main(["simulate", str(ROOT / "examples" / "shop"), "--events", str(ROOT / "examples" / "events.jsonl")]) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--fail", "nobody=0.5"], "--fail 'nobody=0.5': expected TARGET=VALUE with a target of the project"),
    (["--fail", "billing=2"], "the value must be between 0 and 1"),
    (["--slow", "billing=x"], "'x' is not a number"),
])
def test_bad_options_exit_2(project: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["simulate", str(project / "p.route"), "--events", str(project / "events.jsonl"), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_bad_events_line_is_named(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "bad.jsonl").write_text('{"type": "order.created", "data": {}}\n{"data": {}}\n')
    assert main(["simulate", str(project / "p.route"), "--events", str(project / "bad.jsonl")]) == 2
    assert "bad.jsonl:2:" in capsys.readouterr().err
