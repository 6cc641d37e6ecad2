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


def _table(out: str, rows_of: tuple[str, ...] = ("billing", "audit")) -> dict[str, list[str]]:
    """Per target: delivered, retried, dead-lettered, dropped, failed, emitted, p50, p99."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) == 9 and cells[0] in rows_of:
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


def test_what_became_of_each_delivery_dropped_failed_emitted_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.route").write_text("""
event order.created { id: string, amount: int }
event invoice.issued { invoice: string, total: float }
dead_letter dlq
target audit { retry { attempts 2 backoff fixed 1ms }, on_exhausted drop }
target fraud { mode sync, retry { attempts 2 backoff fixed 1ms } }
target billing { dead_letter dlq, emits [invoice.issued] }
target ledger { dead_letter dlq }
route a { on order.created to audit, fraud, billing }
route b { on invoice.issued to ledger }
""")
    (tmp_path / "events.jsonl").write_text(
        '{"type": "order.created", "data": {"id": "a", "amount": 1}}\n'
        '{"type": "order.created", "data": {"id": "b", "amount": 2}}\n'
        '{"type": "order.created", "data": {"id": "c", "amount": "x"}}\n')
    code = main(["simulate", str(tmp_path / "p.route"), "--events", str(tmp_path / "events.jsonl"),
                 "--fail", "audit=1", "--fail", "fraud=1"])
    out = capsys.readouterr().out
    assert code == 1  # an event its schema refused
    rows = _table(out, ("audit", "fraud", "billing", "ledger"))
    assert rows["audit"][:6] == ["0", "2", "0", "2", "0", "0"]  # given up and dropped: said so
    assert rows["fraud"][:6] == ["0", "2", "0", "0", "2", "0"]  # failed: the publisher was told
    assert rows["billing"][:6] == ["2", "0", "0", "0", "0", "2"]  # emitted an invoice per delivery
    assert rows["ledger"][:6] == ["2", "0", "0", "0", "0", "0"]  # which were followed to the ledger
    assert "field `amount` must be an int" in out and "1 event(s) refused" in out


def test_an_emitted_event_with_an_any_field_is_made_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.route").write_text("""
event order.created { id: string }
event audit.logged { payload: any, note: string? }
dead_letter dlq
target billing { dead_letter dlq, emits [audit.logged] }
target audit { dead_letter dlq }
route a { on order.created to billing }
route b { on audit.logged to audit }
""")
    (tmp_path / "events.jsonl").write_text('{"type": "order.created", "data": {"id": "a"}}\n')
    code = main(["simulate", str(tmp_path / "p.route"), "--events", str(tmp_path / "events.jsonl")])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = _table(out, ("billing", "audit"))
    assert rows["billing"][5] == "1" and rows["audit"][0] == "1"
