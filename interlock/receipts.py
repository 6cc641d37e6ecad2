"""A publish's receipt as JSON: what the ingest answers and `interlock publish --format json` prints."""

from __future__ import annotations

import json
from typing import Any

from interlock.runtime.outcomes import Receipt


def receipt_json(receipt: Receipt) -> dict[str, Any]:
    """A receipt as the ingest answers it; a sync target's reply that is not JSON becomes its `str`."""
    return {"id": receipt.id, "targets": sorted(receipt.targets), "unrouted": receipt.unrouted,
            "duplicate": receipt.duplicate, "replies": {t: jsonable(v) for t, v in sorted(receipt.replies.items())},
            "errors": dict(sorted(receipt.errors.items())),
            "failures": {t: {"attempt": a.attempt, "kind": a.kind, "message": a.message, "status": a.status}
                         for t, a in sorted(receipt.failures.items())}}


def jsonable(value: Any) -> Any:
    """A sync target's reply as the receipt shows it: as it is when it is JSON, else its text."""
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        pass
    except RecursionError:
        return f"(a {type(value).__name__} nested too deep to show)"
    try:
        return str(value)
    except (Exception, RecursionError):
        return f"(a {type(value).__name__} that cannot be shown)"
