"""Go to definition, find references, rename, and the symbols of a document.

Each works on the index of the project's names (`index.py`), across the project's files.
Rename refuses a place that names nothing (a keyword, a comment, a glob), a new name of the
wrong shape for its kind (the rules of E0015), a keyword of the language, and a name the
project already has in that namespace (it would be E0103).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lsprotocol import types

from interlock.dsl import ast

from .index import EVENT, Occurrence
from .keywords import KEYWORDS
from .locations import Locator
from .schemas import type_text
from .state import Analysis

PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
EVENT_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*")


class RenameError(Exception):
    """Why a rename is refused, in words for the user."""


def definition(analysis: Analysis, locator: Locator, file: str, offset: int) -> list[types.Location]:
    imported = analysis.index.import_at(file, offset)
    if imported is not None:
        return [locator.file(imported.file)]
    occurrence = analysis.index.at(file, offset)
    if occurrence is None:
        return []
    return [locator.location(o.span) for o in analysis.index.definitions(occurrence.namespace, occurrence.name)]


def references(analysis: Analysis, locator: Locator, file: str, offset: int,
               include_declaration: bool) -> list[types.Location]:
    occurrence = analysis.index.at(file, offset)
    if occurrence is None:
        return []
    return [locator.location(o.span) for o in analysis.index.same(occurrence)
            if include_declaration or not o.definition]


def prepare_rename(analysis: Analysis, locator: Locator, file: str, offset: int) -> types.Range:
    return locator.range(_renamed(analysis, file, offset).span)


def _renamed(analysis: Analysis, file: str, offset: int) -> Occurrence:
    occurrence = analysis.index.at(file, offset)
    if occurrence is None:
        raise RenameError("nothing to rename here: place the cursor on the name of an event, target, retry "
                          "policy, dead letter, route, choose or test")
    return occurrence


def rename(analysis: Analysis, locator: Locator, file: str, offset: int, new_name: str) -> types.WorkspaceEdit:
    occurrence = _renamed(analysis, file, offset)
    shape = EVENT_TYPE if occurrence.namespace == EVENT else PLAIN_NAME
    if not shape.fullmatch(new_name):
        what = "an event type (names joined by dots)" if occurrence.namespace == EVENT else \
            "a plain name (letters, digits, `_` and `-`, not starting with a digit)"
        raise RenameError(f"`{new_name}` is not a valid name: the new name must be {what}")
    if new_name in KEYWORDS:
        raise RenameError(f"`{new_name}` is a keyword of the language: choose another name")
    if new_name != occurrence.name and analysis.index.definitions(occurrence.namespace, new_name):
        raise RenameError(f"`{new_name}` is already defined in this project")
    changes: dict[str, list[types.TextEdit]] = {}
    for found in analysis.index.same(occurrence):
        location = locator.location(found.span)
        changes.setdefault(location.uri, []).append(types.TextEdit(location.range, new_name))
    return types.WorkspaceEdit(changes=changes)


_SYMBOL_KINDS = {
    ast.EventDecl: types.SymbolKind.Event,
    ast.TargetDecl: types.SymbolKind.Class,
    ast.RetryPolicy: types.SymbolKind.Struct,
    ast.DeadLetterDecl: types.SymbolKind.Constant,
    ast.RouteDecl: types.SymbolKind.Function,
    ast.ChooseDecl: types.SymbolKind.Function,
    ast.TestDecl: types.SymbolKind.Method,
    ast.Import: types.SymbolKind.Module,
    ast.DefaultsDecl: types.SymbolKind.Namespace,
    ast.UnroutedDecl: types.SymbolKind.Namespace,
}


def document_symbols(analysis: Analysis, locator: Locator, file: str) -> list[types.DocumentSymbol]:
    project = analysis.project
    if project is None:
        return []
    source = analysis.source(file)
    module = next((m for m in project.modules if source is not None and m.path == source.path), None)
    if module is None:
        return []
    return [_symbol(locator, decl) for decl in module.decls]


def _symbol(locator: Locator, decl: ast.Decl) -> types.DocumentSymbol:
    kind = _SYMBOL_KINDS[type(decl)]
    whole = locator.range(decl.span)
    if isinstance(decl, ast.Import):
        return types.DocumentSymbol(f'import "{decl.path}"', kind, whole, whole)
    if isinstance(decl, ast.DefaultsDecl):
        return types.DocumentSymbol("defaults", kind, whole, whole)
    if isinstance(decl, ast.UnroutedDecl):
        return types.DocumentSymbol("unrouted", kind, whole, locator.range(decl.dead_letter.span))
    name = decl.name
    assert name is not None  # (a named retry policy: inline ones are inside targets)
    children = _fields(locator, decl.schema.fields) if isinstance(decl, ast.EventDecl) and decl.schema else None
    detail = type(decl).__name__.removesuffix("Decl").lower().replace("retrypolicy", "retry policy")
    return types.DocumentSymbol(name.text, kind, whole, locator.range(name.span), detail=detail, children=children)


def _fields(locator: Locator, fields: Iterable[ast.Field]) -> list[types.DocumentSymbol]:
    symbols = []
    for field in fields:
        inner = field.type
        while isinstance(inner, ast.ListType):
            inner = inner.item
        children = _fields(locator, inner.fields) if isinstance(inner, ast.ObjectType) else None
        detail = type_text(field.type) if not isinstance(field.type, ast.ObjectType) else "{...}"
        symbols.append(types.DocumentSymbol(field.name.text, types.SymbolKind.Field, locator.range(field.span),
                                            locator.range(field.name.span), detail=detail + ("?" if field.optional
                                                                                             else ""),
                                            children=children))
    return symbols
