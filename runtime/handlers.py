"""The handlers of a router's targets, and calling one within its target's timeout."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import types
from collections.abc import Callable, Generator
from typing import Any

from .event import Event
from .outcomes import DeliveryError

Handler = Callable[[Event], Any]


class Handlers:
    """Per target, the function that takes its deliveries (`async def` or `def`)."""

    def __init__(self, targets: dict[str, dict[str, Any]]) -> None:
        self.targets = targets
        self.functions: dict[str, Handler] = {}
        self.coroutine_functions: dict[Handler, bool] = {}  # inspect's answer, remembered

    def register(self, target: str) -> Callable[[Handler], Handler]:
        if target not in self.targets:
            known = ", ".join(sorted(self.targets)) or "none"
            raise DeliveryError(f"no target `{target}` in this router (targets: {known})")

        def register(function: Handler) -> Handler:
            if target in self.functions:
                raise DeliveryError(f"target `{target}` already has a handler")
            self.functions[target] = function
            return function

        return register

    def __contains__(self, target: str) -> bool:
        return target in self.functions

    def pop(self, target: str) -> Handler | None:
        return self.functions.pop(target, None)

    async def call(self, target: str, event: Event) -> Any:
        """The handler's reply; its exception as it is, or TimeoutError after the target's timeout."""
        function = self.functions.get(target)
        if function is None:
            raise DeliveryError(f"no handler for target `{target}` in this process")
        timeout = self.targets[target]["timeout_ms"] / 1000
        coroutine_function = self.coroutine_functions.get(function)
        if coroutine_function is None:
            coroutine_function = self.coroutine_functions[function] = inspect.iscoroutinefunction(function)
        if not coroutine_function:
            async with asyncio.timeout(timeout):
                return await asyncio.to_thread(function, event)
        # The handler runs in this task, not a task of its own, but in a copy of its context
        # (as a task would: context variables it sets stay its own). Its first step runs now,
        # as `await` would run it; only if it then waits does the deadline, counted from
        # before that step, need a timer (a handler that never waits cannot be interrupted).
        deadline = asyncio.get_running_loop().time() + timeout
        context = contextvars.copy_context()
        coroutine = function(event)
        try:
            waiting_on = context.run(coroutine.send, None)
        except StopIteration as done:
            return done.value
        async with asyncio.timeout_at(deadline):
            return await _resume(coroutine, waiting_on, context)


@types.coroutine
def _resume(coroutine: Any, waiting_on: Any, context: contextvars.Context) -> Generator[Any, Any, Any]:
    """Go on running a coroutine that has already run its first step and is waiting on
    `waiting_on`, exactly as `await` would have, each step in `context`: what the task
    sends or throws in goes to the coroutine, what the coroutine waits on goes to the task."""
    while True:
        try:
            sent = yield waiting_on
        except GeneratorExit:
            coroutine.close()
            raise
        except BaseException as exc:
            try:
                waiting_on = context.run(coroutine.throw, exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                waiting_on = context.run(coroutine.send, sent)
            except StopIteration as done:
                return done.value


def describe(exc: BaseException) -> tuple[str, str]:
    """A handler's failure as (error kind, message): the kind is its class name."""
    if isinstance(exc, asyncio.TimeoutError):
        return "TimeoutError", "the attempt took longer than the target's timeout"
    return type(exc).__name__, str(exc)
