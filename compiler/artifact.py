"""The compiled artifact: what `interlock compile` writes and `interlock.load` reads.

A versioned, self-describing JSON document: the format name and version, a hash of the
sources it was compiled from, every target's effective options and retry policy, the dead
letters, the event schemas (for `publish` to validate against), the dispatch tables, and
an integrity hash over all of that, so that an artifact edited by hand is refused. The
runtime reads it alone (runtime/artifact.py); nothing here may be needed to run it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import attrs
import msgspec

from interlock.dsl import Project, ast
from interlock.dsl.project import paused_gc
from interlock.runtime.canonical import canonical_hash as definition_hash
from interlock.runtime.canonical import quick_hash

from .policies import resolve_targets
from .tables import compile_dispatch

FORMAT = "interlock-router"
# The lowest version that holds an artifact's content is the one written: version 2 added
# templates, defaults and `...` to transforms, so a runtime that reads only version 1
# refuses an artifact that has them instead of delivering payloads without them, and
# still runs every other.
VERSION = 1
VERSION_PAYLOADS = 2


def canonical_hash(content: Any) -> str:
    """sha256 over the canonical JSON of content the compiler built (runtime/canonical.py,
    which the runtime verifies with): the quick way, which is exact for it (JSON types, and
    finite numbers only: the language has no others, E0012), unless a float is written
    otherwise by msgspec than by Python."""
    return quick_hash(content) or definition_hash(content)


def _type_json(node: ast.Type) -> dict[str, Any]:
    if isinstance(node, ast.ScalarType):
        return {"type": node.name}
    if isinstance(node, ast.ListType):
        return {"type": "list", "item": _type_json(node.item)}
    return {"type": "object", "fields": {f.name.text: {**_type_json(f.type), "optional": f.optional}
                                         for f in node.fields}}


def build_artifact(project: Project) -> dict[str, Any]:
    """The artifact of a project that has no errors."""
    with paused_gc():
        return _build(project)


def _build(project: Project) -> dict[str, Any]:
    sources = {path: project.sources[path].text for path in sorted(project.sources)}
    targets = {}
    for name, target in resolve_targets(project).items():
        policy = attrs.asdict(target.policy, filter=lambda a, _v: a.name != "span")
        targets[name] = {
            "mode": target.mode,
            "retry": policy,
            "dead_letter": target.dead_letter,
            "timeout_ms": target.timeout_ms,
            "concurrency": target.concurrency,
            "order_by": list(target.order_by) if target.order_by else None,
            "emits": list(target.emits),
            "on_exhausted": target.on_exhausted,
            "http": attrs.asdict(target.http) if target.http else None,
            "at": [target.span.file, target.span.line, target.span.column],
        }
    content: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,  # raised below if a transform needs a later version
        "source_hash": canonical_hash(sources),
        "targets": targets,
        "dead_letters": {name: {"retain_ms": d.retain.ms if d.retain else None}
                         for name, d in project.dead_letters.items()},
        "unrouted": project.unrouted.dead_letter.text if project.unrouted else None,
        "events": {name: _type_json(e.schema) if e.schema else None for name, e in project.events.items()},
        "dispatch": compile_dispatch(project),
    }
    if any(_builds_payload(t) for t in _transforms(content["dispatch"])):
        content["version"] = VERSION_PAYLOADS
    content["integrity"] = canonical_hash(content)
    return content


def _transforms(dispatch: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for route in dispatch["routes"]:
        for arm in route.get("branches", [route]):
            for delivery in arm["deliveries"]:
                if delivery["transform"] is not None:
                    yield delivery["transform"]


def _builds_payload(transform: dict[str, Any]) -> bool:
    """Whether a transform (artifact form) has a template, a default or `...`, at any depth."""
    return "" in transform or any("template" in spec or "default" in spec
                                  or ("object" in spec and _builds_payload(spec["object"]))
                                  for spec in transform.values())


def dumps(artifact: dict[str, Any]) -> str:
    """The artifact's file: `json.dumps(artifact, indent=1, ensure_ascii=False)` and a newline,
    byte for byte (tests/test_canonical.py), written four times faster: json's C encoder
    writes it compact (with `indent`, json writes in Python: 0.56 s on 10,000 routes), and
    msgspec indents that text, as json would, its tokens as they are. Where msgspec cannot
    read the text (NaN, which json writes and JSON has not), json indents it itself."""
    compact = json.dumps(artifact, ensure_ascii=False, separators=(",", ":"))
    try:
        text = msgspec.json.format(compact, indent=1)
    except ValueError:  # (msgspec.DecodeError: NaN, infinities; UnicodeEncodeError: a lone surrogate)
        text = json.dumps(artifact, indent=1, ensure_ascii=False)
    return text + "\n"
