"""Which project a file belongs to, and its analysis with the editor's unsaved text.

A file's project is the `.route` files of the innermost workspace folder that holds it (or, for
a file outside every workspace folder, those of its own folder), with what they import, read
as `interlock check FOLDER` reads them: inside that folder only, and with the text of each
open document in place of what is on disk (`load_project`'s overlay). An analysis is kept
until the open documents change (`didOpen`, `didChange`, `didClose`, `didSave`).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping

import attrs

from interlock.compiler.pipeline import check
from interlock.compiler.tables import Json, compile_dispatch
from interlock.dsl import Diagnostic, Project, SourceFile
from interlock.dsl.project import InputError, load_project

from .index import Index, build_index

log = logging.getLogger(__name__)


@attrs.define
class Analysis:
    root: str
    project: Project | None
    diagnostics: list[Diagnostic]
    index: Index
    problem: str | None = None  # why no project could be loaded

    def source(self, path: str) -> SourceFile | None:
        """The text the project read for `path` (any spelling of it)."""
        if self.project is None:
            return None
        found = self.project.sources.get(path)
        if found is not None:
            return found
        real = os.path.realpath(path)
        return next((s for p, s in self.project.sources.items() if os.path.realpath(p) == real), None)

    @functools.cached_property
    def dispatch(self) -> Json | None:
        """The compiled routes and tables, for a project without errors."""
        if self.project is None or any(d.is_error for d in self.diagnostics):
            return None
        return compile_dispatch(self.project)


def analyse(root: str, overlay: Mapping[str, str]) -> Analysis:
    """Load and check the project of the folder `root`, open documents (by path) read from `overlay`."""
    texts = {os.path.realpath(path): text for path, text in overlay.items()}
    inside = [path for path in overlay if _within(path, root)]
    if not os.path.isdir(root):  # a file outside the workspace folders: it alone, and its imports
        try:
            project = load_project([root], os.path.dirname(root) or ".", texts)
        except InputError as exc:
            return Analysis(root, None, [], Index(), str(exc))
        return Analysis(root, project, check(project), build_index(project))
    try:
        project = load_project([root, *inside], root, texts)
    except InputError as exc:
        if not inside:
            return Analysis(root, None, [], Index(), str(exc))
        try:
            project = load_project(inside, root, texts)
        except InputError as again:
            return Analysis(root, None, [], Index(), str(again))
    return Analysis(root, project, check(project), build_index(project))


def _within(path: str, folder: str) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, top]) == top


@attrs.define
class Projects:
    """The workspace folders, the open documents' text, and the latest analysis of each project."""

    folders: list[str] = attrs.Factory(list)
    open: dict[str, str] = attrs.Factory(dict)  # path -> text
    analyses: dict[str, Analysis] = attrs.Factory(dict)
    stale: set[str] = attrs.Factory(set)

    def root_of(self, path: str) -> str:
        """The innermost workspace folder holding the file; a file outside them all is a project
        of its own (and of its imports): its folder is not searched, which may be the home
        folder or `/` (an editor opening `~/x.route` waited minutes for every `.route` below)."""
        holding = [f for f in self.folders if _within(path, f)]
        return max(holding, key=len) if holding else path

    def update(self, path: str, text: str | None) -> str:
        """Record the text of an open document (None: closed); its project's root."""
        if text is None:
            self.open.pop(path, None)
        else:
            self.open[path] = text
        root = self.root_of(path)
        self.stale.add(root)
        return root

    def analysis(self, root: str) -> Analysis:
        found = self.analyses.get(root)
        if found is None or root in self.stale:
            overlay = {p: t for p, t in self.open.items() if _within(p, root)}
            found = analyse(root, overlay)
            self.analyses[root] = found
            self.stale.discard(root)
            log.debug("checked %s: %d diagnostics", root, len(found.diagnostics))
        return found

    def for_file(self, path: str) -> Analysis:
        return self.analysis(self.root_of(path))
