"""Formatting a document with `interlock fmt`'s formatter, as one edit of the whole text;
when the text does not parse (the formatter raises), there is nothing to edit."""

from __future__ import annotations

import logging

from lsprotocol import types

from interlock.fmt import format_source

from .positions import UTF16

log = logging.getLogger(__name__)


def format_document(text: str, path: str, encoding: str = UTF16) -> list[types.TextEdit]:
    """One edit, the whole document formatted by `interlock fmt`; none when it is formatted
    already or does not parse (the diagnostics say why)."""
    try:
        formatted = format_source(text, path)
    except Exception as exc:
        log.info("not formatted: %s", exc)
        return []
    if formatted == text:
        return []
    # The edit ends past the last line, which a client takes as the end of the document: how
    # it splits lines (a lone `\r` is a line break to some, not to the server) cannot move it.
    end = types.Position(text.count("\n") + text.count("\r") + 1, 0)
    return [types.TextEdit(types.Range(types.Position(0, 0), end), formatted)]
