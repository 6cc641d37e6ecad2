"""The front end: the `.route` language's parser, typed AST, name resolution and diagnostics."""

from .diagnostics import CODES, Diagnostic, Related, Severity
from .parser import parse_source, parse_text
from .project import Project, load_project
from .source import SourceFile, Span

__all__ = [
    "CODES",
    "Diagnostic",
    "Project",
    "Related",
    "Severity",
    "SourceFile",
    "Span",
    "load_project",
    "parse_source",
    "parse_text",
]
