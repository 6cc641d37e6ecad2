"""The router: a facade over matching (runtime/matching.py), explanations
(runtime/explain.py) and delivery (runtime/engine.py), for one compiled artifact.

`Router(artifact, store)` or `interlock.load(...)`: `match` and `explain` decide, nothing
runs; `handler`, `async with`, `publish`, `drain`, `dead_letters` and `redrive` deliver on
the store; `publish_sync` and `with router:` do the same for code that is not async.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable
from typing import Any

from .artifact import verify_artifact
from .engine import Engine
from .event import Event, EventError
from .explain import RouteExplanation, explain
from .gc_pause import paused_gc
from .handlers import H
from .matching import Matcher
from .memory_store import MemoryStore
from .outcomes import DeadLetter, Receipt
from .schema import SchemaError, SchemaProblem
from .schema import problems as schema_problems
from .store import EventStore


class Router:
    """A compiled router: the routing decision (`match`, `explain`) and delivery on an event store
    (`handler`, `async with`, `publish`, `drain`, `dead_letters`, `redrive`; `publish_sync`
    and `with router:` for code that is not async)."""

    def __init__(self, artifact: dict[str, Any], store: EventStore | None = None, **options: Any) -> None:
        with paused_gc():
            self.artifact = verify_artifact(artifact)
            self.matcher = Matcher(self.artifact)
        self.store: EventStore = store if store is not None else MemoryStore()
        self.targets: dict[str, dict[str, Any]] = self.artifact["targets"]
        self.match: Callable[[str, Any], frozenset[str]] = self.matcher.match  # the hot path, as it is
        self.deliveries = self.matcher.deliveries
        self._options = options
        self._engine: Engine | None = None
        self._thread: _LoopThread | None = None
        self._background: _LoopThread | None = None  # the sync facade's loop outside `with`, on a shared store

    def explain(self, event_type: str, data: Any) -> list[RouteExplanation]:
        """Every route and choose whose `on` takes the event type, with each predicate's verdict."""
        return explain(self.artifact["dispatch"]["routes"], event_type, data)

    def problems(self, event_type: str, data: Any) -> list[SchemaProblem]:
        """Why `publish` would refuse this event: every field that breaks its type's schema, or
        what makes it no event at all (a type that is not one, data that is not a JSON object:
        path ""). Empty when `publish` would take it. Nothing is stored."""
        try:
            self.validate(event_type, data)
        except SchemaError:
            return schema_problems(data, self.artifact["events"][event_type])
        except EventError as exc:
            return [SchemaProblem("", str(exc))]
        return []

    # ---- delivery ------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine(self.artifact, self.matcher.deliveries, self.store, **self._options)
        return self._engine

    def handler(self, target: str) -> Callable[[H], H]:
        """Register the handler of a target: `@router.handler("billing")` on an `async def` or a `def`."""
        return self.engine.handler(target)

    async def __aenter__(self) -> Router:
        await self.engine.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.engine.stop()

    def validate(self, event: Any, data: Any = None, *, id: str | None = None) -> Event:
        """The `Event` that `publish` would accept for these arguments, checked against its
        schema; raises EventError or SchemaError naming the problem. Nothing is stored."""
        return self.engine.validate(event, data, id=id)

    async def publish(self, event: Any, data: Any = None, *, id: str | None = None) -> Receipt:
        """Publish an event: `publish("order.created", {...})`, an `Event`, or a CloudEvents dict."""
        return await self.engine.publish(event, data, id=id)

    async def drain(self, timeout: float | None = None) -> None:
        """Return when every async delivery accepted so far has been acknowledged or dead-lettered."""
        await self.engine.drain(timeout)

    def dead_letters(self, name: str) -> list[DeadLetter]:
        """The entries of a dead letter: event, target, routes, each attempt's error and time."""
        return self._sync(self.engine.dead_letters(name))  # type: ignore[no-any-return]

    async def redrive(self, name: str, ids: list[str] | None = None) -> int:
        """Deliver a dead letter's entries (or those with `ids`) to their target again."""
        return await self.engine.redrive(name, ids)

    def __enter__(self) -> Router:
        """Delivery for code that is not async: an event loop in a thread of its own."""
        self._thread = _LoopThread()
        self._thread.run(self.__aenter__())
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._thread is not None:
            self._thread.run(self.__aexit__())
            self._thread.close()
            self._thread = None

    def publish_sync(self, event: Any, data: Any = None, *, id: str | None = None) -> Receipt:
        """`publish` for code that is not async: inside `with router:`, or on its own for sync targets."""
        return self._sync(self.publish(event, data, id=id))  # type: ignore[no-any-return]

    def _sync(self, coroutine: Any) -> Any:
        """Run a coroutine for code that is not async: on the loop of `with router:`; on a shared
        store, on a loop of the router's own that stays (its connections are kept, not opened
        for every call); else in a fresh loop."""
        if self._thread is not None:
            return self._thread.run(coroutine)
        if self.store.shared:
            if self._background is None:
                self._background = _LoopThread()
                weakref.finalize(self, self._background.close)  # its thread ends with the router
            return self._background.run(coroutine)
        return _run(self._closing(coroutine))

    async def _closing(self, coroutine: Any) -> Any:
        """Run `coroutine` in a loop of its own, then close what it opened there (HTTP
        targets' connections): the loop ends with it."""
        try:
            return await coroutine
        finally:
            if self._engine is not None:
                await self._engine.handlers.aclose()

    def drain_sync(self, timeout: float | None = None) -> None:
        if self._thread is None:
            raise RuntimeError("drain_sync needs delivery running: use it inside `with router:`")
        self._thread.run(self.drain(timeout))


class _LoopThread:
    """An event loop in a thread of its own, for `with router:` and `publish_sync`."""

    def __init__(self) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="interlock-delivery", daemon=True)
        self.thread.start()

    def run(self, coroutine: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        import threading

        if threading.current_thread() is not self.thread:  # (a finalizer may run on the thread itself)
            # What still runs there (a store's background reading of a cluster's slot map) is
            # cancelled and awaited first, not left pending in a loop that is gone.
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_cancel_the_rest(), self.loop).result(2)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join()
            self.loop.close()


async def _cancel_the_rest() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=1)


def _run(coroutine: Any) -> Any:
    """Run a coroutine from plain code: in a fresh loop, or, inside a running loop, in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    import concurrent.futures
    import contextvars

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # (the caller's context goes along: its span)
        return pool.submit(contextvars.copy_context().run, asyncio.run, coroutine).result()
