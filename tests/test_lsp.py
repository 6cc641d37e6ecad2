"""`interlock lsp` end to end: the real server process, spoken to over stdio in JSON-RPC
(tests/lsp_client.py), on a project of two files, one importing the other.

One server serves the module (its start is most of the time); a test that changes a document
closes it again, so that the next test sees the files as they are on disk.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsp_client import LspClient, LspError, uri

from interlock.dsl import SourceFile
from interlock.lsp import positions

COMMON = """\
event order.created {
  id: string
  customer: { id: string, tier: string }
  items: list<{ sku: string, quantity: int }>
  note: string?
}
event invoice.issued { id: string }

retry standard { attempts 5, backoff fixed 1s }
dead_letter dlq { retain 7d }
defaults { timeout 5s, dead_letter dlq }

target billing { retry standard, emits [invoice.issued] }
target audit { mode async, concurrency 2 }
"""

ROUTES = """\
import "common.route"

route gold {
  on order.created
  when customer.tier == "gold"
  to billing, audit
}

route invoices { on invoice.issued to audit }

test gold_goes_to_billing {
  send order.created { id: "1", customer: { id: "c", tier: "gold" }, items: [] }
  expect billing, audit
}
"""


def at(text: str, needle: str, nth: int = 0, delta: int = 0) -> tuple[int, int]:
    """The LSP position (UTF-16) of the `nth` occurrence of `needle` in `text`, plus `delta` characters."""
    offset = -1
    for _ in range(nth + 1):
        offset = text.index(needle, offset + 1)
    position = positions.position(SourceFile("x", text), offset + delta)
    return position.line, position.character


def span_of(text: str, needle: str, nth: int = 0) -> dict[str, Any]:
    line, character = at(text, needle, nth)
    end_line, end_character = at(text, needle, nth, len(needle))
    return {"start": {"line": line, "character": character}, "end": {"line": end_line, "character": end_character}}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lsp")
    (folder / "common.route").write_text(COMMON, encoding="utf-8")
    (folder / "routes.route").write_text(ROUTES, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def client(project: Path) -> Iterator[LspClient]:
    client = LspClient()
    result = client.initialize(project)
    client.capabilities = result["capabilities"]  # type: ignore[attr-defined]
    yield client
    client.stop()


@pytest.fixture(autouse=True)
def settled(request: pytest.FixtureRequest) -> None:
    """Each test starts with no notification left over from the one before."""
    if "client" in request.fixturenames:
        request.getfixturevalue("client").settle(request.getfixturevalue("project") / "common.route")


def test_initialize_advertises_the_features(client: LspClient) -> None:
    capabilities = client.capabilities  # type: ignore[attr-defined]
    for feature in ("hoverProvider", "definitionProvider", "referencesProvider", "documentSymbolProvider",
                    "documentFormattingProvider", "completionProvider", "renameProvider"):
        assert capabilities.get(feature), feature
    assert capabilities["positionEncoding"] == "utf-16"


def test_diagnostics_as_you_type_then_cleared(client: LspClient, project: Path) -> None:
    routes = project / "routes.route"
    broken = ROUTES.replace("to billing, audit", "to bilin, audit")
    client.open(routes, broken)
    found = client.diagnostics(routes)
    assert [(d["code"], d["severity"], d["source"]) for d in found] == [("E0104", 1, "interlock")]
    assert found[0]["range"] == span_of(broken, "bilin")
    assert "unknown target `bilin`" in found[0]["message"]
    assert "did you mean `billing`" in found[0]["message"]
    client.change(routes, ROUTES, 2)
    assert client.diagnostics(routes) == []
    client.close(routes)


def test_related_location_in_the_other_file(client: LspClient, project: Path) -> None:
    routes = project / "routes.route"
    twice = ROUTES + "\ntarget audit { mode sync }\n"
    client.open(routes, twice)
    found = client.diagnostics(routes)
    assert [d["code"] for d in found] == ["E0103"]
    assert found[0]["range"] == span_of(twice, "audit", nth=3)
    related = found[0]["relatedInformation"]
    assert related == [{"location": {"uri": uri(project / "common.route"), "range": span_of(COMMON, "audit")},
                        "message": "first defined here"}]
    client.close(routes)
    assert client.diagnostics(routes) == []


def test_an_unsaved_buffer_is_read_instead_of_the_disk(client: LspClient, project: Path) -> None:
    """routes.route names `shipping`, which only the unsaved text of common.route declares."""
    routes, common = project / "routes.route", project / "common.route"
    client.open(routes, ROUTES.replace("to billing, audit", "to billing, shipping"))
    assert [d["code"] for d in client.diagnostics(routes)] == ["E0104"]
    client.open(common, COMMON + "target shipping { mode async }\n")
    assert client.diagnostics(routes) == []
    client.close(common)
    assert [d["code"] for d in client.diagnostics(routes)] == ["E0104"]
    client.close(routes)
    assert client.diagnostics(routes) == []  # (it had diagnostics: they are cleared)


def test_a_new_file_not_on_disk_is_checked(client: LspClient, project: Path) -> None:
    scratch = project / "scratch.route"
    client.open(scratch, "route late { on order.created when exists missing_field to audit }\n")
    found = client.diagnostics(scratch)
    assert [d["code"] for d in found] == ["E0201"]
    client.close(scratch)
    assert client.diagnostics(scratch) == []


def hover(client: LspClient, file: Path, text: str, needle: str, nth: int = 0, delta: int = 1) -> str:
    result = client.at("textDocument/hover", file, *at(text, needle, nth, delta))
    assert result is not None, needle
    value: str = result["contents"]["value"]
    return value


def test_hover_on_a_target_shows_where_each_value_comes_from(client: LspClient, project: Path) -> None:
    shown = hover(client, project / "routes.route", ROUTES, "billing")
    assert "| `timeout` | `5s` | defaults |" in shown
    assert "| `dead_letter` | `dlq` | defaults |" in shown
    assert "| `retry` | `standard` | target |" in shown
    assert "| `attempts` | `5` | retry policy standard |" in shown
    assert "| `backoff` | `fixed 1s` | retry policy standard |" in shown
    assert "| `concurrency` | `16` | built-in default |" in shown
    assert "| `mode` | `async` | built-in default |" in shown
    audit = hover(client, project / "common.route", COMMON, "audit")
    assert "| `concurrency` | `2` | target |" in audit
    assert "| `attempts` | `1` | built-in default |" in audit


def test_hover_on_an_event_a_field_and_a_route(client: LspClient, project: Path) -> None:
    routes = project / "routes.route"
    event = hover(client, routes, ROUTES, "order.created")
    assert "event order.created {" in event and "tier: string" in event and "handled by `gold`" in event
    field = hover(client, routes, ROUTES, "tier")
    assert "**field** `customer.tier`" in field and "`order.created`: `string`" in field
    parent = hover(client, routes, ROUTES, "customer")
    assert "**field** `customer`" in parent and "{" in parent
    route = hover(client, routes, ROUTES, "gold")
    assert "- on: `order.created`" in route and '- when: `customer.tier == "gold"`' in route
    assert "- to: billing, audit" in route and "eq index on `customer.tier`" in route


def test_definition_and_references_across_files(client: LspClient, project: Path) -> None:
    routes, common = project / "routes.route", project / "common.route"
    definition = client.at("textDocument/definition", routes, *at(ROUTES, "billing", delta=2))
    assert definition == [{"uri": uri(common), "range": span_of(COMMON, "billing")}]
    event = client.at("textDocument/definition", routes, *at(ROUTES, "order.created", nth=1))
    assert event == [{"uri": uri(common), "range": span_of(COMMON, "order.created")}]
    imported = client.at("textDocument/definition", routes, *at(ROUTES, "common.route"))
    assert [d["uri"] for d in imported] == [uri(common)]
    found = client.at("textDocument/references", common, *at(COMMON, "audit"), context={"includeDeclaration": True})
    assert found == [{"uri": uri(common), "range": span_of(COMMON, "audit")},
                     *({"uri": uri(routes), "range": span_of(ROUTES, "audit", nth=n)} for n in range(3))]
    without = client.at("textDocument/references", common, *at(COMMON, "audit"),
                        context={"includeDeclaration": False})
    assert len(without) == 3
    policy = client.at("textDocument/references", common, *at(COMMON, "standard"),
                       context={"includeDeclaration": True})
    assert [r["range"] for r in policy] == [span_of(COMMON, "standard"), span_of(COMMON, "standard", nth=1)]


def complete(client: LspClient, file: Path, text: str, version: int) -> list[str]:
    """The labels completed at `|` in `text` (sent as the document's text)."""
    offset = text.index("|")
    text = text.replace("|", "")
    client.change(file, text, version)
    cursor = positions.position(SourceFile("x", text), offset)
    items = client.at("textDocument/completion", file, cursor.line, cursor.character)["items"]
    return [item["label"] for item in items]


def test_completion_in_context(client: LspClient, project: Path) -> None:
    scratch = project / "typing.route"
    client.open(scratch, "")
    cases = {
        "route r { on order.created to | }": ["billing", "audit"],
        "route r { on order.created to billing, | }": ["billing", "audit"],
        "route r { on | }": ["order.created", "invoice.issued"],
        "target t { retry | }": ["standard"],
        "target t { dead_letter | }": ["dlq"],
        "target t { timeout | }": ["100ms", "250ms", "500ms", "1s", "5s", "10s", "30s", "1m", "5m", "1h", "1d"],
        "target t { mode | }": ["async", "sync"],
        "route r { on order.created when | }": ["id", "customer", "items", "note"],
        "route r { on order.created when customer.| }": ["id", "tier"],
        "route r { on order.created when any items { | } to audit }": ["sku", "quantity"],
        "route r { on order.created to audit with { x: | } }": ["id", "customer", "items", "note"],
        "test t { send | }": ["order.created", "invoice.issued"],
        "test t { send order.created expect | }": ["billing", "audit", "nothing"],
        "# a comment: to |": [],
    }
    for version, (text, expected) in enumerate(cases.items(), start=2):
        assert complete(client, scratch, text, version) == expected, text
    keywords = complete(client, scratch, "|", 100)
    assert {"event", "target", "route", "choose", "import", "test"} <= set(keywords)
    options = complete(client, scratch, "target t { | }", 101)
    assert {"mode", "retry", "timeout", "dead_letter", "emits"} <= set(options)
    client.close(scratch)


def test_a_field_completion_replaces_the_path_being_typed(client: LspClient, project: Path) -> None:
    scratch = project / "typing.route"
    text = "route r { on order.created when customer.ti to audit }"
    client.open(scratch, text)
    cursor = at(text, "customer.ti", delta=len("customer.ti"))
    items = client.at("textDocument/completion", scratch, *cursor)["items"]
    tier = next(item for item in items if item["label"] == "tier")
    assert tier["textEdit"] == {"range": {"start": {"line": 0, "character": cursor[1] - len("customer.ti")},
                                          "end": {"line": 0, "character": cursor[1]}},
                                "newText": "customer.tier"}
    client.close(scratch)


def test_rename_across_files(client: LspClient, project: Path) -> None:
    routes, common = project / "routes.route", project / "common.route"
    prepared = client.at("textDocument/prepareRename", routes, *at(ROUTES, "audit"))
    assert prepared == span_of(ROUTES, "audit")
    edit = client.at("textDocument/rename", routes, *at(ROUTES, "audit"), newName="ledger")
    changes = edit["changes"]
    assert changes[uri(common)] == [{"range": span_of(COMMON, "audit"), "newText": "ledger"}]
    assert changes[uri(routes)] == [{"range": span_of(ROUTES, "audit", nth=n), "newText": "ledger"}
                                    for n in range(3)]
    event = client.at("textDocument/rename", routes, *at(ROUTES, "order.created"), newName="order.placed")
    assert len(event["changes"][uri(common)]) == 1 and len(event["changes"][uri(routes)]) == 2


@pytest.mark.parametrize(("needle", "new_name", "why"), [
    ("route gold", "x", "nothing to rename here"),  # on the keyword `route`
    ("audit", "not valid", "is not a valid name"),
    ("audit", "a.b", "is not a valid name"),
    ("audit", "route", "is a keyword"),
    ("audit", "billing", "already defined"),
])
def test_rename_refused(client: LspClient, project: Path, needle: str, new_name: str, why: str) -> None:
    with pytest.raises(LspError) as refused:
        client.at("textDocument/rename", project / "routes.route", *at(ROUTES, needle), newName=new_name)
    assert why in refused.value.message


def test_document_symbols(client: LspClient, project: Path) -> None:
    symbols = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri(project / "common.route")}})
    assert [(s["name"], s["kind"]) for s in symbols] == [
        ("order.created", 24), ("invoice.issued", 24), ("standard", 23), ("dlq", 14), ("defaults", 3),
        ("billing", 5), ("audit", 5)]
    assert symbols[0]["selectionRange"] == span_of(COMMON, "order.created")
    assert symbols[0]["range"]["start"] == {"line": 0, "character": 0}
    assert symbols[0]["range"]["end"] == {"line": 5, "character": 1}
    assert [c["name"] for c in symbols[0]["children"]] == ["id", "customer", "items", "note"]


def test_positions_count_utf16_units(client: LspClient, project: Path) -> None:
    """An emoji is two UTF-16 units, `é` one: the diagnostic's column and a hover after them agree."""
    scratch = project / "wide.route"
    text = 'route wide { on order.created when customer.tier == "😀é" to bilin }\n'
    client.open(scratch, text)
    found = client.diagnostics(scratch)
    column = text.index("bilin") + 1  # the emoji is one code point, two units
    assert found[0]["range"]["start"] == {"line": 0, "character": column}
    assert found[0]["range"]["end"] == {"line": 0, "character": column + len("bilin")}
    client.change(scratch, text.replace("bilin", "billing"), 2)
    assert client.diagnostics(scratch) == []
    shown = client.at("textDocument/hover", scratch, 0, text.index("bilin") + 3)
    assert "**target** `billing`" in shown["contents"]["value"]
    client.close(scratch)


def test_position_conversions() -> None:
    source = SourceFile("x", "a😀b\né\n")
    assert positions.position(source, 2).character == 3  # after the emoji: 1 + 2 units
    assert positions.position(source, 2, "utf-8").character == 5
    assert positions.position(source, 2, "utf-32").character == 2
    assert positions.offset(source, positions.types.Position(0, 3)) == 2
    assert positions.offset(source, positions.types.Position(1, 1)) == 5
    assert positions.offset(source, positions.types.Position(1, 99)) == 5  # past the end of the line: its end
    assert positions.offset(source, positions.types.Position(9, 0)) == len(source.text)


def test_formatting_is_one_edit_of_the_whole_document(client: LspClient, project: Path) -> None:
    from interlock.fmt import format_source

    scratch = project / "messy.route"
    text = "target   x   {mode async}\n"
    client.open(scratch, text)
    edits = client.request("textDocument/formatting", {"textDocument": {"uri": uri(scratch)},
                                                       "options": {"tabSize": 2, "insertSpaces": True}})
    expected = format_source(text, str(scratch))
    assert expected != text
    # (the edit ends past the last line: the end of the document, however a client splits lines)
    assert edits == [{"range": {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}},
                      "newText": expected}]
    client.close(scratch)


def test_shutdown_and_exit_end_the_process(tmp_path: Path) -> None:
    (tmp_path / "a.route").write_text("event e\n", encoding="utf-8")
    client = LspClient()
    client.initialize(tmp_path)
    assert client.stop() == 0


def test_without_pygls_the_command_says_what_to_install() -> None:
    script = "import sys; sys.modules['pygls'] = None; from interlock.cli import main; sys.exit(main(['lsp']))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "pip install 'interlock[lsp]'" in done.stderr


def test_the_overlay_keeps_the_loaders_rules(tmp_path: Path) -> None:
    """An open document stands for the disk's text only where the loader would read the disk:
    not outside the project's folder, and not beyond the size limit."""
    from interlock.dsl.files import MAX_FILE_BYTES
    from interlock.dsl.project import load_project

    inside, outside = tmp_path / "project", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    main = inside / "main.route"
    main.write_text('import "../elsewhere/x.route"\nevent a\n', encoding="utf-8")
    stray = outside / "x.route"
    overlay = {str(stray): "event b\n", str(main): 'import "../elsewhere/x.route"\nevent c\n'}
    project = load_project([str(inside)], str(inside), overlay)
    assert list(project.events) == ["c"]  # main.route's unsaved text; x.route not read
    assert [d.code for d in project.diagnostics] == ["E0101"]
    assert "outside the project's folder" in project.diagnostics[0].message
    huge = load_project([str(main)], str(inside), {str(main): "#" * (MAX_FILE_BYTES + 1)})
    assert [d.code for d in huge.diagnostics] == ["E0101"] and "larger than" in huge.diagnostics[0].message


def test_a_file_outside_the_workspace_is_a_project_of_its_own(tmp_path: Path) -> None:
    """A file outside every workspace folder had its folder searched, which may be the home
    folder or `/` (an editor opening ~/x.route waited minutes; found by review)."""
    from interlock.lsp.state import Projects, analyse

    workspace = tmp_path / "work"
    workspace.mkdir()
    (tmp_path / "other.route").write_text("target other { mode sync }\ntarget other { mode sync }\n")
    alone = tmp_path / "alone.route"
    projects = Projects(folders=[str(workspace)])
    assert projects.root_of(str(alone)) == str(alone)
    found = analyse(str(alone), {str(alone): "target t { mode sync }\n"})
    assert found.project is not None and list(found.project.targets) == ["t"]  # not other.route's


def test_the_formatting_edit_ends_past_the_last_line() -> None:
    """A lone carriage return is a line break to some clients, not to the server: the edit's
    end, past the last line, is the end of the document to every client (found by review)."""
    from interlock.lsp.formatting import format_document

    (edit,) = format_document("target   x {mode sync}\rroute r { on e to x }\n", "p.route")
    assert edit.range.end.line >= 3 and edit.range.end.character == 0


def test_formatting_a_document_neither_open_nor_on_disk_is_no_edit(client: LspClient, project: Path) -> None:
    """It was an internal error with a traceback in the log (found by review)."""
    edits = client.request("textDocument/formatting", {"textDocument": {"uri": uri(project / "gone.route")},
                                                       "options": {"tabSize": 2, "insertSpaces": True}})
    assert edits == []
