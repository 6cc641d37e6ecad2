"""`interlock publish`: one event injected by hand into a live store, as a service would
publish it — checked against its schema first, routed, its async deliveries stored for the
running instances, its HTTP sync targets called. A Python sync target has no handler in this
process: an event that reaches one is refused before anything is published."""

from __future__ import annotations

import json
import sys
from typing import Any

import attrs

from interlock.receipts import jsonable
from interlock.runtime.event import Event
from interlock.runtime.event_data import TOO_DEEP
from interlock.runtime.outcomes import Receipt
from interlock.runtime.router import Router

from .ops import OpsError, python_sync_targets


def read_event(event_type: str | None, data: str | None, path: str | None, event_id: str | None) -> Event:
    """The event the options describe: TYPE with `--data JSON`, or `--event FILE` (`-`: stdin)
    holding `{"type": ..., "data": {...}}` or a CloudEvent. OpsError when the options or the
    file cannot be read; EventError when what they hold is not an event."""
    if path is not None:
        item = _json(_read(path), f"`{path}`")
        if not isinstance(item, dict):
            raise OpsError(f'`{path}` must hold a JSON object: {{"type": ..., "data": {{...}}}} or a CloudEvent')
        if event_type is not None and event_type != item.get("type"):
            raise OpsError(f"TYPE {event_type!r} is not the type of the event in `{path}` ({item.get('type')!r}): "
                           "give one or the other")
        if "specversion" in item:
            ev = Event.from_cloudevent(item)
        elif not isinstance(item.get("type"), str):
            raise OpsError(f'`{path}` must hold a "type" string: {{"type": ..., "data": {{...}}}} or a CloudEvent')
        else:
            ev = Event(item["type"], item.get("data", {}), **({"id": item["id"]} if "id" in item else {}))
    else:
        if event_type is None or data is None:
            raise OpsError("give the event: TYPE and --data JSON, or --event FILE")
        ev = Event(event_type, _json(data, "--data"))
    return ev if event_id is None else attrs.evolve(ev, id=event_id)


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise OpsError(f"cannot read `{path}`: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise OpsError(f"`{path}` is not UTF-8 text") from None


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise OpsError(f"{what} is not JSON: {exc}") from None
    except RecursionError:
        raise OpsError(f"{what} is {TOO_DEEP}") from None


def check(router: Router, ev: Event) -> Event:
    """The event as `publish` will take it; SchemaError or EventError naming the field when it
    breaks its schema, OpsError when it reaches a Python sync target."""
    ev = router.validate(ev)
    python = python_sync_targets(router, router.match(ev.type, ev.data))
    if python:
        raise OpsError(f"the event reaches sync target(s) {', '.join(f'`{t}`' for t in python)}, whose Python "
                       "handlers run in your services, not in this command: nothing was published (publish it from "
                       "a service, or through `interlock serve`)")
    return ev


def receipt_lines(router: Router, receipt: Receipt) -> list[str]:
    """The receipt in words, one line per target."""
    if receipt.duplicate:
        return [f"{receipt.id}: published already (within the idempotency window): delivered to no one this time"]
    if receipt.unrouted:
        return [f"{receipt.id}: no route matched: kept in dead letter `{router.engine.unrouted_dead_letter}`"]
    lines = [f"{receipt.id}: published to {', '.join(sorted(receipt.targets))}"]
    for target in sorted(receipt.targets):
        if target in receipt.replies:
            lines.append(f"  {target}: replied {json.dumps(jsonable(receipt.replies[target]))}")
        elif target in receipt.errors:
            lines.append(f"  {target}: failed: {receipt.errors[target]}")
        else:
            lines.append(f"  {target}: stored for delivery")
    return lines
