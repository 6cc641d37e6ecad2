"""Reading a compiled artifact, and refusing one that is not what the compiler wrote.

Checks, in order: it is JSON of a sane size, it is an interlock router, of the format
version this runtime reads, its integrity hash matches its content (so a hand-edited
artifact is refused), and its content is the format (runtime/artifact_check.py: every
field's type, and the invariants the router relies on), so that an artifact edited by hand
with its hash recomputed is refused here, naming the field, not met later as an exception
from matching or delivery.

The hash is computed the quick way first (runtime/canonical.py's `quick_hash`); only when
that is not the claimed hash is it computed by the definition (`canonical_hash`), which
then decides. The quick digest is the definition's for content of JSON types without NaN or
infinity; content with those could show the quick digest of the JSON it stands for (a NaN
where the compiler wrote `null`), so an artifact refused after a quick match is refused
for the hash, as before, when the definition's digest is not the one claimed. (What a file
holds is always answered as before: the format refuses every NaN and infinity. A dict made
in Python could differ: a set where the compiler wrote a list, which msgspec writes as
that list and the format's check takes, is accepted, where json refused it as not JSON.)
"""

from __future__ import annotations

import json
import os
from typing import Any

from .artifact_check import MAX_DEPTH, check
from .artifact_format import FormatError
from .canonical import canonical_hash as canonical_hash  # (also here: what verifies an artifact)
from .canonical import quick_hash
from .gc_pause import paused_gc

FORMAT = "interlock-router"
VERSIONS = (1, 2)  # 2: transforms with templates, defaults and `...` (runtime/transform.py)
MAX_BYTES = 256 * 1024 * 1024


class ArtifactError(Exception):
    """An artifact that cannot be used; the message says why and what to do."""


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
    quick = quick_hash(body) == claimed
    if not quick:
        _verify_hash(body, claimed, where)
    try:
        check(content)
    except Exception as exc:
        if quick:  # (the definition's answer first, as when it alone was asked: see the module docstring)
            _verify_hash(body, claimed, where)
        if not isinstance(exc, FormatError):
            raise
        at = f" at `{exc.where}`" if exc.where else ""
        raise ArtifactError(f"`{where}` is not a valid artifact{at}: {exc.problem}; recompile it with "
                            "`interlock compile` instead of editing it") from None
    return content


def _verify_hash(body: dict[str, Any], claimed: Any, where: str) -> None:
    """Raise ArtifactError unless `claimed` is `canonical_hash(body)`."""
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
