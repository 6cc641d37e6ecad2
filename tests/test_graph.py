"""The event-flow graph: its structure, its three drawings, and `interlock graph`."""

from __future__ import annotations

import gc
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from interlock.cli import main
from interlock.compiler.check_flow import MAX_CYCLES, check_flow
from interlock.compiler.flow_graph import flow_graph
from interlock.dsl import load_project
from interlock.graph_render import render

EXAMPLES = Path(__file__).parent.parent / "examples"
#: Every project under examples/: each folder is a project of its own.
PROJECTS = ["shop", "http"]

SMALL = """\
event order.created { id: string, amount: float }
event order.cancelled { id: string }
event invoice.issued { id: string }
dead_letter billing_dlq { retain 7d }
defaults { dead_letter billing_dlq }
unrouted to dead_letter unrouted_dlq
target billing { emits [invoice.issued] }
target audit { mode sync, dead_letter audit_dlq }
dead_letter audit_dlq
target big { }
target mailer { }
route every_order { on order.* to audit }
route invoices { on invoice.issued to mailer }
choose by_amount {
  on order.created
  when amount > 100 to big
  otherwise to billing
}
"""


@pytest.fixture
def small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.route").write_text(SMALL)
    return tmp_path / "small.route"


def _edges(path: Path) -> set[tuple[str, str, str, str | None]]:
    graph = flow_graph(load_project([str(path)]))
    return {(s[1], t[1], d["kind"], d.get("label") or d.get("pattern")) for s, t, d in graph.edges(data=True)}


def test_graph_structure(small: Path) -> None:
    graph = flow_graph(load_project([str(small)]))
    kinds = {node: data["kind"] for node, data in graph.nodes(data=True)}
    assert kinds == {
        ("event", "order.created"): "event", ("event", "order.cancelled"): "event",
        ("event", "invoice.issued"): "event",
        ("route", "every_order"): "route", ("route", "invoices"): "route", ("choose", "by_amount"): "choose",
        ("target", "billing"): "target", ("target", "audit"): "target", ("target", "big"): "target",
        ("target", "mailer"): "target",
        ("dead_letter", "billing_dlq"): "dead_letter", ("dead_letter", "audit_dlq"): "dead_letter",
        ("dead_letter", "unrouted_dlq"): "dead_letter",
    }
    assert graph.nodes[("dead_letter", "unrouted_dlq")]["unrouted"] is True
    assert graph.nodes[("target", "audit")]["mode"] == "sync"
    assert graph.nodes[("event", "order.created")]["span"].line == 1
    assert _edges(small) == {
        ("order.created", "every_order", "on", "order.*"),     # a glob: one edge per event it matches
        ("order.cancelled", "every_order", "on", "order.*"),
        ("invoice.issued", "invoices", "on", "invoice.issued"),
        ("order.created", "by_amount", "on", "order.created"),
        ("every_order", "audit", "to", None),
        ("invoices", "mailer", "to", None),
        ("by_amount", "big", "to", "amount > 100"),               # choose edges carry their branch
        ("by_amount", "billing", "to", "otherwise"),
        ("billing", "billing_dlq", "dead_letter", None),        # from defaults
        ("big", "billing_dlq", "dead_letter", None),
        ("mailer", "billing_dlq", "dead_letter", None),
        ("audit", "audit_dlq", "dead_letter", None),            # its own
        ("billing", "invoice.issued", "emits", None),
    }
    inherited = {s[1]: d["inherited"] for s, _, d in graph.edges(data=True) if d["kind"] == "dead_letter"}
    assert inherited == {"billing": True, "big": True, "mailer": True, "audit": False}


def test_undeclared_event_types_are_nodes(tmp_path: Path) -> None:
    (tmp_path / "p.route").write_text(
        "target t { emits [audit.logged] }\nroute r { on shipment.sent, order.** to t }\n")
    graph = flow_graph(load_project([str(tmp_path / "p.route")]))
    events = {n[1]: d["declared"] for n, d in graph.nodes(data=True) if d["kind"] == "event"}
    assert events == {"audit.logged": False, "shipment.sent": False}   # a glob names no type


def test_an_event_storm_names_its_cycle(tmp_path: Path) -> None:
    (tmp_path / "p.route").write_text(
        "target a { emits [x.one] }\n"
        "target b {\n  emits [x.two]\n}\n"
        "route r1 { on x.two to a }\n"
        "route r2 { on x.* to b }\n")      # also takes x.two from b itself: a second, shorter cycle
    found = sorted((d.span.line, d.message) for d in check_flow(load_project([str(tmp_path / "p.route")])))
    assert found == [
        # Reported at the `emits` that comes last in the file, the chain starting from what it emits.
        (3, "event storm: `x.two` -> route `r1` -> target `a` -> emits `x.one` -> route `r2` -> target `b` "
            "-> emits `x.two`"),
        (3, "event storm: `x.two` -> route `r2` -> target `b` -> emits `x.two`"),
    ]


def test_dot(small: Path) -> None:
    dot = render(flow_graph(load_project([str(small)])), "dot")
    assert dot.startswith("digraph interlock {") and dot.rstrip().endswith("}")
    assert '"event:order.created" -> "route:every_order" [label="order.*"];' in dot
    assert '"choose:by_amount" -> "target:big" [label="amount > 100"];' in dot
    assert '"target:billing" -> "event:invoice.issued" [' in dot
    assert '"target:audit" -> "dead_letter:audit_dlq" [style=dashed' in dot
    assert dot.count("{") == dot.count("}") and dot.count('"') % 2 == 0


def test_dot_escapes_quotes(tmp_path: Path) -> None:
    (tmp_path / "p.route").write_text('target t { }\nchoose c { on e.x when k == "a\\"b" to t }\n')
    dot = render(flow_graph(load_project([str(tmp_path / "p.route")])), "dot")
    assert '[label="k == \\"a\\\\\\"b\\""]' in dot


def test_mermaid(small: Path) -> None:
    mermaid = render(flow_graph(load_project([str(small)])), "mermaid")
    lines = mermaid.splitlines()
    assert lines[0] == "flowchart LR"
    ids = {m.group(2): m.group(1) for m in (re.match(r'\s+(n\d+)\S*?"([^"<]+)', line) for line in lines) if m}
    assert f'{ids["order.created"]} -->|"order.*"| {ids["every_order"]}' in mermaid
    assert f'{ids["by_amount"]} -->|"amount #gt; 100"| {ids["big"]}' in mermaid
    assert f'{ids["billing"]} ==>|"emits"| {ids["invoice.issued"]}' in mermaid
    assert f'{ids["audit"]} -.-> {ids["audit_dlq"]}' in mermaid


def test_html_is_one_page_with_every_node(small: Path) -> None:
    graph = flow_graph(load_project([str(small)]))
    page = render(graph, "html", title="small")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("<svg") == 1
    for _, data in graph.nodes(data=True):
        assert f">{html.escape(data['name'])}<" in page
    # Self-contained: nothing fetched from anywhere.
    assert not re.search(r"<script|<link|@import|url\((?!#)|src=|href=", page)


@pytest.mark.parametrize("name", PROJECTS)
def test_html_of_the_examples(name: str) -> None:
    graph = flow_graph(load_project([str(EXAMPLES / name)]))
    page = render(graph, "html")
    for _, data in graph.nodes(data=True):
        assert f">{html.escape(data['name'])}<" in page


def test_command_writes_each_format(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "small.route"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("digraph") and err == ""
    assert main(["graph", "--format", "mermaid", "small.route"]) == 0
    assert capsys.readouterr().out.startswith("flowchart LR")
    assert main(["graph", "--format", "html", "-o", "flow.html", "small.route"]) == 0
    assert capsys.readouterr() == ("", "")
    assert "<svg" in (small.parent / "flow.html").read_text()


@pytest.mark.parametrize("name", PROJECTS)
def test_command_exits_0_on_the_examples(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(EXAMPLES / name)]) == 0
    assert capsys.readouterr().err == ""


def test_command_exits_1_on_errors(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (small.parent / "bad.route").write_text("route r { on e.x to nowhere }\n")
    assert main(["graph", "bad.route"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "error[E0104]" in err
    # An event storm is an error, and still drawn: the graph is how one sees it.
    (small.parent / "storm.route").write_text("target t { emits [e.x] }\nroute r { on e.x to t }\n")
    assert main(["graph", "storm.route"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("digraph") and "error[E0240]" in err


def test_command_usage_errors_exit_2(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "missing.route"]) == 2
    assert main(["graph", "-o", str(small.parent / "no" / "such" / "dir.dot"), "small.route"]) == 2
    assert "cannot write" in capsys.readouterr().err
    for argv in (["graph"], ["graph", "--format", "png", "small.route"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2


def _storm_project(tmp_path: Path, routes: int) -> Path:
    path = tmp_path / f"storm{routes}.route"
    path.write_text("event a\nevent b\ntarget t { mode async, on_exhausted drop, emits [b] }\n"
                    "target u { mode async, on_exhausted drop }\nroute back { on b to t }\n"
                    + "".join(f"route r{i} {{ on a when x == {i} to t, u }}\n" for i in range(routes)))
    return path


def test_the_flow_checks_leave_the_collector_nothing_that_grows_with_the_project(tmp_path: Path) -> None:
    # networkx's graphs are reference cycles (the views they keep): the one check_flow builds
    # to search for event storms is emptied, so what it held is freed at once, not found
    # later by the collector (the checks run with it paused).
    projects = [load_project([str(_storm_project(tmp_path, n))]) for n in (5, 10, 400)]
    garbage = []
    for project in projects:
        gc.collect()
        gc.disable()
        try:
            assert [d.code for d in check_flow(project)] == ["E0240"]
            garbage.append(gc.collect())
        finally:
            gc.enable()
    assert garbage[1] == garbage[2], garbage


def test_an_on_pattern_is_matched_against_the_event_types_once(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Every route on an exact type against every type was routes x types steps: 10,000 routes
    # over 50 types made 500,000. Now each glob is matched once, and an exact type is itself.
    from interlock.compiler import flow_graph as module

    calls: list[tuple[str, str]] = []
    matches = module.event_type_matches

    def counted(pattern: str, event_type: str) -> bool:
        calls.append((pattern, event_type))
        return matches(pattern, event_type)

    monkeypatch.setattr(module, "event_type_matches", counted)
    types = [f"shop.e{i}" for i in range(100)]
    path = tmp_path / "p.route"
    path.write_text("".join(f"event {t}\n" for t in types) + "target t { mode async, on_exhausted drop }\n"
                    + "".join(f"route r{i} {{ on {t}, *.e{i % 7} to t }}\n" for i, t in enumerate(types * 3)))
    project = load_project([str(path)])
    assert project.ok
    graph = flow_graph(project)
    assert len(calls) == 7 * len(types)  # the 7 globs, each against every type, once
    assert [source for source, _ in graph.in_edges(("route", "r1"))] == [("event", "shop.e1"), ("event", "shop.e1")]


def test_the_storms_reported_past_the_cap_are_the_same_in_every_process(tmp_path: Path) -> None:
    """networkx finds cycles through sets of nodes, ordered by the nodes' hashes, which for
    strings change from one process to the next: a project of more than MAX_CYCLES storms
    reported a different 50 in each run of `interlock check`. Found by comparing two runs."""
    lines = [f"event e{i} {{ n: int }}\ntarget t{i} {{ mode sync, emits [{', '.join(f'e{j}' for j in range(5))}] }}"
             for i in range(5)]
    lines += [f"route r{i} {{ on e{i} to {', '.join(f't{j}' for j in range(5))} }}" for i in range(5)]
    (tmp_path / "p.route").write_text("\n".join(lines) + "\n")
    script = ("import sys; from interlock.dsl import load_project; "
              "from interlock.compiler.check_flow import check_flow; "
              "print([d.message for d in check_flow(load_project([sys.argv[1]]))])")
    runs = {subprocess.run([sys.executable, "-c", script, str(tmp_path / "p.route")], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
            for seed in range(4)}
    assert len(runs) == 1
    assert next(iter(runs)).count("event storm") == MAX_CYCLES
