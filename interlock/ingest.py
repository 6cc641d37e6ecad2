"""The HTTP ingest: an ASGI app (Starlette) that publishes the CloudEvents POSTed to it
through a `Router`.

    app = create_app(router, token=os.environ["INGEST_TOKEN"])   # serve it with any ASGI server

- `POST /events`: one event (structured or binary CloudEvent) or a batch; each is checked
  with `router.validate` before anything is published (a batch: all of them first), then
  published in order. 202 with the receipt(s); 400, 401, 413 (a body over `max_body_bytes`,
  or an event over the store's `max_event_bytes`), 415 for a request that cannot be taken;
  503 (`Retry-After`) when the store or delivery refuses. Reading the request is
  `interlock/ingest_request.py`'s work; errors are problem details (`interlock/problems.py`).
- `GET /healthz`: 200 while the process runs. `GET /readyz`: 200 while delivery runs with
  every background task alive, else 503. `GET /openapi.json`: the API (`interlock/openapi.py`).

With `lifespan_starts_router` (the default) the app's lifespan is `async with router:`:
delivery runs while the app runs. `interlock serve` starts the router itself instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from interlock.ingest_request import Incoming, check_media_type, decode, media_type, read_body
from interlock.openapi import openapi_document
from interlock.problems import Problem
from interlock.receipts import receipt_json
from interlock.runtime.event import Event, EventError, shown
from interlock.runtime.event_data import EventTooLarge
from interlock.runtime.outcomes import DeliveryError, Receipt
from interlock.runtime.predicates import instant
from interlock.runtime.router import Router
from interlock.runtime.schema import SchemaError
from interlock.runtime.store import StoreError

log = logging.getLogger("interlock.ingest")

RETRY_AFTER = {"Retry-After": "1"}
CHALLENGE = 'Bearer realm="interlock"'


def create_app(router: Router, *, token: str | None = None, max_body_bytes: int = 1_048_576, max_batch: int = 1000,
               lifespan_starts_router: bool = True) -> Starlette:
    """The ingest app over `router`. `token`: require `Authorization: Bearer TOKEN` on
    `POST /events`. `max_body_bytes`, `max_batch`: the largest body and batch taken (413 beyond)."""
    if token is not None and not token:
        raise ValueError("the bearer token must not be empty")
    if max_body_bytes < 1 or max_batch < 1:
        raise ValueError("max_body_bytes and max_batch must be at least 1")
    ingest = _Ingest(router, token, max_body_bytes, max_batch)
    routes = [
        Route("/events", ingest.post_events, methods=["POST"]),
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/readyz", ingest.readyz, methods=["GET"]),
        Route("/openapi.json", ingest.openapi, methods=["GET"]),
    ]
    # (no redirect of `/events/` to `/events`: Starlette would build its Location from the
    # request's Host header)
    app = Starlette(routes=routes, lifespan=_delivering(router) if lifespan_starts_router else None,
                    exception_handlers={HTTPException: _http_problem, Exception: _internal_problem})
    return _no_slash_redirects(app)


PROBE = "readyz"  # an idempotency key nothing writes: asking for it is a round trip to the store
PROBE_TIMEOUT = 2.0


def _no_slash_redirects(app: Starlette) -> Starlette:
    app.router.redirect_slashes = False
    return app


def check_event(router: Router, cloudevent: Any) -> Event:
    """The `Event` a CloudEvent JSON object stands for, checked as `publish` would check it
    (and its `time`, which `publish` takes as it is); EventError or SchemaError if it is not one."""
    if not isinstance(cloudevent, dict):
        raise EventError(f"a CloudEvent is a JSON object, not {type(cloudevent).__name__}")
    if "data_base64" in cloudevent:
        raise EventError("CloudEvent attribute `data_base64` is not taken: the data of an event is a JSON object")
    time = cloudevent.get("time")
    if time is not None and instant(time) is None:
        raise EventError(f"CloudEvent attribute `time` must be an RFC 3339 timestamp, not {shown(time)}")
    return router.validate(cloudevent)


class _Ingest:
    def __init__(self, router: Router, token: str | None, max_body_bytes: int, max_batch: int) -> None:
        self.router = router
        self.token = None if token is None else token.encode()
        self.max_body_bytes = max_body_bytes
        self.max_batch = max_batch
        self.document = openapi_document(token=token is not None, max_body_bytes=max_body_bytes, max_batch=max_batch)

    async def post_events(self, request: Request) -> Response:
        try:
            self._authorize(request)
            media = media_type(request.headers)
            check_media_type(media)
            body = await read_body(request, self.max_body_bytes)
            incoming = decode(media, request.headers, body, self.max_batch)
            events = self._check_all(incoming)
            if incoming.batch:
                return _Json({"receipts": await self._publish_batch(events)}, status_code=202)
            return _Json(receipt_json(await self._publish(events[0])), status_code=202)
        except Problem as problem:
            return problem.response()
        except ClientDisconnect:
            return Response(status_code=400)  # no one is there to read an answer
        except Exception:
            log.exception("POST /events failed")
            return _internal()

    def _authorize(self, request: Request) -> None:
        if self.token is None:
            return
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise Problem(401, "unauthorized", "send the bearer token: `Authorization: Bearer TOKEN`",
                          headers={"WWW-Authenticate": CHALLENGE})
        # (headers arrive decoded as latin-1: encoding them so gives back the bytes sent)
        if not hmac.compare_digest(credentials.encode("latin-1"), self.token):
            raise Problem(401, "unauthorized", "the bearer token is not the one configured",
                          headers={"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'})

    def _check_all(self, incoming: Incoming) -> list[Event]:
        """Every event checked before any is published: one bad event refuses the whole request."""
        events = []
        for index, cloudevent in enumerate(incoming.events):
            try:
                events.append(check_event(self.router, cloudevent))
            except (EventError, SchemaError) as exc:
                status, kind = _refused(exc)
                if incoming.batch:
                    raise Problem(status, kind, f"event [{index}]: {exc}", index=index) from None
                raise Problem(status, kind, str(exc)) from None
        return events

    async def _publish(self, event: Event) -> Receipt:
        try:
            return await self.router.publish(event)
        except (StoreError, DeliveryError) as exc:
            log.warning("refused event %s: %s: %s", event.id, type(exc).__name__, exc)
            raise Problem(503, "store-unavailable", f"{type(exc).__name__}: {exc}", headers=RETRY_AFTER) from None
        except (EventError, SchemaError) as exc:  # (checked already: only if publish checks more)
            raise Problem(*_refused(exc), str(exc)) from None

    async def _publish_batch(self, events: list[Event]) -> list[dict[str, Any]]:
        """Publish in order; a refusal answers 503 with the receipts of the events published
        before it. Posting the batch again is safe: those are then duplicates."""
        receipts: list[dict[str, Any]] = []
        for index, event in enumerate(events):
            try:
                receipts.append(receipt_json(await self._publish(event)))
            except Problem as problem:
                problem.detail = f"event [{index}]: {problem.detail}"
                problem.extensions.update(index=index, receipts=receipts)
                raise
        return receipts

    async def readyz(self, request: Request) -> Response:
        """Ready: delivery runs with every background task alive, and the store answers (within
        PROBE_TIMEOUT): while it does not, every publish would be a 503."""
        engine = self.router.engine
        if not engine.healthy():
            detail = ("a background task of delivery has failed (the log says which)" if engine.running
                      else "delivery is not running")
            return Problem(503, "not-ready", detail).response()
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await self.router.store.remembered(PROBE)
        except (StoreError, TimeoutError) as exc:
            return Problem(503, "not-ready", f"the store does not answer: {type(exc).__name__}: {exc}").response()
        return JSONResponse({"status": "ready"})

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(self.document)


def _refused(exc: EventError | SchemaError) -> tuple[int, str]:
    """The status and problem of an event refused: 413 for one larger than the store takes."""
    return (413, "too-large") if isinstance(exc, EventTooLarge) else (400, "invalid-event")


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _delivering(router: Router) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """The lifespan that delivers while the app runs."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with router:
            yield

    return lifespan


class _Json(JSONResponse):
    """JSON in ASCII (escapes and all): a sync target's reply may hold text that is not
    Unicode (a lone surrogate), and the event is published by the time it is written."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _internal() -> Response:
    return Problem(500, "internal", "an unexpected error; the server's log has the details").response()


async def _http_problem(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no such path, a method the path does not take) as problems."""
    assert isinstance(exc, HTTPException)
    kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "internal")
    return Problem(exc.status_code, kind, exc.detail, headers=dict(exc.headers or {})).response()


async def _internal_problem(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _internal()
