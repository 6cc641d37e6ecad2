"""Reading a compiled artifact, and refusing one that is not what the compiler wrote.

Checks, in order: it is JSON of a sane size, it is an interlock router, of the format
version this runtime reads, its integrity hash matches its content (so a hand-edited
artifact is refused), and its content is the format (runtime/artifact_check.py: every
field's type, and the invariants the router relies on), so that an artifact edited by hand
with its hash recomputed is refused here, naming the field, not met later as an exception
from matching or delivery.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from .artifact_check import MAX_DEPTH, check
from .artifact_format import FormatError
from .gc_pause import paused_gc

FORMAT = "interlock-router"
VERSIONS = (1, 2)  # 2: transforms with templates, defaults and `...` (runtime/transform.py)
MAX_BYTES = 256 * 1024 * 1024


class ArtifactError(Exception):
    """An artifact that cannot be used; the message says why and what to do."""


def canonical_hash(content: Any) -> str:
    # The same function as compiler/artifact.py: the runtime may not import the compiler.
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def read_artifact(path: str) -> dict[str, Any]:
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise ArtifactError(f"cannot read artifact `{path}`: {exc.strerror or exc}") from None
    if size > MAX_BYTES:
        raise ArtifactError(f"artifact `{path}` is {size} bytes, more than the {MAX_BYTES} this runtime reads")
    try:
        with open(path, encoding="utf-8") as handle, paused_gc():  # (a third faster)
            content = json.load(handle)
    except RecursionError:
        raise ArtifactError(f"artifact `{path}` is nested too deeply to be read: recompile it with "
                            "`interlock compile`") from None
    except (UnicodeDecodeError, ValueError) as exc:  # (json.JSONDecodeError, and a number of too many digits)
        raise ArtifactError(f"artifact `{path}` is not JSON ({exc}): recompile it with `interlock compile`") from None
    return verify_artifact(content, path)


def verify_artifact(content: Any, where: str = "artifact") -> dict[str, Any]:
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise ArtifactError(f"`{where}` is not an interlock router artifact")
    version = content.get("version")
    if type(version) is not int or version not in VERSIONS:  # (`true` and `1.0` equal 1 in Python)
        read = f"version {VERSIONS[0]}" if len(VERSIONS) == 1 else \
            f"versions {', '.join(map(str, VERSIONS[:-1]))} and {VERSIONS[-1]}"
        raise ArtifactError(f"`{where}` has format version {version!r}; this runtime reads {read}: "
                            "recompile it with this version's `interlock compile`")
    claimed = content.get("integrity")
    body = {k: v for k, v in content.items() if k != "integrity"}
    try:
        actual = canonical_hash(body)
    except RecursionError:
        raise ArtifactError(f"`{where}` is nested too deeply (its conditions, schemas and transforms nest at most "
                            f"{MAX_DEPTH} levels): recompile it with `interlock compile`") from None
    except (TypeError, ValueError) as exc:  # a value JSON cannot hold (a dict made in Python)
        raise ArtifactError(f"`{where}` is not JSON ({exc}): recompile it with `interlock compile`") from None
    if claimed != actual:
        raise ArtifactError(f"`{where}` was modified after it was compiled (its integrity hash does not match): "
                            "recompile it with `interlock compile` instead of editing it")
    try:
        check(content)
    except FormatError as exc:
        at = f" at `{exc.where}`" if exc.where else ""
        raise ArtifactError(f"`{where}` is not a valid artifact{at}: {exc.problem}; recompile it with "
                            "`interlock compile` instead of editing it") from None
    return content
