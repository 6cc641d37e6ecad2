"""The handlers of a router's targets, and calling one within its target's timeout."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
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
        self.executors: dict[str, concurrent.futures.ThreadPoolExecutor] = {}

    def _executor(self, target: str) -> concurrent.futures.ThreadPoolExecutor:
        executor = self.executors.get(target)
        if executor is None:
            workers = max(int(self.targets[target].get("concurrency") or 1), 1)
            executor = self.executors[target] = concurrent.futures.ThreadPoolExecutor(
                workers, thread_name_prefix=f"interlock-{target}")
        return executor

    def close(self) -> None:
        """Let the threads of `def` handlers go (one still running ends on its own)."""
        for executor in self.executors.values():
            executor.shutdown(wait=False)
        self.executors.clear()

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
            # In the target's own threads: a `def` handler that hangs past its timeout keeps its
            # thread, and must not take the threads of other targets with it.
            loop = asyncio.get_running_loop()
            call = functools.partial(contextvars.copy_context().run, function, event)
            async with asyncio.timeout(timeout):
                return await loop.run_in_executor(self._executor(target), call)
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


def cancelling() -> bool:
    """Whether the running task is being cancelled (rather than a handler raising CancelledError)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


#: The longest error message kept in an attempt's history (the rest is cut).
MESSAGE_LIMIT = 2000


def describe(exc: BaseException) -> tuple[str, str]:
    """A handler's failure as (error kind, message): the kind is its class name. The message
    is always text that can be stored: bounded, valid UTF-8, and there even when the
    exception's `__str__` fails."""
    if isinstance(exc, asyncio.TimeoutError):
        return "TimeoutError", "the attempt took longer than the target's timeout"
    try:
        message = str(exc)
    except Exception as inner:  # its __str__ is broken: say so rather than fail the delivery
        message = f"(the exception's message cannot be shown: {type(inner).__name__})"
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + f"... ({len(message) - MESSAGE_LIMIT} more characters)"
    return type(exc).__name__, message.encode("utf-8", "backslashreplace").decode("utf-8")
