"""interlock: declarative event routing between services.

The public API. `check` validates a project of `.route` files; the compiler and the
runtime add `load` and the `Router` (see docs/).
"""

from __future__ import annotations

from collections.abc import Sequence

from interlock.dsl import Diagnostic, Project, Severity, Span, load_project

__version__ = "0.1.0"

__all__ = ["Diagnostic", "Project", "Severity", "Span", "__version__", "check", "load_project"]


def check(paths: str | Sequence[str]) -> list[Diagnostic]:
    """Every diagnostic for the project at `paths` (files or folders), sorted by position.

    Raises `interlock.dsl.project.InputError` when a path names nothing to load.
    """
    from interlock.compiler.pipeline import check as run_passes

    project = load_project([paths] if isinstance(paths, str) else list(paths))
    return run_passes(project)
