"""Every `route` block of the docs and the README parses: an example that the language no
longer accepts is a bug in the docs (the normative ones are also checked node by node, in
test_language_examples.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from interlock.dsl import parse_text

ROOT = Path(__file__).parent.parent
BLOCK = re.compile(r"```route\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, str]]:
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for block in BLOCK.finditer(text):
            line = text.count("\n", 0, block.start()) + 2
            found.append((f"{page.relative_to(ROOT)}:{line}", block.group(1)))
    return found


def test_the_docs_have_route_examples() -> None:
    assert len(_blocks()) >= 19


@pytest.mark.parametrize(("where", "text"), _blocks(), ids=[where for where, _ in _blocks()])
def test_route_example_parses(where: str, text: str) -> None:
    _, diagnostics = parse_text(text, where)
    assert [(d.code, d.message, d.span.line) for d in diagnostics if d.is_error] == []
