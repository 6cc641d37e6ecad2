"""Malformed `.route` inputs and what `interlock check` tells the user about each.

One row of `CASES` per fixture in `tests/fixtures/malformed/` (a `.route` file, or a folder
for mistakes that need two files). Each row is run through the real entry point,
`interlock.cli.main(["check", PATH])`, with the repository as the working directory so
that paths in the output are relative, and checked for:

- the exit code (1, or 0 for a fixture that only has warnings);
- the expected code at the expected `file:line:col`, plus any further ones listed;
- no traceback and no "internal error";
- words the output must hold (`says`) or must not hold (`lacks`);
- the whole rendered output, against `tests/snapshots/malformed/NAME.txt`.

A missing snapshot fails. To write or refresh the snapshots, run:

    INTERLOCK_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_malformed.py

Rows marked `bug` are known wrong diagnostics: their `says`, `lacks` or location state
what the output should be, so they fail today (strict xfail) and pass once fixed.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import NamedTuple

import pytest

from interlock.cli import main
from interlock.dsl.diagnostics import CODES

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path("tests/fixtures/malformed")
SNAPSHOTS = Path("tests/snapshots/malformed")
UPDATE = os.environ.get("INTERLOCK_UPDATE_SNAPSHOTS") == "1"

# `error[E0104]: message` then ` --> file:line:col` (indented by the width of the gutter)
_HEADER = re.compile(r"^(?:error|warning)\[(\w+)\]: .*\n *--> (\S+)$", re.MULTILINE)


class Case(NamedTuple):
    name: str
    code: str
    at: str  # "line:col" in the checked file, or "sub/file.route:line:col" under FIXTURES
    path: str | None = None  # what to check, under FIXTURES; default NAME.route, else the folder NAME
    exit: int = 1
    also: tuple[tuple[str, str], ...] = ()  # further (code, at) that must be reported
    says: tuple[str, ...] = ()
    lacks: tuple[str, ...] = ()
    bug: str | None = None  # why the output is wrong today: the row is a strict xfail

    @property
    def target(self) -> Path:
        if self.path is not None:
            return FIXTURES / self.path
        file = FIXTURES / f"{self.name}.route"
        return file if (ROOT / file).is_file() else FIXTURES / self.name

    def location(self, at: str) -> str:
        parts = at.rsplit(":", 2)
        if len(parts) == 3:
            return f"{FIXTURES / parts[0]}:{parts[1]}:{parts[2]}"
        return f"{self.target}:{at}"


CASES = [
    # ---- route structure
    Case("missing_to", "E0001", "6:1", says=("a route needs a `to` clause",)),
    Case("missing_on", "E0001", "4:3", says=("a route starts with `on EVENT_TYPE`",)),
    Case("when_after_to", "E0001", "6:3"),
    Case("when_without_condition", "E0001", "6:3", says=("`when` needs a condition",)),
    Case("field_without_test", "E0001", "6:3", says=("needs a test",)),
    Case("compare_to_field", "E0001", "5:18", says=("a comparison needs a value",)),
    Case("dangling_and", "E0001", "6:3", says=("`and`",)),
    Case("half_range", "E0001", "6:3", says=("a range is `LOW..HIGH`",)),
    Case("paren_unclosed", "E0001", "6:3", says=("expected `)`",)),
    Case("missing_comma_targets", "E0001", "6:14", says=("targets are separated by commas",)),
    Case("missing_comma_on", "E0001", "4:20", says=("event types in `on` are separated by commas",)),
    Case("missing_comma_list", "E0001", "5:27", says=("a list needs commas",)),
    Case("trailing_comma_to", "E0001", "6:1"),
    Case("missing_brace_before_next", "E0001", "7:1", lacks=("separated by commas",)),
    # ---- choose
    Case("choose_without_when", "E0001", "5:3", says=("needs at least one `when` branch",),
         lacks=("separated by commas",)),
    Case("otherwise_before_when", "E0001", "6:3", lacks=("separated by commas",)),
    Case("otherwise_in_middle", "E0001", "8:3", says=("`otherwise` must be the last branch",)),
    # ---- end of file
    Case("eof_missing_brace", "E0004", "7:19", says=("unexpected end of file",)),
    Case("eof_in_when", "E0004", "3:17", says=("unexpected end of file",)),
    Case("eof_after_open_brace", "E0004", "2:17", lacks=("not an option of a target",)),
    # ---- characters and tokens
    Case("single_equals", "E0002", "5:22", says=("compare with `==`",)),
    Case("double_ampersand", "E0002", "5:21", says=("`and`",)),
    Case("double_pipe", "E0002", "5:21", says=("`or`",)),
    Case("bang_not", "E0002", "5:8", says=("`not`",)),
    Case("single_quotes", "E0002", "5:25", says=("double quotes",)),
    Case("semicolons", "E0002", "2:12"),
    Case("slash_comment", "E0002", "1:1", says=("comments start with `#`",)),
    Case("unterminated_string", "E0003", "5:25"),
    Case("crlf_unterminated_string", "E0003", "5:25", lacks=("^^^^^^ this string",)),
    Case("crlf_unknown_target", "E0104", "5:6"),
    Case("tab_indent", "E0104", "5:5"),
    Case("wide_chars_before_error", "E0002", "5:32",
         says=("  | " + " " * 33 + "^ no token starts here",)),
    Case("non_ascii_name", "E0002", "1:11"),
    Case("nbsp_between_declarations", "E0002", "3:1"),
    Case("nbsp_inside_route", "E0002", "5:5", lacks=("unexpected character `b`",)),
    Case("unquoted_version", "E0012", "5:23", says=("`1.2.3`",)),
    # ---- strings
    Case("bad_escape", "E0010", "5:27", says=("`\\q`",)),
    Case("bad_unicode_escape", "E0010", "5:20"),
    Case("lone_low_surrogate", "E0010", "5:23", says=("lone surrogate",)),
    Case("lone_high_surrogate", "E0010", "5:29", says=("lone surrogate",)),
    # ---- regular expressions and quoted path segments
    Case("regex_backreference", "E0028", "5:26", says=("invalid escape sequence: \\1", "RE2")),
    Case("quoted_segment_bad_escape", "E0010", "5:18", says=("`\\q`",)),
    Case("quoted_segment_empty", "E0015", "5:16", says=("cannot be empty",)),
    Case("schema_field_path", "E0015", "3:3", says=("is a path, not a field name",)),
    # ---- durations and numbers
    Case("duration_min", "E0011", "3:11", says=("did you mean `5m`?",)),
    Case("duration_fraction", "E0011", "3:11", says=("`1500ms`",)),
    Case("duration_exponent", "E0011", "3:11", says=("without an exponent: write `1000ms`",)),
    Case("duration_words", "E0001", "3:11", says=("a duration needs a unit",)),
    Case("duration_no_unit", "E0001", "3:11", says=("a duration needs a unit",)),
    Case("duration_negative", "E0011", "3:17", says=("negative",)),
    Case("duration_unit_order", "E0011", "3:12", says=("`1m30s`",)),
    Case("attempts_fraction", "E0012", "2:12", says=("whole number",)),
    Case("attempts_duration", "E0001", "2:12", lacks=("such as `250ms` `3s`",)),
    Case("concurrency_negative", "E0012", "3:15", says=("cannot be negative",)),
    Case("number_too_large", "E0012", "5:17", says=("too large",)),
    # ---- CIDR blocks
    Case("cidr_host_bits", "E0013", "5:26", says=("`10.0.0.0/8`",)),
    Case("cidr_ipv6_typo", "E0013", "5:26"),
    # ---- schemas and types
    Case("unknown_type", "E0014", "3:13", says=("did you mean `string`?",)),
    Case("unknown_list_type", "E0014", "3:14", says=("did you mean `string`?",)),
    Case("unknown_type_no_hint", "E0014", "3:11"),
    Case("schema_missing_colon", "E0001", "2:6", says=("a schema field is `name: type`",)),
    Case("list_type_unclosed", "E0001", "3:3", says=("expected `>`",)),
    Case("duplicate_schema_field", "E0019", "4:3", says=("first given here",)),
    # ---- names of the wrong shape
    Case("dotted_target_name", "E0015", "1:8"),
    Case("glob_in_send", "E0015", "8:8"),
    Case("glob_in_event_decl", "E0015", "1:7"),
    Case("glob_in_emits", "E0015", "5:10"),
    Case("glob_in_field_path", "E0015", "5:8"),
    # ---- options
    Case("mode_typo", "E0016", "2:8", says=("did you mean `async`?",)),
    Case("jitter_typo", "E0016", "4:10", says=("did you mean `full`?",)),
    Case("on_exhausted_typo", "E0016", "3:16", says=("did you mean `drop`?",)),
    Case("option_twice", "E0017", "5:3", says=("first given here",)),
    Case("option_twice_retry", "E0017", "4:3", says=("first given here",)),
    Case("order_by_in_defaults", "E0018", "4:3"),
    Case("emits_in_defaults", "E0018", "4:3"),
    Case("unknown_target_option", "E0001", "3:3", says=("did you mean `timeout`?",)),
    Case("unknown_retry_option", "E0001", "3:3", says=("not an option of a retry policy",)),
    Case("backoff_missing_factor", "E0001", "3:37", says=("needs `initial` and `factor`",)),
    Case("order_without_by", "E0001", "3:9", says=("`order` must be followed by `by`",)),
    # ---- HTTP targets
    Case("http_method_get", "E0016", "3:8", says=("expected one of `POST`, `PUT`, `PATCH`",)),
    Case("http_url_not_http", "E0021", "3:13", says=("not an absolute http(s) URL",)),
    Case("http_env_bad_name", "E0022", "3:17", says=("is not an environment variable name",)),
    Case("http_header_bad_name", "E0023", "4:13", says=("is not an HTTP header name",)),
    Case("http_header_reserved", "E0024", "4:13", says=("is set by interlock",)),
    Case("http_secret_in_source", "E0025", "4:30", says=('env("NAME")',)),
    Case("http_kind_typo", "E0026", "4:23", says=("did you mean `http.timeout`?",)),
    Case("http_headers_without_http", "E0027", "3:3", says=("not an HTTP target",)),
    # ---- literals in tests and transforms
    Case("expect_target_twice", "E0019", "6:19", says=("target `billing` given twice",)),
    Case("empty_key", "E0015", "5:24", says=("a key cannot be empty",)),
    Case("duplicate_object_key", "E0019", "8:45"),
    Case("duplicate_with_key", "E0019", "5:50"),
    Case("list_in_in_list", "E0020", "5:28"),
    Case("template_brace_not_closed", "E0030", "5:37", says=("write `{{` for a literal `{`",)),
    Case("template_lone_brace", "E0030", "5:48", also=(("E0030", "5:28"),), says=("write `}}` for a literal `}`",)),
    Case("template_bad_path", "E0015", "5:38", also=(("E0030", "5:51"),), says=("`{}` names no field",)),
    Case("template_brace_escape", "E0010", "5:31", also=(("E0010", "5:38"),),
         says=("write `{{` for a literal `{` in a template",)),
    Case("spread_not_first", "E0031", "5:39", says=("move `...` to the start",)),
    Case("spread_twice", "E0031", "5:61", says=("first given here",)),
    Case("default_chain_too_long", "E0006", "6:12", says=("more than 64 `??` in a row",)),
    Case("default_without_fallback", "E0001", "5:45", says=("`??` needs a value to fall back to",)),
    # ---- null comparisons (warnings only)
    Case("null_comparison", "W0010", "5:8", exit=0, says=("write `missing coupon`",)),
    Case("null_in_list", "W0010", "4:29", exit=0, says=("`null` in a list never matches",)),
    Case("null_contains", "W0010", "4:8", exit=0, says=("`tags contains null` is never true",)),
    Case("glob_segment_mixed", "E0001", "3:6", says=("`order.*x` is not an event type or glob",)),
    Case("null_ordering", "W0010", "5:8", exit=0, says=("compare with a value",)),
    # ---- top level
    Case("garbage_top_level", "E0001", "3:1", says=("a declaration was expected",)),
    Case("stray_closing_brace", "E0001", "7:1", also=(("E0104", "10:6"),), says=("a declaration was expected",)),
    Case("uppercase_keyword", "E0001", "1:1", says=("a declaration was expected",)),
    Case("keyword_typo_top_level", "E0001", "1:1", says=("a declaration was expected",)),
    Case("unrouted_without_dead_letter", "E0001", "1:13", says=("`unrouted to dead_letter",)),
    Case("import_without_quotes", "E0001", "1:8", says=('`import "common.route"`',)),
    # ---- tests
    Case("missing_expect", "E0001", "9:1", says=("each `send` needs an `expect`",)),
    Case("expect_before_send", "E0001", "4:3"),
    # ---- several errors in one file
    Case("several_syntax_errors", "E0002", "5:15", also=(("E0001", "11:1"), ("E0001", "14:11"), ("E0001", "17:20")),
         says=("found 4 errors",)),
    Case("syntax_and_literal_errors", "E0016", "2:8", also=(("E0011", "3:11"), ("E0002", "7:15")),
         says=("found 3 errors",)),
    Case("several_errors_indented", "E0001", "5:16", also=(("E0002", "9:17"),), says=("found 2 errors",)),
    Case("too_deep", "E0006", "4:71", says=("nested more than 64 levels deep",)),
    Case("too_many_syntax_errors", "E0001", "1:33", lacks=("found 20 errors and 0 warnings in 1 file\n",),
         also=(("E0005", "20:33"),)),
    # ---- names: unknown, wrong kind, twice
    Case("unknown_target_hint", "E0104", "5:6", says=("did you mean `billing`?",)),
    Case("unknown_target_no_hint", "E0104", "5:6", says=("declare it",)),
    Case("unknown_target_in_expect", "E0104", "9:19"),
    Case("unknown_retry_hint", "E0105", "4:9", says=("did you mean `standard`?",)),
    Case("unknown_retry_no_hint", "E0105", "4:9", says=("declare it",)),
    Case("unknown_dead_letter_hint", "E0106", "4:15", says=("did you mean `billing_dlq`?",)),
    Case("unknown_dead_letter_no_hint", "E0106", "3:15", says=("declare it",)),
    Case("wrong_kind_retry", "E0107", "5:9", says=("`billing` is a target, not a retry policy",)),
    Case("wrong_kind_target", "E0107", "4:6", says=("`standard` is a retry policy, not a target",)),
    Case("wrong_kind_unrouted", "E0107", "3:25"),
    Case("duplicate_name", "E0103", "3:7", says=("first defined here",)),
    Case("duplicate_event", "E0103", "4:7", says=("first defined here",)),
    Case("duplicate_across_files", "E0103", "duplicate_across_files/b.route:1:8",
         says=("duplicate_across_files/a.route:1:8",)),
    Case("cascade_across_files", "E0001", "cascade_across_files/a.route:5:14", says=("found 1 error",)),
    Case("cascade_in_one_file", "E0001", "5:11", says=("found 1 error",)),
    Case("defaults_twice", "E0108", "5:1", says=("first given here",)),
    Case("unrouted_twice", "E0108", "2:1", says=("first given here",)),
    # ---- files
    Case("import_missing_file", "E0101", "import_missing_file/main.route:1:1", path="import_missing_file/main.route",
         says=("no such file",)),
    Case("import_folder", "E0101", "import_folder/main.route:1:1", path="import_folder/main.route",
         says=("it is a folder",)),
    Case("import_not_utf8", "E0101", "import_not_utf8/legacy.route:1:4", path="import_not_utf8/main.route",
         says=("not UTF-8", "imported here")),
    Case("import_cycle", "E0102", "import_cycle/b.route:1:1", path="import_cycle/a.route",
         says=("`tests/fixtures/malformed/import_cycle/a.route` -> `tests/fixtures/malformed/import_cycle/b.route`",)),
    Case("import_self", "E0102", "import_self/main.route:1:1", path="import_self/main.route"),
    Case("not_utf8", "E0101", "1:11", says=("not UTF-8",), lacks=("in 0 files",)),
]


def _params() -> list[object]:
    return [
        pytest.param(case, id=case.name,
                     marks=[pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else [])
        for case in CASES
    ]


@pytest.fixture(autouse=True)
def _plain_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths in the output, no colour, and a narrow terminal to show that nothing wraps."""
    monkeypatch.chdir(ROOT)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setenv("COLUMNS", "60")


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _reported(output: str) -> list[tuple[str, str]]:
    return _HEADER.findall(output)


@pytest.mark.parametrize("case", _params())
def test_malformed(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _check(capsys, str(case.target))
    snapshot = ROOT / SNAPSHOTS / f"{case.name}.txt"
    if UPDATE:
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_bytes(err.encode("utf-8"))

    assert out == ""
    assert "Traceback" not in err
    assert "internal error" not in err
    assert "\x1b[" not in err, "colour codes in captured output"
    assert code == case.exit
    reported = _reported(err)
    for expected_code, at in ((case.code, case.at), *case.also):
        assert (expected_code, case.location(at)) in reported
    for text in case.says:
        assert text in err
    for text in case.lacks:
        assert text not in err

    if not snapshot.exists():
        pytest.fail(f"no snapshot {SNAPSHOTS / snapshot.name}: run with INTERLOCK_UPDATE_SNAPSHOTS=1 to write it")
    assert err == snapshot.read_bytes().decode("utf-8")


# ---- the table itself --------------------------------------------------------


def test_every_front_end_code_has_a_fixture() -> None:
    # The front end (dsl/) numbers its codes E00xx, W00xx and E01xx; later stages use other ranges.
    front_end = {code for code in CODES if code[:3] in ("E00", "W00", "E01")}
    covered = {case.code for case in CASES} | {code for case in CASES for code, _ in case.also}
    assert front_end - covered == set()


def test_every_fixture_and_snapshot_is_in_the_table() -> None:
    names = {case.name for case in CASES}
    assert len(names) == len(CASES), "two rows with one name"
    fixtures = {p.name.removesuffix(".route") for p in (ROOT / FIXTURES).iterdir()}
    assert fixtures == names
    snapshots = {p.stem for p in (ROOT / SNAPSHOTS).glob("*.txt")}
    assert snapshots <= names, "snapshots of fixtures that are gone"


# ---- flags -----------------------------------------------------------------------

_CASE = {case.name: case for case in CASES}


@pytest.mark.parametrize("name", [case.name for case in CASES if case.exit == 0])
def test_warnings_fail_under_strict(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    case = _CASE[name]
    code, _, err = _check(capsys, str(case.target), "--strict")
    assert code == 1
    assert (case.code, case.location(case.at)) in _reported(err)


@pytest.mark.parametrize("name", [
    "unknown_target_hint", "eof_missing_brace", "import_cycle", "duplicate_across_files", "null_comparison",
    "several_syntax_errors",
])
def test_json_format(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    case = _CASE[name]
    code, out, err = _check(capsys, str(case.target), "--format", "json")
    assert err == ""
    assert code == case.exit
    report = json.loads(out)
    found = {(d["code"], f"{d['file']}:{d['line']}:{d['column']}") for d in report["diagnostics"]}
    for expected_code, at in ((case.code, case.at), *case.also):
        assert (expected_code, case.location(at)) in found
    summary = report["summary"]
    assert summary["errors"] == sum(1 for d in report["diagnostics"] if d["severity"] == "error")
    assert summary["shown"] == len(report["diagnostics"])


def test_max_errors_keeps_the_count_exact(capsys: pytest.CaptureFixture[str]) -> None:
    case = _CASE["several_syntax_errors"]
    code, _, err = _check(capsys, str(case.target), "--max-errors", "1")
    assert code == 1
    assert _reported(err) == [(case.code, case.location(case.at))]
    assert err.rstrip("\n").endswith("found 4 errors and 0 warnings in 1 file (3 not shown: --max-errors 1)")

    code, out, _ = _check(capsys, str(case.target), "--max-errors", "1", "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert [(d["code"], d["line"], d["column"]) for d in report["diagnostics"]] == [("E0002", 5, 15)]
    assert report["summary"] == {"errors": 4, "warnings": 0, "files": 1, "shown": 1}
