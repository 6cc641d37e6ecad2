"""Spans of an analysis as LSP locations: the file's URI and the range in the agreed encoding."""

from __future__ import annotations

import os
from collections.abc import Callable

import attrs
from lsprotocol import types
from pygls.uris import from_fs_path

from interlock.dsl import Span

from .positions import UTF16, to_range
from .state import Analysis

ORIGIN = types.Range(types.Position(0, 0), types.Position(0, 0))


def uri_of(path: str) -> str:
    return from_fs_path(os.path.abspath(path)) or path


@attrs.frozen
class Locator:
    analysis: Analysis
    encoding: str = UTF16
    uri: Callable[[str], str] = uri_of  # a file's URI: as the client names it when it has it open

    def range(self, span: Span) -> types.Range:
        source = self.analysis.source(span.file)
        return ORIGIN if source is None else to_range(source, span, self.encoding)

    def location(self, span: Span) -> types.Location:
        return types.Location(self.uri(span.file), self.range(span))

    def file(self, path: str) -> types.Location:
        return types.Location(self.uri(path), ORIGIN)
