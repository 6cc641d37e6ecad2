"""`interlock fmt`: write `.route` files in the canonical layout (`dsl/printer.py`).

Owns: which files are formatted (the files given, the `.route` files under the folders given,
found and read as the project loader finds and reads them: `dsl/files.py`), `--check` and
`--diff`, and writing a file back atomically (a temporary file beside it, its permissions,
then a rename), only when its text changes. Imports are not followed: a file is formatted
alone. A file with errors is reported as `check` reports it and left as it is.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import sys
import tempfile

import attrs
from rich.console import Console

from interlock import report
from interlock.dsl.files import InputError, Unreadable, read_inside, walk
from interlock.dsl.printer import FormatError, format_source

__all__ = ["FormatError", "format_source"]  # the language server and the editors use them from here

log = logging.getLogger(__name__)


@attrs.frozen
class FmtOptions:
    paths: tuple[str, ...]
    check: bool = False  # write nothing; fail when a file would change
    diff: bool = False  # write nothing; print what would change


def _files(paths: tuple[str, ...], stderr: Console) -> tuple[list[tuple[str, list[str]]], bool]:
    """Each file to format with the folders it may be read in, and whether a folder was refused."""
    found: list[tuple[str, list[str]]] = []
    refused_any = False
    for path in paths:
        if "\0" not in path and os.path.isdir(path):
            roots = [os.path.realpath(path)]
            files, refused = walk(path, roots)
            for folder, problem in refused:
                stderr.print(f"interlock: error: cannot read the folder `{folder}`: {problem.why} ({problem.help})",
                             markup=False)
                refused_any = True
            if not files and not refused:
                raise InputError(f"no `.route` files in folder `{path}`")
            found.extend((file, roots) for file in files)
        elif "\0" not in path and os.path.lexists(path):
            found.append((path, [os.path.realpath(os.path.dirname(path) or ".")]))
        else:
            raise InputError(f"no such file or folder: `{path}`")
    once: dict[str, tuple[str, list[str]]] = {}  # a file reached twice (a symlink to it, given twice): once
    for entry in found:
        once.setdefault(os.path.realpath(entry[0]), entry)
    return list(once.values()), refused_any


def run_fmt(options: FmtOptions, stderr: Console) -> int:
    """Format every file; 0 when all went well (and, with `check`, none would change), else 1."""
    files, failed = _files(options.paths, stderr)
    changed = []
    for path, roots in files:
        text = read_inside(os.path.realpath(path), roots)
        if isinstance(text, Unreadable):
            stderr.print(f"interlock: error: cannot read `{path}`: {text.why} ({text.help})", markup=False)
            failed = True
            continue
        try:
            formatted = format_source(text, path)
        except FormatError as exc:
            report.print_text(stderr, exc.diagnostics, {path: exc.source}, 1)
            failed = True
            continue
        if formatted == text:
            continue
        changed.append(path)
        if options.diff:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), formatted.splitlines(True), path, path))
        if options.check:
            stderr.print(f"would reformat {path}", markup=False)
        elif not options.diff:
            try:
                write_atomically(os.path.realpath(path), formatted)
            except OSError as exc:
                stderr.print(f"interlock: error: cannot write `{path}`: {exc.strerror or exc}", markup=False)
                failed = True
                continue
            log.info("formatted %s", path)
    return 1 if failed or (options.check and changed) else 0


def write_atomically(path: str, text: str) -> None:
    """Replace the file at `path` with `text`: a temporary file in the same folder, with the
    file's permissions, flushed to disk, then renamed over it (readers see the old or the new)."""
    mode = os.stat(path).st_mode
    folder, name = os.path.split(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder or ".")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode & 0o7777)
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
