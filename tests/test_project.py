"""Loading projects: files and folders, imports, the namespace, resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

import interlock
from interlock.dsl import load_project
from interlock.dsl.project import InputError


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def codes(project: interlock.Project) -> list[tuple[str, str, int, int]]:
    return [(d.code, Path(d.span.file).name, d.span.line, d.span.column) for d in project.diagnostics]


def test_imports_are_relative_to_the_importing_file(tmp_path: Path) -> None:
    write(tmp_path, {
        "app/main.route": 'import "../lib/common.route"\nroute r { on e.x to billing }\n',
        "lib/common.route": 'import "sub/targets.route"\nretry quick { attempts 2 }\n',
        "lib/sub/targets.route": "target billing { mode async, retry quick }\n",
    })
    project = load_project([str(tmp_path / "app" / "main.route")], root=str(tmp_path))
    assert project.diagnostics == ()
    assert [Path(f).name for f in project.files] == ["main.route", "common.route", "targets.route"]
    assert set(project.targets) == {"billing"} and set(project.retries) == {"quick"}
    # Without a root, the folder of the file given is the project's: `../lib` is outside it.
    alone = load_project([str(tmp_path / "app" / "main.route")])
    first = alone.diagnostics[0]
    assert first.code == "E0101" and "outside the project's folder" in first.message


def test_imports_read_only_regular_files_of_bounded_size_inside_the_project(tmp_path: Path) -> None:
    """From the issue: `import "/proc/self/environ"` printed the environment in a diagnostic,
    `/dev/zero` exhausted memory, a FIFO hung, and a NUL character in the path was an
    internal error."""
    import os

    from interlock.dsl.files import MAX_FILE_BYTES

    os.mkfifo(tmp_path / "pipe.route")
    with open(tmp_path / "huge.route", "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    (tmp_path / "link.route").symlink_to("/proc/self/environ")
    write(tmp_path, {"a.route": 'import "/proc/self/environ"\nimport "/dev/zero"\nimport "pipe.route"\n'
                                'import "huge.route"\nimport "bad\\u0000.route"\nimport "link.route"\n'})
    project = load_project([str(tmp_path / "a.route")])
    found = [(d.code, d.span.line, d.message) for d in project.diagnostics]
    assert [(code, line) for code, line, _ in found] == [("E0101", n) for n in range(1, 7)], found
    assert "outside the project's folder" in found[0][2] and "outside the project's folder" in found[1][2]
    assert "not a regular file" in found[2][2] and "larger than 4 MiB" in found[3][2]
    assert "NUL" in found[4][2] and "outside the project's folder" in found[5][2]
    assert all("PATH=" not in d.render() for d in project.diagnostics if hasattr(d, "render"))


def test_a_file_imported_twice_is_loaded_once(tmp_path: Path) -> None:
    write(tmp_path, {
        "a.route": 'import "c.route"\nimport "b.route"\n',
        "b.route": 'import "c.route"\n',
        "c.route": "target t { mode async }\n",
    })
    project = load_project([str(tmp_path)])
    assert project.diagnostics == ()
    assert sorted(Path(f).name for f in project.files) == ["a.route", "b.route", "c.route"]


def test_folders_are_searched_recursively_and_hidden_folders_skipped(tmp_path: Path) -> None:
    write(tmp_path, {
        "x/a.route": "target a { mode async }\n",
        "x/y/b.route": "target b { mode async }\n",
        ".hidden/c.route": "target a { mode async }\n",
        "notes.txt": "not a route file",
    })
    project = load_project([str(tmp_path)])
    assert project.diagnostics == ()
    assert set(project.targets) == {"a", "b"}


def test_import_cycle_names_the_cycle(tmp_path: Path) -> None:
    write(tmp_path, {"a.route": 'import "b.route"\n', "b.route": 'import "c.route"\n', "c.route": 'import "a.route"\n'})
    project = load_project([str(tmp_path / "a.route")])
    (diag,) = project.diagnostics
    assert diag.code == "E0102"
    assert "a.route` -> `" in diag.message and diag.message.count("->") == 3
    assert Path(diag.span.file).name == "c.route" and diag.span.line == 1


def test_missing_import(tmp_path: Path) -> None:
    write(tmp_path, {"a.route": '\nimport "nope.route"\n'})
    project = load_project([str(tmp_path / "a.route")])
    assert codes(project) == [("E0101", "a.route", 2, 1)]


def test_duplicate_across_files_points_at_both(tmp_path: Path) -> None:
    write(tmp_path, {"a.route": "target billing { mode async }\n",
                     "b.route": "\n\nroute billing { on e to billing }\n"})
    project = load_project([str(tmp_path)])
    (diag,) = project.diagnostics
    assert diag.code == "E0103"
    assert (Path(diag.span.file).name, diag.span.line, diag.span.column) == ("b.route", 3, 7)
    (related,) = diag.related
    assert (Path(related.span.file).name, related.span.line, related.span.column) == ("a.route", 1, 8)


def test_events_and_tests_have_their_own_namespaces(tmp_path: Path) -> None:
    write(tmp_path, {"a.route": "event billing { id: string }\ntest billing { send billing { id: \"x\" } "
                                "expect billing }\ntarget billing { mode async }\n"})
    assert load_project([str(tmp_path)]).diagnostics == ()


def test_unknown_names_with_did_you_mean(tmp_path: Path) -> None:
    write(tmp_path, {"a.route": """retry standard { attempts 3 }
dead_letter billing_dlq
target billing { mode async, retry standrd, dead_letter billing_dql }
route r { on e to biling, nowhere }
test t { send e { } expect bililng }
"""})
    project = load_project([str(tmp_path)])
    found = {(d.code, d.span.line, d.span.column): d.help for d in project.diagnostics}
    assert found == {
        ("E0105", 3, 36): "did you mean `standard`?",
        ("E0106", 3, 57): "did you mean `billing_dlq`?",
        ("E0104", 4, 19): "did you mean `billing`?",
        ("E0104", 4, 27): "declare it: `target nowhere { mode async }`",
        ("E0104", 5, 28): "did you mean `billing`?",
    }


def test_a_name_of_the_wrong_kind(tmp_path: Path) -> None:
    write(tmp_path, {"a.route": "target billing { mode async }\ntarget t { retry billing }\nroute r { on e to t }\n"
                                "route s { on e to r }\n"})
    project = load_project([str(tmp_path)])
    assert [(d.code, d.message) for d in project.diagnostics] == [
        ("E0107", "`billing` is a target, not a retry policy"),
        ("E0107", "`r` is a route, not a target"),
    ]


def test_unrouted_uses_a_declared_dead_letter(tmp_path: Path) -> None:
    write(tmp_path, {"a.route": "dead_letter lost { retain 30d }\nunrouted to dead_letter lost\n"})
    project = load_project([str(tmp_path)])
    assert project.diagnostics == ()
    retain = project.dead_letters["lost"].retain
    assert retain is not None and retain.ms == 30 * 86_400_000


def test_a_declaration_with_a_syntax_error_is_not_also_undefined(tmp_path: Path) -> None:
    write(tmp_path, {"a.route": "target billing { mode async\ntarget audit { mode async }\n",
                     "b.route": "route r { on e to billing, audit, nope }\n"})
    project = load_project([str(tmp_path)])
    # billing's syntax error is reported once; audit, after it, still parses; nope is unknown
    assert codes(project) == [("E0001", "a.route", 2, 1), ("E0104", "b.route", 1, 35)]


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "a.route").write_bytes(b"target t { mode async }\n\xff\xfe")
    project = load_project([str(tmp_path)])
    assert [d.code for d in project.diagnostics] == ["E0101"]
    assert "not UTF-8" in project.diagnostics[0].message


def test_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        load_project([str(tmp_path / "missing")])
    with pytest.raises(InputError, match=r"no `\.route` files"):
        load_project([str(tmp_path)])


def test_public_check(tmp_path: Path) -> None:
    write(tmp_path, {"a.route": "route r { on e to nope }\n"})
    (diag,) = interlock.check(str(tmp_path))
    assert diag.code == "E0104" and diag.is_error


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "a.route").write_bytes("\ufefftarget t { mode async }\n".encode())
    project = load_project([str(tmp_path)])
    assert project.diagnostics == ()
    assert project.targets["t"].span.column == 1


def _shown(project: interlock.Project) -> str:
    """Everything a project would show: its diagnostics and the text of its sources."""
    return "\n".join([*(f"{d.message} {d.label} {d.help}" for d in project.diagnostics),
                      *(source.text for source in project.sources.values())])


def test_files_found_in_a_folder_or_given_are_read_only_inside_the_project(tmp_path: Path) -> None:
    """review14: a folder holding `leak.route -> ../outside/secret.txt` or `env.route ->
    /proc/self/environ` printed their first line in a parse error (files found by walking a
    folder had no root test); a symlinked folder was skipped silently."""
    write(tmp_path, {"outside/secret.txt": "SECRET_TOKEN = hunter2\n", "outside/more.route": "SECRET_MORE = 3\n",
                     "proj/base.route": "target t { mode async, on_exhausted drop }\n",
                     "proj/sub/inner.route": "target u { mode async, on_exhausted drop }\n"})
    proj = tmp_path / "proj"
    (proj / "leak.route").symlink_to("../outside/secret.txt")
    (proj / "env.route").symlink_to("/proc/self/environ")
    (proj / "away").symlink_to("../outside", target_is_directory=True)  # a folder leading out: refused
    (proj / "again").symlink_to("sub", target_is_directory=True)  # a folder leading inside: searched, once
    project = load_project([str(proj)])
    assert "SECRET" not in _shown(project) and "PATH=" not in _shown(project)
    refused = {Path(d.span.file).name: d for d in project.diagnostics}
    assert set(refused) == {"leak.route", "env.route", "away"}, project.diagnostics
    for diagnostic in refused.values():
        assert diagnostic.code == "E0101" and "outside the project's folder" in diagnostic.message
        assert diagnostic.help and "--root" in diagnostic.help
    assert set(project.targets) == {"t", "u"} and len(project.files) == 2
    # A file given is held to the same test: the project's folder is the one holding it.
    alone = load_project([str(proj / "leak.route")])
    assert [d.code for d in alone.diagnostics] == ["E0101"] and "SECRET" not in _shown(alone)


def test_a_path_changed_between_its_test_and_its_read_leads_nowhere_outside(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """review14: an import was tested with `os.path.realpath`, then opened again by its name:
    a folder swapped for a symlink between the two (a race, ~23% of tries) read a file
    outside. The swap is made here right after the test, every time."""
    import os
    import shutil

    write(tmp_path, {"o/sub/x.route": "SECRET_TOKEN = outside\n", "p/sub/x.route": "target t { mode async }\n",
                     "p/a.route": 'import "sub/x.route"\n'})
    realpath = os.path.realpath
    swapped: list[str] = []

    def realpath_then_swap(path: str, *args: object, **kwargs: object) -> str:
        found = realpath(path, *args, **kwargs)  # type: ignore[arg-type]
        if not swapped and str(path).endswith("x.route"):
            swapped.append(path)
            shutil.rmtree(tmp_path / "p" / "sub")
            (tmp_path / "p" / "sub").symlink_to("../o/sub", target_is_directory=True)
        return found

    monkeypatch.setattr(os.path, "realpath", realpath_then_swap)
    project = load_project([str(tmp_path / "p" / "a.route")])
    assert swapped
    assert "SECRET" not in _shown(project)
    (diagnostic,) = project.diagnostics
    assert diagnostic.code == "E0101" and "changed while it was opened" in diagnostic.message, diagnostic


def test_the_systems_pseudo_filesystems_are_never_read(tmp_path: Path) -> None:
    """review14: with `--root /`, `import "/proc/self/environ"` was read (a /proc file is a
    regular file to stat) and its first line shown."""
    write(tmp_path, {"p/a.route": 'import "/proc/self/environ"\nimport "/proc/version"\nimport "link.route"\n'})
    (tmp_path / "p" / "link.route").symlink_to("/proc/self/environ")
    project = load_project([str(tmp_path / "p")], root="/")
    assert "PATH=" not in _shown(project) and "Linux" not in _shown(project)
    assert [(d.code, d.span.line) for d in project.diagnostics] == [("E0101", 1), ("E0101", 2), ("E0101", 3)]
    assert all("`/proc`, a pseudo filesystem" in d.message and d.help for d in project.diagnostics)


def test_a_pseudo_filesystem_is_told_by_its_device_and_by_its_size_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same procfs mounted elsewhere has /proc's device; a file of another pseudo
    filesystem (debugfs, configfs) says its size is 0 and holds text."""
    import os

    from interlock.dsl import files

    environ = os.path.realpath("/proc/self/environ")
    monkeypatch.setattr(files, "PSEUDO_FOLDERS", ())  # as if /proc/self/environ were elsewhere
    refused = files.read_inside(environ, ["/"])
    assert isinstance(refused, files.Unreadable) and "pseudo filesystem" in refused.why
    monkeypatch.setattr(files, "_pseudo_devices", frozenset)  # and on a filesystem not known as one
    refused = files.read_inside(environ, ["/"])
    assert isinstance(refused, files.Unreadable) and "its size is 0 yet it holds text" in refused.why


def test_a_file_found_and_imported_is_refused_once_with_a_hint(tmp_path: Path) -> None:
    """review14: a FIFO found in a folder was `cannot read ...: not a regular file` with no
    help line, and reported a second time when it was also imported."""
    import os

    write(tmp_path, {"p/a.route": 'import "f.route"\ntarget t { mode async, on_exhausted drop }\n'})
    os.mkfifo(tmp_path / "p" / "f.route")
    os.mkfifo(tmp_path / "p" / "g.route")
    project = load_project([str(tmp_path / "p")])
    found = [(d.code, Path(d.span.file).name, d.span.line, d.label) for d in project.diagnostics]
    assert found == [("E0101", "a.route", 1, "imported here"), ("E0101", "g.route", 1, "")], found
    assert all("not a regular file" in d.message and d.help for d in project.diagnostics)


def test_a_folder_that_cannot_be_searched_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """review14: an unreadable sub-folder was skipped silently (`os.walk` without `onerror`).
    (Tests run as root, whom permissions do not stop: the folder's listing fails here as
    `chmod 000` makes it fail for anyone else.)"""
    import os

    write(tmp_path, {"p/a.route": "target t { mode async, on_exhausted drop }\n",
                     "p/locked/b.route": "target u { mode async, on_exhausted drop }\n"})
    scandir = os.scandir

    def refusing(path: str) -> object:
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", path)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    project = load_project([str(tmp_path / "p")])
    (diagnostic,) = project.diagnostics
    assert diagnostic.code == "E0101" and Path(diagnostic.span.file).name == "locked"
    assert "Permission denied" in diagnostic.message and diagnostic.help and "chmod" in diagnostic.help


def test_dot_dot_after_a_symlink_is_resolved_as_the_system_does(tmp_path: Path) -> None:
    """review14: `import "olink/../b.route"` with `olink -> ../o` loaded `p/b.route`, while
    the system opens `o/../b.route`, the project folder's `b.route`."""
    write(tmp_path, {"p/a.route": 'import "olink/../b.route"\n', "p/b.route": "target inside_p { mode async }\n",
                     "b.route": "target in_lex { mode async, on_exhausted drop }\n", "o/.keep": ""})
    (tmp_path / "p" / "olink").symlink_to("../o", target_is_directory=True)
    project = load_project([str(tmp_path / "p" / "a.route")], root=str(tmp_path))
    assert project.diagnostics == () and set(project.targets) == {"in_lex"}
    assert project.files[1].endswith("olink/../b.route")  # shown as written: it is not `p/b.route`


def test_root_must_name_a_folder(tmp_path: Path) -> None:
    """review14: `root=` naming a file, nothing, or "" (the current folder) was accepted."""
    write(tmp_path, {"a.route": "target t { mode async, on_exhausted drop }\n"})
    for root, says in ((str(tmp_path / "a.route"), "is not a folder"), (str(tmp_path / "nope"), "no such folder"),
                       ("", "an empty path")):
        with pytest.raises(InputError, match=says):
            load_project([str(tmp_path / "a.route")], root=root)
        with pytest.raises(InputError, match=says):
            interlock.check(str(tmp_path / "a.route"), root=root)
