"""A project: the files reached from the paths a user gave, with every name resolved.

Owns: which files make the project (those given, the `.route` files of the folders given,
and what they import, relative to the importing file; each file loaded once however often
it is named), reporting import cycles and files refused (`files.py` reads them, inside
the project's folder only, and says why it refuses one), the one namespace that targets, retry policies,
dead letters, routes and choices share (event types and tests have their own), and
resolving every reference with a "did you mean".

Does not own: types, semantic checks or the event-flow graph (the compiler's passes),
nor rendering diagnostics (the CLI's).
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TypeAlias, TypeVar

import attrs

from . import ast
from .diagnostics import Diagnostic, Related, error, sorted_diagnostics
from .files import InputError as InputError  # (raised by `load_project`: its documented home)
from .files import Unreadable, check_root, read_inside, walk
from .parser import parse_source
from .source import SourceFile, Span
from .transform import did_you_mean

Named: TypeAlias = ast.RetryPolicy | ast.DeadLetterDecl | ast.TargetDecl | ast.RouteDecl | ast.ChooseDecl

KIND_NAMES: dict[type, str] = {
    ast.RetryPolicy: "retry policy",
    ast.DeadLetterDecl: "dead letter",
    ast.TargetDecl: "target",
    ast.RouteDecl: "route",
    ast.ChooseDecl: "choose",
}

D = TypeVar("D", ast.DefaultsDecl, ast.UnroutedDecl)

UNKNOWN_CODES = {ast.TargetDecl: "E0104", ast.RetryPolicy: "E0105", ast.DeadLetterDecl: "E0106"}


@attrs.frozen
class Project:
    """Everything the compiler needs, in declaration order, and what was wrong with it."""

    files: tuple[str, ...]
    sources: dict[str, SourceFile]
    modules: tuple[ast.Module, ...]
    events: dict[str, ast.EventDecl]
    retries: dict[str, ast.RetryPolicy]
    dead_letters: dict[str, ast.DeadLetterDecl]
    targets: dict[str, ast.TargetDecl]
    routes: dict[str, ast.RouteDecl]
    chooses: dict[str, ast.ChooseDecl]
    tests: dict[str, ast.TestDecl]
    defaults: ast.DefaultsDecl | None
    unrouted: ast.UnroutedDecl | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)

    @property
    def ok(self) -> bool:
        return not self.errors


def _shown(path: str, real: str) -> str:
    """`path` tidied for messages (`a/./b/../c` as `a/c`) when the tidy path names the same
    file: after a symlink, `..` does not go back where the text suggests, so then as given."""
    tidy = os.path.normpath(path)
    return tidy if tidy == path or os.path.realpath(tidy) == real else path


def _nowhere(path: str) -> Span:
    """Where a problem with a file or folder that was not read is reported: its line 1, column 1."""
    return SourceFile(path, "").span(0, 0)


class _Loader:
    """Reads the files given, those in the folders given and what they import: only files
    inside `roots` (real paths of folders), as `files.read_inside` reads them."""

    def __init__(self, roots: list[str], overlay: Mapping[str, str] | None = None) -> None:
        self.roots = roots
        self.overlay = overlay
        self.sources: dict[str, SourceFile] = {}
        self.modules: dict[str, ast.Module] = {}  # by real path, in load order
        self.display: dict[str, str] = {}  # real path -> path shown to the user
        self.diagnostics: list[Diagnostic] = []
        self.stack: list[str] = []
        self.unparsed: list[str] = []  # files read but not parsed (not UTF-8)
        # real path -> whether it was refused where a folder was searched (True) or at an import
        self.refused: dict[str, bool] = {}

    def collect(self, paths: Iterable[str]) -> list[str]:
        """The files named by `paths`: files as given, folders searched (`files.walk`); a
        folder that cannot be searched is an E0101 diagnostic."""
        found: list[str] = []
        for path in paths:
            if os.path.isdir(path):
                files, refused = walk(path, self.roots)
                for folder, problem in refused:
                    shown = _shown(folder, os.path.realpath(folder))
                    self.diagnostics.append(error("E0101", f"cannot read the folder `{shown}`: {problem.why}",
                                                  _nowhere(shown), "", problem.help))
                if not files and not refused:
                    raise InputError(f"no `.route` files in folder `{path}`")
                found.extend(files)
            elif "\0" not in path and (os.path.lexists(path)  # (a FIFO or a broken symlink: `load` says why)
                                       or (self.overlay is not None and os.path.realpath(path) in self.overlay)):
                found.append(path)
            else:
                raise InputError(f"no such file or folder: `{path}`")
        return found

    def load(self, path: str, imported_at: Span | None) -> None:
        if "\0" in path:  # (no file system takes it)
            self._refuse(path, path, Unreadable("a path cannot hold a NUL character",
                                                "remove the NUL character (`\\u0000`) from the path"), imported_at)
            return
        real = os.path.realpath(path)
        if real in self.stack:
            cycle = [*self.stack[self.stack.index(real):], real]
            chain = " -> ".join(f"`{self.display[p]}`" for p in cycle)
            assert imported_at is not None
            self.diagnostics.append(error("E0102", f"import cycle: {chain}", imported_at, "closes the cycle",
                                          "move what both files need into a third file that both import"))
            return
        if real in self.display:  # loaded already (or not UTF-8)
            return
        walked = self.refused.get(real)
        if walked is not None and (imported_at is None or walked):
            return  # refused already: a file both found in a folder and imported is reported once
        shown = _shown(path, real)
        text = read_inside(real, self.roots, self.overlay)
        if isinstance(text, Unreadable):
            self._refuse(shown, real, text, imported_at)
            return
        self.display[real] = shown
        source = SourceFile(shown, text)
        self.sources[shown] = source
        module, diagnostics = parse_source(source)
        self.diagnostics.extend(diagnostics)
        self.modules[real] = module
        self.stack.append(real)
        try:
            for decl in module.decls:
                if isinstance(decl, ast.Import):
                    if not decl.path.strip():
                        self.diagnostics.append(error("E0101", "an import needs a file path", decl.span,
                                                      "empty path", 'write `import "common.route"`'))
                        continue
                    # Joined, not normalized: `link/../x` is resolved as the system does, through `link`.
                    self.load(os.path.join(os.path.dirname(path), decl.path), decl.span)
        finally:
            self.stack.pop()

    def _refuse(self, path: str, real: str, problem: Unreadable, imported_at: Span | None) -> None:
        if problem.text is not None:
            # The file exists but is not UTF-8: point at the first bad byte in the file itself.
            source = SourceFile(path, problem.text)
            self.display[real] = path
            self.sources[path] = source
            self.unparsed.append(path)
            span = source.span(problem.at, problem.at + 1)
            related = [Related(imported_at, "imported here")] if imported_at else []
            self.diagnostics.append(error("E0101", f"cannot read `{path}`: {problem.why}", span,
                                          "not UTF-8", problem.help, related))
            return
        self.refused.setdefault(real, imported_at is None)
        if imported_at is not None:
            self.diagnostics.append(error("E0101", f"cannot import `{path}`: {problem.why}", imported_at,
                                          "imported here", problem.help))
        else:
            self.diagnostics.append(error("E0101", f"cannot read `{path}`: {problem.why}", _nowhere(path), "",
                                          problem.help))


class _Resolver:
    def __init__(self, modules: Sequence[ast.Module]) -> None:
        self.diagnostics: list[Diagnostic] = []
        self.events: dict[str, ast.EventDecl] = {}
        self.names: dict[str, Named] = {}
        self.tests: dict[str, ast.TestDecl] = {}
        self.defaults: ast.DefaultsDecl | None = None
        self.unrouted: ast.UnroutedDecl | None = None
        self.modules = modules
        self.broken = {name for module in modules for name in module.broken}

    def _define(self, table: dict[str, ast.EventDecl] | dict[str, Named] | dict[str, ast.TestDecl],
                name: ast.Name, decl: Named | ast.EventDecl | ast.TestDecl, what: str) -> None:
        first = table.get(name.text)
        if first is None:
            table[name.text] = decl  # type: ignore[assignment]
            return
        first_name: ast.Name = first.name  # type: ignore[assignment]
        first_kind = KIND_NAMES.get(type(first), what)
        this_kind = KIND_NAMES.get(type(decl), what)
        kinds = f"the {first_kind}" if first_kind == this_kind else f"a {first_kind}"
        remedy = "merge the two schemas or remove one" if what == "event" else "rename one of them"
        self.diagnostics.append(error(
            "E0103", f"`{name.text}` is defined twice", name.span, f"{this_kind} `{name.text}` defined again here",
            f"{kinds} `{name.text}` is already defined; {remedy}",
            [Related(first_name.span, "first defined here")],
        ))

    def declare(self) -> None:
        for module in self.modules:
            for decl in module.decls:
                if isinstance(decl, ast.EventDecl):
                    self._define(self.events, decl.name, decl, "event")
                elif isinstance(decl, ast.TestDecl):
                    self._define(self.tests, decl.name, decl, "test")
                elif isinstance(decl, (ast.TargetDecl, ast.DeadLetterDecl, ast.RouteDecl, ast.ChooseDecl,
                                       ast.RetryPolicy)):
                    if decl.name is not None:  # only inline policies, inside targets, have none
                        self._define(self.names, decl.name, decl, "name")
                elif isinstance(decl, ast.DefaultsDecl):
                    self.defaults = self._single(self.defaults, decl, "defaults")
                elif isinstance(decl, ast.UnroutedDecl):
                    self.unrouted = self._single(self.unrouted, decl, "unrouted")
        # `unrouted to dead_letter X` declares X when nothing else does.
        if self.unrouted is not None:
            name = self.unrouted.dead_letter
            if name.text not in self.names:
                self.names[name.text] = ast.DeadLetterDecl(name, None, self.unrouted.span)

    def _single(self, first: D | None, decl: D, keyword: str) -> D:
        if first is None:
            return decl
        self.diagnostics.append(error("E0108", f"`{keyword}` is given twice in this project", decl.span,
                                      "given again here", f"a project has one `{keyword}`: merge them",
                                      [Related(first.span, "first given here")]))
        return first

    def ref(self, name: ast.Name, kind: type) -> None:
        """Report `name` unless it names a declaration of `kind`."""
        found = self.names.get(name.text)
        if isinstance(found, kind) or (found is None and name.text in self.broken):
            return
        wanted = KIND_NAMES[kind]
        if found is not None:
            actual = KIND_NAMES[type(found)]
            self.diagnostics.append(error(
                "E0107", f"`{name.text}` is a {actual}, not a {wanted}", name.span, f"expected a {wanted}",
                f"name a {wanted} here", [Related(found.name.span, f"the {actual} is defined here")],  # type: ignore[union-attr]
            ))
            return
        candidates = [n for n, d in self.names.items() if isinstance(d, kind)]
        hint = did_you_mean(name.text, candidates)
        if hint is None:
            hint = f"declare it: `{_declaration_hint(kind, name.text)}`"
        self.diagnostics.append(error(UNKNOWN_CODES[kind], f"unknown {wanted} `{name.text}`", name.span,
                                      "not defined", hint))

    def _options(self, options: ast.TargetOptions) -> None:
        if isinstance(options.retry, ast.Name):
            self.ref(options.retry, ast.RetryPolicy)
        if options.dead_letter is not None:
            self.ref(options.dead_letter, ast.DeadLetterDecl)

    def _deliveries(self, deliveries: Iterable[ast.Delivery]) -> None:
        for delivery in deliveries:
            self.ref(delivery.target, ast.TargetDecl)

    def resolve(self) -> None:
        for module in self.modules:
            for decl in module.decls:
                if isinstance(decl, (ast.TargetDecl, ast.DefaultsDecl)):
                    self._options(decl.options)
                elif isinstance(decl, ast.RouteDecl):
                    self._deliveries(decl.to)
                elif isinstance(decl, ast.ChooseDecl):
                    for branch in decl.branches:
                        self._deliveries(branch.to)
                elif isinstance(decl, ast.UnroutedDecl):
                    self.ref(decl.dead_letter, ast.DeadLetterDecl)
                elif isinstance(decl, ast.TestDecl):
                    for step in decl.steps:
                        if step.send.emitted_by is not None:
                            self.ref(step.send.emitted_by, ast.TargetDecl)
                        for target in step.expect.targets:
                            self.ref(target, ast.TargetDecl)

    def of_kind(self, kind: type) -> dict[str, Named]:
        return {name: decl for name, decl in self.names.items() if isinstance(decl, kind)}


def _declaration_hint(kind: type, name: str) -> str:
    if kind is ast.TargetDecl:
        return f"target {name} {{ mode async }}"
    if kind is ast.RetryPolicy:
        return f"retry {name} {{ attempts 3 }}"
    return f"dead_letter {name} {{ retain 7d }}"


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for a burst of allocation.

    Compiling allocates hundreds of thousands of small objects that form no cycles (AST
    nodes, spans, tables); the collector, triggered by the allocation count alone, keeps
    scanning them and finds nothing. On a 10,000-route project that was about 40% of the
    time (bench/parse.py). Reference counting still frees everything as usual.

    When the pause ends, the collector's next run scans everything made during it that is
    still alive (and frees what was garbage in cycles): one pause around a whole compile
    (`interlock.compile`, `interlock compile`) lets the project be freed unscanned first.
    A pause inside another one changes nothing.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_project(paths: Sequence[str], root: str | None = None, overlay: Mapping[str, str] | None = None) -> Project:
    """Load, parse and resolve the project named by `paths` (files or folders). Imports
    read files inside `root`, by default inside the folders given or those of the files
    given. `overlay` (texts by real path) stands for the disk's text of those files, under
    the same rules (`files.read_inside`): an editor's unsaved buffers.

    Raises `InputError` when a path names nothing loadable; every problem inside the
    files is a diagnostic in the returned project.
    """
    with paused_gc():
        return _load_project(paths, root, overlay)


def _roots(paths: Sequence[str], root: str | None) -> list[str]:
    if root is not None:
        try:
            check_root(root)
        except InputError as exc:
            raise InputError(f"the project's folder (root): {exc}") from None
        return [os.path.realpath(root)]
    return sorted({os.path.realpath(path if os.path.isdir(path) else os.path.dirname(path) or ".")
                   for path in paths if "\0" not in path})


def _load_project(paths: Sequence[str], root: str | None, overlay: Mapping[str, str] | None) -> Project:
    loader = _Loader(_roots(paths, root), overlay)
    for path in loader.collect(paths):
        loader.load(path, None)
    modules = tuple(loader.modules.values())
    resolver = _Resolver(modules)
    resolver.declare()
    resolver.resolve()
    return Project(
        files=(*(loader.display[real] for real in loader.modules), *loader.unparsed),
        sources=loader.sources,
        modules=modules,
        events=resolver.events,
        retries=resolver.of_kind(ast.RetryPolicy),  # type: ignore[arg-type]
        dead_letters=resolver.of_kind(ast.DeadLetterDecl),  # type: ignore[arg-type]
        targets=resolver.of_kind(ast.TargetDecl),  # type: ignore[arg-type]
        routes=resolver.of_kind(ast.RouteDecl),  # type: ignore[arg-type]
        chooses=resolver.of_kind(ast.ChooseDecl),  # type: ignore[arg-type]
        tests=resolver.tests,
        defaults=resolver.defaults,
        unrouted=resolver.unrouted,
        diagnostics=tuple(sorted_diagnostics([*loader.diagnostics, *resolver.diagnostics])),
    )
