"""Formatting a document with `interlock fmt`'s formatter, as one edit of the whole text.

The formatter (`interlock.fmt.format_source`) is imported when first asked for: without it,
or when the text does not parse (the formatter raises), there is nothing to edit.
"""

from __future__ import annotations

import importlib
import logging

from lsprotocol import types

from interlock.dsl import SourceFile

from .positions import UTF16, position

log = logging.getLogger(__name__)


def format_document(text: str, path: str, encoding: str = UTF16) -> list[types.TextEdit]:
    try:
        fmt = importlib.import_module("interlock.fmt")
    except ModuleNotFoundError as exc:
        if exc.name != "interlock.fmt":
            raise
        log.info("no formatter: interlock.fmt is not installed")
        return []
    try:
        formatted: str = fmt.format_source(text, path)
    except Exception as exc:  # a text that does not parse: the diagnostics say why
        log.info("not formatted: %s", exc)
        return []
    if formatted == text:
        return []
    source = SourceFile(path, text)
    whole = types.Range(types.Position(0, 0), position(source, len(text), encoding))
    return [types.TextEdit(whole, formatted)]
