"""The artifact's hash computed the quick way (msgspec) is the definition's (json.dumps), byte
for byte, wherever it is given, and the runtime's verdict on an artifact is the one the
definition alone gives (runtime/canonical.py, runtime/artifact.py); the artifact's file,
indented by msgspec, is json.dumps' (compiler/artifact.py's `dumps`)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import interlock
from interlock.compiler.artifact import canonical_hash as compiler_hash
from interlock.compiler.artifact import dumps
from interlock.runtime.artifact import ArtifactError, verify_artifact
from interlock.runtime.canonical import canonical_hash, quick_hash
from interlock.runtime.router import Router

ROOT = Path(__file__).resolve().parent.parent


def _text(value: Any) -> bytes:
    """The definition's bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _agrees(value: Any) -> bool:
    """quick_hash is the definition's digest, or says it cannot tell (None)."""
    quick = quick_hash(value)
    return quick is None or quick == canonical_hash(value)


texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)  # (no lone surrogates: UTF-8 has none)
floats = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | st.integers() | st.integers(min_value=-10**40, max_value=10**40) | floats | texts
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5), max_leaves=40)


@settings(max_examples=3000, deadline=None)
@given(json_values)
def test_the_quick_digest_is_the_definitions_for_any_json_value(value: Any) -> None:
    assert _agrees(value)


def _plain_float(x: float) -> bool:
    """A float Python writes in fixed form, as msgspec does."""
    return x == 0 or 1e-4 <= abs(x) < 1e16


@settings(max_examples=20000, deadline=None)
@given(floats)
def test_a_float_is_written_as_python_writes_it_or_the_quick_way_gives_up(x: float) -> None:
    assert _agrees(x) and _agrees([x, {"x": x}])
    if _plain_float(x) and not 1e-4 <= abs(x) < 1e-3:  # (0.000x: digits as 0 read like 0.0000..., given up)
        assert quick_hash([x]) is not None


@pytest.mark.parametrize("x", [1e16, 1.5e-05, 1e-07, 1e22, 1.2345678901234568e+17, 5e-324, -1e300,
                               1.7976931348623157e308, 0.00001, -0.000099])
def test_floats_msgspec_writes_otherwise_are_hashed_by_the_definition(x: float) -> None:
    assert quick_hash({"value": x}) is None and quick_hash([1, [x]]) is None


def test_every_code_point_is_written_as_json_writes_it() -> None:
    everything = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(everything), 4096):
        chunk = everything[start:start + 4096]
        value = {"".join(chunk): "".join(reversed(chunk)), **{c: c for c in chunk[::97]}}
        quick = quick_hash(value)
        assert quick is not None and quick == canonical_hash(value), hex(ord(chunk[0]))


@settings(max_examples=2000, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | texts.filter(lambda t: not any(c.isdigit() for c in t)),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5),
                    max_leaves=40))
def test_the_quick_way_is_taken_for_json_without_floats(value: Any) -> None:
    quick = quick_hash(value)
    assert quick is not None and quick == canonical_hash(value)


class _Text(str):
    pass


@pytest.mark.parametrize("value", [{1: 2}, {"a": {None: 1}}, 10**5000, "\ud800", {"k": _Text("x")}, [{1, 2}]],
                         ids=["int key", "None key", "long int", "lone surrogate", "str subclass", "set"])
def test_what_msgspec_refuses_or_json_cannot_hold_is_left_to_the_definition(value: Any) -> None:
    if isinstance(value, list):  # (msgspec writes a set; json refuses it: the precondition, not checked)
        with pytest.raises(TypeError):
            canonical_hash(value)
        return
    assert quick_hash(value) is None


def test_nesting_json_cannot_write_is_left_to_the_definition() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert quick_hash(deep) is None
    with pytest.raises(RecursionError):
        canonical_hash(deep)


# ---- artifacts ----------------------------------------------------------------------

PROJECT = """
event e { amount: float, kind: string }
target t { mode async, on_exhausted drop }
route small { on e when amount in 0.5..2.25 or kind in ["a1e5", "b"] to t with { ratio: 0.75, n: 12 } }
"""

HUGE = 'route huge { on e when amount > 1e16 to t with { tiny: 0.00001 } }\n'


def _compiled(tmp_path: Path, text: str) -> dict[str, Any]:
    (tmp_path / "p.route").write_text(text)
    return interlock.compile(str(tmp_path / "p.route"))


def _body(artifact: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in artifact.items() if k != "integrity"}


@pytest.mark.parametrize("source", ["project", "shop", "http"])
def test_the_compilers_artifacts_are_hashed_the_quick_way(tmp_path: Path, source: str) -> None:
    artifact = _compiled(tmp_path, PROJECT) if source == "project" else interlock.compile(
        str(ROOT / "examples" / source))
    body = _body(artifact)
    assert quick_hash(body) is not None
    assert artifact["integrity"] == canonical_hash(body) == compiler_hash(body)
    sources = {"p.route": PROJECT, "é/ü.route": HUGE}  # (what source_hash is over)
    assert quick_hash(sources) == canonical_hash(sources)


def test_an_artifact_with_floats_msgspec_writes_otherwise_has_the_definitions_hash(tmp_path: Path) -> None:
    artifact = _compiled(tmp_path, PROJECT + HUGE)
    body = _body(artifact)
    assert quick_hash(body) is None
    assert artifact["integrity"] == canonical_hash(body)
    router = Router(json.loads(json.dumps(artifact)))
    assert router.match("e", {"amount": 2e16}) == {"t"}


def test_a_nan_where_the_compiler_wrote_null_is_refused_as_an_edit(tmp_path: Path) -> None:
    # msgspec writes NaN as `null`: the quick digest of this artifact is the one claimed, but
    # the definition's is not, and the artifact was edited: refused for its hash, as before.
    artifact = _compiled(tmp_path, PROJECT)
    rules = artifact["dispatch"]["rules"]
    assert rules[0]["branch"] is None
    edited = json.loads(json.dumps(artifact))
    edited["dispatch"]["rules"][0]["branch"] = math.nan
    assert quick_hash(_body(edited)) == artifact["integrity"] != canonical_hash(_body(edited))
    with pytest.raises(ArtifactError, match="was modified after it was compiled"):
        verify_artifact(edited)
    # and the same NaN, with the hash recomputed by the definition, is refused for what it is
    edited["integrity"] = canonical_hash(_body(edited))
    with pytest.raises(ArtifactError, match=r"at `dispatch\.rules\[0\]\.branch`"):
        verify_artifact(edited)


def test_an_artifact_read_from_its_file_verifies_the_quick_way(tmp_path: Path) -> None:
    artifact = _compiled(tmp_path, PROJECT)
    path = tmp_path / "router.json"
    path.write_text(json.dumps(artifact, indent=1, ensure_ascii=False))
    assert interlock.load(str(path)).match("e", {"amount": 1}) == {"t"}
    text = path.read_text()
    assert text.count("0.75") == 1
    path.write_text(text.replace("0.75", "0.5"))
    with pytest.raises(ArtifactError, match="was modified after it was compiled"):
        interlock.load(str(path))


# ---- the artifact's file ---------------------------------------------------------------


def _json_file(value: Any) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False) + "\n"


@settings(max_examples=3000, deadline=None)
@given(st.recursive(scalars | st.sampled_from([math.nan, math.inf, -math.inf, [], {}, "\ud800"]),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5),
                    max_leaves=40))
def test_the_file_is_json_dumps_indented_byte_for_byte(value: Any) -> None:
    assert dumps(value) == _json_file(value)


def test_every_code_point_is_written_to_the_file_as_json_writes_it() -> None:
    everything = [chr(c) for c in range(sys.maxunicode + 1)]  # (lone surrogates too: the slow way)
    for start in range(0, len(everything), 4096):
        chunk = everything[start:start + 4096]
        value = {"".join(chunk): ["".join(reversed(chunk)), {}], **{c: [c] for c in chunk[::97]}}
        assert dumps(value) == _json_file(value), hex(ord(chunk[0]))


@pytest.mark.parametrize("source", ["project", "huge", "shop", "http"])
def test_an_artifacts_file_is_json_dumps_indented(tmp_path: Path, source: str) -> None:
    artifact = (_compiled(tmp_path, PROJECT + (HUGE if source == "huge" else "")) if source in ("project", "huge")
                else interlock.compile(str(ROOT / "examples" / source)))
    assert dumps(artifact) == _json_file(artifact)
