"""Reading a project's files: regular files of at most MAX_FILE_BYTES inside the project's folder.

Owns: the project's folder (its roots: real paths of folders) and whether a path is inside
it; opening a file so that what is read is the file at a real path inside a root, not
whatever a symlink swapped in meanwhile points to; refusing the system's pseudo
filesystems (/proc, /sys, /dev); finding the `.route` files under a folder. Every refusal is
an `Unreadable` saying why and what to do; `project.py` turns it into an E0101 diagnostic.

Why a file is opened one folder at a time: `os.path.realpath` tells where a path leads
*now*; opening the path again by name would follow whatever its symlinks say by then. So
the real path, once found inside a root, is opened from that root component by component
with O_NOFOLLOW (each folder through the descriptor of the one before): no symlink is
followed after the test, and a path changed meanwhile fails to open (ELOOP, ENOTDIR)
instead of leading outside. Portable to Linux and macOS (`dir_fd`, O_NOFOLLOW, O_DIRECTORY).
"""

from __future__ import annotations

import errno
import functools
import os
import stat
from collections.abc import Mapping, Sequence

import attrs

MAX_FILE_BYTES = 4 * 1024 * 1024  # a project file larger than this is refused, not read

# Folders of the system whose files are made up as they are read (the environment, kernel
# state, devices): never a project's, whatever the project's folder is (`--root /`).
PSEUDO_FOLDERS = ("/proc", "/sys", "/dev")

OUTSIDE_HELP = ("a project reads files inside the folders given or the folders of the files given; name a wider "
                "one with `--root` (`root=` in Python)")
PSEUDO_HELP = "a project reads files on disk: nothing under /proc, /sys or /dev is read"


class InputError(Exception):
    """A path given to the loader that names nothing to load (a usage error, not a diagnostic)."""


@attrs.frozen
class Unreadable:
    """Why a file (or folder) is not read, and what to do about it."""

    why: str
    help: str
    text: str | None = None  # of a file that is not UTF-8: its text with replacements, to show
    at: int = 0  # the offset of the first bad byte in `text`


def check_root(root: str) -> str:
    """`root` if it names a folder; InputError saying what it names instead."""
    if not root:
        raise InputError("an empty path names no folder")
    if "\0" in root:
        raise InputError("a path cannot hold a NUL character")
    if not os.path.exists(root):
        raise InputError(f"no such folder: `{root}`")
    if not os.path.isdir(root):
        raise InputError(f"`{root}` is not a folder")
    return root


def holding(real: str, roots: Sequence[str]) -> str | None:
    """The innermost root that holds the real path `real`, or None when it is outside them all."""
    inside = [root for root in roots if os.path.commonpath([real, root]) == root]
    return max(inside, key=len) if inside else None


def outside(roots: Sequence[str]) -> Unreadable:
    shown = " or ".join(f"`{root}`" for root in roots)
    return Unreadable(f"it is outside the project's folder {shown}", OUTSIDE_HELP)


def _pseudo_folder(real: str) -> str | None:
    return next((f for f in PSEUDO_FOLDERS if real == f or real.startswith(f + "/")), None)


@functools.cache
def _pseudo_devices() -> frozenset[int]:
    """The devices of the pseudo filesystems mounted at PSEUDO_FOLDERS (the same procfs or
    sysfs mounted elsewhere has the same device); a folder that is no mount point (no
    /proc in a chroot) is left out, or every file of the root filesystem would be refused."""
    try:
        system = os.stat("/").st_dev
    except OSError:
        return frozenset()
    devices = set()
    for folder in PSEUDO_FOLDERS:
        try:
            device = os.stat(folder).st_dev
        except OSError:
            continue
        if device != system:
            devices.add(device)
    return frozenset(devices)


def read_inside(real: str, roots: Sequence[str], overlay: Mapping[str, str] | None = None) -> str | Unreadable:
    """The text of the file at the real path `real` (a leading byte order mark dropped), or
    why it is not read: outside `roots`, of a pseudo filesystem, not a regular file (a FIFO
    would hang, a device never end), larger than MAX_FILE_BYTES, changed while it was
    opened, or not UTF-8. (A path with a NUL character is refused before: `_Loader.load`.)

    `overlay`: texts by real path that stand for what is on disk (an editor's unsaved
    buffers, `interlock lsp`); taken only for a path the rules above would read from, and
    held to the same size limit."""
    root = holding(real, roots)
    if root is None:
        return outside(roots)
    folder = _pseudo_folder(real)
    if folder is not None:
        return Unreadable(f"it is in `{folder}`, a pseudo filesystem of the system", PSEUDO_HELP)
    if overlay is not None and real in overlay:
        return _overlaid(overlay[real])
    # The type is told before anything is opened: opening a device can act on it.
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        return Unreadable("no such file", "an import's path is relative to the importing file (and a symlink's "
                          "target must exist)")
    except OSError as exc:
        return _os_error(exc)
    if not stat.S_ISREG(mode):
        return _not_regular(mode)
    try:
        descriptor = _open_below(root, real)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
            return Unreadable("it changed while it was opened (a symlink or a folder on its path was replaced)",
                              "check again once nothing is changing the project's files")
        return _os_error(exc)
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            return _not_regular(status.st_mode)
        if status.st_dev in _pseudo_devices():
            return Unreadable("it is on a pseudo filesystem of the system (as /proc or /sys)", PSEUDO_HELP)
        try:
            data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            return _os_error(exc)
    if len(data) > MAX_FILE_BYTES:
        return Unreadable(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
                          "split it into smaller files that import each other")
    if data and status.st_size == 0:  # the size of a file made up as it is read: debugfs, configfs, ...
        return Unreadable("its size is 0 yet it holds text: a pseudo filesystem's file, not one on disk", PSEUDO_HELP)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        shown = data.decode("utf-8-sig", errors="replace")
        at = len(data[: exc.start].decode("utf-8-sig", errors="replace"))
        return Unreadable(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", "save the file as UTF-8",
                          shown, at)


def _overlaid(text: str) -> str | Unreadable:
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        return Unreadable(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
                          "split it into smaller files that import each other")
    return text.removeprefix("\ufeff")


def _open_below(root: str, real: str) -> int:
    """A descriptor of the file at `real`, opened from the folder `root` that holds it one
    component at a time, following no symlink (see the module's docstring)."""
    parts = os.path.relpath(real, root).split(os.sep)
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        # (not blocking on a FIFO swapped in, nor taking a terminal as the controlling one)
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=folder)
    finally:
        os.close(folder)


def _not_regular(mode: int) -> Unreadable:
    if stat.S_ISDIR(mode):
        return Unreadable("it is a folder", "name a `.route` file; a folder is given on the command line, not imported")
    return Unreadable("not a regular file (a FIFO, a device or a socket)",
                      "a project reads regular files only (a FIFO would hang, a device never end): remove it, or "
                      "rename it so that it does not end in `.route`")


def _os_error(exc: OSError) -> Unreadable:
    why = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return Unreadable(why, "make it readable (`chmod a+r`), or move it out of the project's folder")
    return Unreadable(why, "check that the file can be read")


def walk(top: str, roots: Sequence[str]) -> tuple[list[str], list[tuple[str, Unreadable]]]:
    """The `.route` files under the folder `top`, in sorted order, sub-folders searched
    recursively (after the files of their parent), folders whose names start with `.`
    skipped; and the folders not searched, with why: unreadable, or a symlink leading
    outside `roots` (a symlinked folder inside them is searched, once)."""
    found: list[str] = []
    refused: list[tuple[str, Unreadable]] = []
    seen: set[str] = set()
    stack = [top]
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in seen:
            continue
        seen.add(real)
        if holding(real, roots) is None:
            refused.append((folder, outside(roots)))
            continue
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            problem = _os_error(exc)
            refused.append((folder, Unreadable(f"cannot search the folder: {problem.why}", problem.help)))
            continue
        below = []
        for entry in entries:
            try:
                is_folder = entry.is_dir()
            except OSError:  # (a symlink that cannot be followed: loading the file says why)
                is_folder = False
            if is_folder:
                if not entry.name.startswith("."):
                    below.append(entry.path)
            elif entry.name.endswith(".route"):
                found.append(entry.path)
        stack.extend(reversed(below))
    return found, refused
