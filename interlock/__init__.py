"""interlock: declarative event routing between services.

The public API:

- `check(paths)`: every diagnostic of a project of `.route` files;
- `load(path)`: a `Router` for a `.route` project (compiled, and cached while its files
  are unchanged) or for an artifact written by `interlock compile`;
- `Router.match(type, data)`, `Router.explain(type, data)`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from interlock.dsl import Diagnostic, Project, Severity, Span, load_project
from interlock.runtime.artifact import ArtifactError, read_artifact
from interlock.runtime.router import RouteExplanation, Router, Verdict

__version__ = "0.1.0"

__all__ = [
    "ArtifactError",
    "CompileError",
    "Diagnostic",
    "Project",
    "RouteExplanation",
    "Router",
    "Severity",
    "Span",
    "Verdict",
    "__version__",
    "check",
    "compile",
    "load",
    "load_project",
]


class CompileError(Exception):
    """A project that has errors; `diagnostics` holds all of them."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        errors = [d for d in diagnostics if d.is_error]
        shown = "\n".join(f"  {d.span}: error[{d.code}]: {d.message}" for d in errors[:10])
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        super().__init__(f"the project has {len(errors)} error(s):\n{shown}{more}")
        self.diagnostics = diagnostics


def _paths(paths: str | Sequence[str]) -> list[str]:
    return [paths] if isinstance(paths, str) else list(paths)


def check(paths: str | Sequence[str]) -> list[Diagnostic]:
    """Every diagnostic for the project at `paths` (files or folders), sorted by position.

    Raises `interlock.dsl.project.InputError` when a path names nothing to load.
    """
    from interlock.compiler.pipeline import check as run_passes

    return run_passes(load_project(_paths(paths)))


def compile(paths: str | Sequence[str]) -> dict[str, Any]:
    """The compiled artifact (a JSON-able dict) of a project; `CompileError` if it has errors."""
    from interlock.compiler.artifact import build_artifact
    from interlock.compiler.pipeline import check as run_passes

    project = load_project(_paths(paths))
    diagnostics = run_passes(project)
    if any(d.is_error for d in diagnostics):
        raise CompileError(diagnostics)
    return build_artifact(project)


_CACHE: dict[tuple[tuple[str, float, int], ...], dict[str, Any]] = {}


def _fingerprint(project: Project) -> tuple[tuple[str, float, int], ...]:
    return tuple((f, os.path.getmtime(f), os.path.getsize(f)) for f in sorted(project.files))


def load(path: str | Sequence[str]) -> Router:
    """A router for a `.route` project (files or folders) or a compiled artifact (`.json`)."""
    paths = _paths(path)
    if len(paths) == 1 and paths[0].endswith(".json"):
        return Router(read_artifact(paths[0]))
    from interlock.compiler.artifact import build_artifact
    from interlock.compiler.pipeline import check as run_passes

    project = load_project(paths)
    key = _fingerprint(project)
    artifact = _CACHE.get(key)
    if artifact is None:
        diagnostics = run_passes(project)
        if any(d.is_error for d in diagnostics):
            raise CompileError(diagnostics)
        artifact = _CACHE[key] = build_artifact(project)
    return Router(artifact)
