"""Error responses of the HTTP ingest: RFC 9457 problem details (`application/problem+json`).

Every error the ingest answers is a `Problem`: raised where the error is found, turned into a
response in one place. Its body has `type` (a stable identifier per kind of problem, listed
in `TITLES`), `title`, `status` and `detail` (what was wrong, naming the header, attribute or
field), plus extension members where they help (`index`, `receipts` for a batch).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:interlock:problem:"

TITLES = {
    "invalid-event": "The request does not carry a valid event",
    "unauthorized": "A valid bearer token is required",
    "too-large": "The request is too large",
    "timeout": "The request did not arrive in time",
    "unsupported-media-type": "The content type is not one the ingest reads",
    "store-unavailable": "The event store or delivery cannot take events now",
    "not-ready": "Delivery is not running",
    "not-found": "No such resource",
    "method-not-allowed": "Method not allowed",
    "internal": "Internal error",
}


class Problem(Exception):
    """An error to answer with a problem-details response. `kind` is a key of `TITLES`;
    `extensions` become extra members of the body."""

    def __init__(self, status: int, kind: str, detail: str, *, headers: dict[str, str] | None = None,
                 **extensions: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    def body(self) -> dict[str, Any]:
        return {"type": TYPE_PREFIX + self.kind, "title": TITLES[self.kind], "status": self.status,
                "detail": self.detail, **self.extensions}

    def response(self) -> Response:
        # ASCII, escapes and all: a detail that quotes what a client sent (a lone surrogate in
        # a field name, say) can always be written.
        content = json.dumps(self.body(), ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        return Response(content, status_code=self.status, headers=self.headers, media_type=MEDIA_TYPE)
