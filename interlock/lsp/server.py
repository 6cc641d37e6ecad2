"""`interlock lsp`: the language server, on stdin and stdout (pygls 2).

Wiring only: each LSP message is turned into a file path and a character offset, handed to
the module that answers it (`diagnostics`, `hover`, `navigation`, `completion`,
`formatting`), and the answer sent back. Diagnostics are published for every file of a
project after each change of an open document (changes within DEBOUNCE_S of each other
checked once), and cleared for files that no longer have any; an open document without any
gets an empty list, so that an editor knows it was checked.
"""

from __future__ import annotations

import asyncio
import logging
import os

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

import interlock

from . import completion, formatting, hover, navigation
from .diagnostics import by_file
from .locations import Locator, uri_of
from .positions import UTF16, offset, position
from .state import Analysis, Projects

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.15


class RouteServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("interlock", interlock.__version__, text_document_sync_kind=types.TextDocumentSyncKind.Full)
        self.projects = Projects()
        self.published: dict[str, set[str]] = {}  # project root -> URIs with diagnostics
        self.pending: dict[str, asyncio.TimerHandle] = {}
        self.uris: dict[str, str] = {}  # real path of an open document -> its URI as the client names it

    @property
    def encoding(self) -> str:
        return str(self.workspace.position_encoding or UTF16)

    def uri(self, path: str) -> str:
        return self.uris.get(os.path.realpath(path)) or uri_of(path)

    def locator(self, analysis: Analysis) -> Locator:
        return Locator(analysis, self.encoding, self.uri)

    def document_changed(self, uri: str, text: str | None, delay: float) -> None:
        path = to_fs_path(uri)
        if path is None:  # not a file: nothing to check it with
            return
        if text is None:
            self.uris.pop(os.path.realpath(path), None)
        else:
            self.uris[os.path.realpath(path)] = uri
        root = self.projects.update(path, text)
        pending = self.pending.pop(root, None)
        if pending is not None:
            pending.cancel()
        if delay <= 0:
            self.publish(root)
        else:
            # (a handler that is no coroutine runs on the server's event loop)
            self.pending[root] = asyncio.get_running_loop().call_later(delay, self.publish, root)

    def publish(self, root: str) -> None:
        self.pending.pop(root, None)
        analysis = self.projects.analysis(root)
        if analysis.problem is not None:
            log.info("project %s not loaded: %s", root, analysis.problem)
        grouped = by_file(analysis.diagnostics, analysis.source, self.uri, self.encoding)
        opened = {uri for real, uri in self.uris.items() if self.projects.root_of(real) == root}
        for uri in sorted(self.published.get(root, set()) | set(grouped) | opened):
            self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri, grouped.get(uri, [])))
        self.published[root] = set(grouped)

    def at(self, uri: str, where: types.Position) -> tuple[Analysis, str, int] | None:
        """The analysis, path and character offset of a position in a document."""
        path = to_fs_path(uri)
        if path is None:
            return None
        analysis = self.projects.for_file(path)
        source = analysis.source(path)
        if source is None:
            return None
        return analysis, source.path, offset(source, where, self.encoding)


server = RouteServer()


@server.feature(types.INITIALIZE)
def initialize(ls: RouteServer, params: types.InitializeParams) -> None:
    folders = [to_fs_path(f.uri) for f in params.workspace_folders or ()]
    if not folders and params.root_uri:
        folders = [to_fs_path(params.root_uri)]
    ls.projects.folders = [f for f in folders if f]


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: RouteServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.document_changed(params.text_document.uri, params.text_document.text, 0)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: RouteServer, params: types.DidChangeTextDocumentParams) -> None:
    document = ls.workspace.get_text_document(params.text_document.uri)
    ls.document_changed(document.uri, document.source, DEBOUNCE_S)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: RouteServer, params: types.DidSaveTextDocumentParams) -> None:
    document = ls.workspace.get_text_document(params.text_document.uri)
    ls.document_changed(document.uri, document.source, 0)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: RouteServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.document_changed(params.text_document.uri, None, 0)


@server.feature(types.TEXT_DOCUMENT_HOVER)
def on_hover(ls: RouteServer, params: types.HoverParams) -> types.Hover | None:
    found = ls.at(params.text_document.uri, params.position)
    if found is None:
        return None
    text = hover.hover(*found)
    return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, text)) if text else None


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
def on_definition(ls: RouteServer, params: types.DefinitionParams) -> list[types.Location]:
    found = ls.at(params.text_document.uri, params.position)
    return navigation.definition(found[0], ls.locator(found[0]), found[1], found[2]) if found else []


@server.feature(types.TEXT_DOCUMENT_REFERENCES)
def on_references(ls: RouteServer, params: types.ReferenceParams) -> list[types.Location]:
    found = ls.at(params.text_document.uri, params.position)
    if found is None:
        return []
    analysis, path, at = found
    return navigation.references(analysis, ls.locator(analysis), path, at, params.context.include_declaration)


@server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
def on_prepare_rename(ls: RouteServer, params: types.PrepareRenameParams) -> types.Range | None:
    found = ls.at(params.text_document.uri, params.position)
    if found is None:
        return None
    try:
        return navigation.prepare_rename(found[0], ls.locator(found[0]), found[1], found[2])
    except navigation.RenameError as exc:
        raise JsonRpcException(str(exc), code=types.LSPErrorCodes.RequestFailed) from None


@server.feature(types.TEXT_DOCUMENT_RENAME)
def on_rename(ls: RouteServer, params: types.RenameParams) -> types.WorkspaceEdit | None:
    found = ls.at(params.text_document.uri, params.position)
    if found is None:
        return None
    try:
        return navigation.rename(found[0], ls.locator(found[0]), found[1], found[2], params.new_name)
    except navigation.RenameError as exc:
        raise JsonRpcException(str(exc), code=types.LSPErrorCodes.RequestFailed) from None


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def on_document_symbol(ls: RouteServer, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol]:
    path = to_fs_path(params.text_document.uri)
    if path is None:
        return []
    analysis = ls.projects.for_file(path)
    return navigation.document_symbols(analysis, ls.locator(analysis), path)


@server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", " ", ","]))
def on_completion(ls: RouteServer, params: types.CompletionParams) -> types.CompletionList:
    found = ls.at(params.text_document.uri, params.position)
    if found is None:
        return types.CompletionList(is_incomplete=False, items=[])
    analysis, path, at = found
    source = analysis.source(path)
    assert source is not None
    answer = completion.complete(analysis.project, analysis.index, source.text, at)
    typed = types.Range(position(source, answer.start, ls.encoding), params.position)
    for item in answer.items:
        item.text_edit = types.TextEdit(typed, item.insert_text or item.label)
        item.insert_text = None
    return types.CompletionList(is_incomplete=False, items=answer.items)


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
def on_formatting(ls: RouteServer, params: types.DocumentFormattingParams) -> list[types.TextEdit]:
    document = ls.workspace.get_text_document(params.text_document.uri)
    try:
        text = document.source  # (read from disk when the document is not open)
    except OSError as exc:  # neither open nor on disk: nothing to format
        log.info("not formatted: %s", exc)
        return []
    return formatting.format_document(text, document.path, ls.encoding)


def serve() -> None:
    """Serve on stdin and stdout until the client says `exit`."""
    server.start_io()
