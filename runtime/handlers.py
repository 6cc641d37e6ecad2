"""The handlers of a router's targets, and calling one within its target's timeout."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import os
import threading
import types
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from .event import Event
from .outcomes import DeliveryError, HttpError

if TYPE_CHECKING:
    from .http_target import HttpTarget

Handler = Callable[[Event], Any]
# A handler as its module declares it: registering one gives it back with its own type (its
# parameters and its reply), so that a decorated function is still checked where it is called.
H = TypeVar("H", bound=Handler)


class Handlers:
    """Per target, the function that takes its deliveries (`async def` or `def`); an HTTP
    target (`http` in the artifact) is delivered over HTTP by the router itself, unless the
    router was made with `deliver_http=False` (its HTTP targets then take handlers too)."""

    def __init__(self, targets: dict[str, dict[str, Any]], deliver_http: bool = True) -> None:
        self.targets = targets
        self.http_names = frozenset(n for n, t in targets.items() if t.get("http")) if deliver_http else frozenset()
        self.http: dict[str, HttpTarget] = {}
        self.functions: dict[str, Handler] = {}
        self.coroutine_functions: dict[Handler, bool] = {}  # inspect's answer, remembered
        self.executors: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
        self.overran: dict[str, int] = {}  # per target, threads held by `def` handlers past their timeout
        self._overran_lock = threading.Lock()

    def _executor(self, target: str) -> concurrent.futures.ThreadPoolExecutor:
        executor = self.executors.get(target)
        if executor is None:
            # Twice its concurrency: as many threads again for handlers that overran their
            # timeout and still hold theirs (a thread cannot be stopped), so that new calls
            # do not wait behind them (threads are made only when needed).
            workers = 2 * max(int(self.targets[target].get("concurrency") or 1), 1)
            executor = self.executors[target] = concurrent.futures.ThreadPoolExecutor(
                workers, thread_name_prefix=f"interlock-{target}")
        return executor

    def _overran(self, target: str, call: concurrent.futures.Future[Any]) -> None:
        """A `def` handler ran past its timeout: its thread is held until it returns."""
        def ended(_call: concurrent.futures.Future[Any]) -> None:
            with self._overran_lock:
                self.overran[target] -= 1

        with self._overran_lock:
            self.overran[target] = self.overran.get(target, 0) + 1
        call.add_done_callback(ended)  # (at once, if it has returned meanwhile)

    def close(self) -> None:
        """Let the threads of `def` handlers go (one still running ends on its own)."""
        for executor in self.executors.values():
            executor.shutdown(wait=False)
        self.executors.clear()

    def prepare(self, names: Iterable[str] | None = None) -> None:
        """Make the HTTP targets among `names` (all of them by default) ready to deliver:
        their `env(...)` values read now. DeliveryError names a variable that is not set."""
        for name in self.http_names if names is None else names:
            if name in self.http_names and name not in self.http:
                from .http_target import HttpTarget

                self.http[name] = HttpTarget(name, self.targets[name], os.environ)

    async def aclose(self) -> None:
        """Close the HTTP targets' connections (they are made again when needed)."""
        for target in self.http.values():
            await target.aclose()

    def register(self, target: str) -> Callable[[H], H]:
        if target not in self.targets:
            known = ", ".join(sorted(self.targets)) or "none"
            raise DeliveryError(f"no target `{target}` in this router (targets: {known})")
        if target in self.http_names:
            raise DeliveryError(f"target `{target}` is an HTTP target: the router delivers it over HTTP itself "
                                "(to call Python for it instead, as a test may, make the router with "
                                "deliver_http=False)")

        def register(function: H) -> H:
            if target in self.functions:
                raise DeliveryError(f"target `{target}` already has a handler")
            self.functions[target] = function
            return function

        return register

    def __contains__(self, target: str) -> bool:
        return target in self.functions or target in self.http_names

    def pop(self, target: str) -> Handler | None:
        return self.functions.pop(target, None)

    async def call(self, target: str, event: Event) -> Any:
        """The handler's reply; its exception as it is, or TimeoutError after the target's timeout.
        An HTTP target's reply, or its HttpError (it keeps to the timeout itself)."""
        if target in self.http_names:
            http = self.http.get(target)
            if http is None:
                self.prepare((target,))
                http = self.http[target]
            return await http(event)
        function = self.functions.get(target)
        if function is None:
            raise DeliveryError(f"no handler for target `{target}` in this process")
        timeout = self.targets[target]["timeout_ms"] / 1000
        coroutine_function = self.coroutine_functions.get(function)
        if coroutine_function is None:
            coroutine_function = self.coroutine_functions[function] = inspect.iscoroutinefunction(function)
        if not coroutine_function:
            # In the target's own threads: a `def` handler that hangs past its timeout keeps its
            # thread, and must not take the threads of other targets with it. Its timeout starts
            # when it starts: waiting for a thread is not its time (though that wait is bounded
            # too, when every thread is held by handlers running past their timeouts).
            loop = asyncio.get_running_loop()
            started = loop.create_future()
            context = contextvars.copy_context()

            def run() -> Any:
                loop.call_soon_threadsafe(_done, started)
                return context.run(function, event)

            executor = self._executor(target)
            call = executor.submit(run)
            running = asyncio.wrap_future(call)
            # Waiting for a thread is bounded only while handlers that overran hold some: else
            # every thread is busy with a call within its time, and one comes free.
            overran = self.overran.get(target, 0)
            try:
                async with asyncio.timeout(timeout if overran else None):
                    await asyncio.wait({started, running}, return_when=asyncio.FIRST_COMPLETED)
            except (asyncio.CancelledError, TimeoutError) as exc:
                running.cancel()  # (a call not yet started is dropped)
                if isinstance(exc, TimeoutError):
                    raise AttemptTimeout(timeout, f"no thread of the target came free within its timeout: "
                                         f"{overran} of its {executor._max_workers} are held by handlers running "
                                         "past their timeout") from None
                raise
            scope = asyncio.timeout(timeout)
            try:
                async with scope:
                    return await running
            except TimeoutError:
                if scope.expired():
                    self._overran(target, call)
                    raise AttemptTimeout(timeout) from None
                raise
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
        scope = asyncio.timeout_at(deadline)
        try:
            async with scope:
                return await _resume(coroutine, waiting_on, context)
        except TimeoutError:
            if scope.expired():  # the deadline, not a TimeoutError of the handler's own
                raise AttemptTimeout(timeout) from None
            raise


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


def _done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AttemptTimeout(TimeoutError):
    """An attempt that took longer than its target's timeout (its kind: `TimeoutError`)."""

    def __init__(self, timeout: float, why: str | None = None) -> None:
        super().__init__(why or f"the attempt took longer than the target's timeout ({timeout:g} s)")


def cancelling() -> bool:
    """Whether the running task is being cancelled (rather than a handler raising CancelledError)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


#: The longest error message kept in an attempt's history (the rest is cut).
MESSAGE_LIMIT = 2000


@attrs.frozen
class Failure:
    """A failed attempt: its error kinds (the most specific first), a message that can be
    stored, and for an HTTP target the response status and the wait it asked for."""

    kinds: tuple[str, ...]
    message: str
    status: int | None = None
    retry_after_ms: int = 0

    @property
    def kind(self) -> str:
        return self.kinds[0]


def failure(exc: BaseException) -> Failure:
    """A handler's exception (its kind: the class name) or an HTTP target's `HttpError` (its kinds)."""
    kind, message = describe(exc)
    if isinstance(exc, HttpError):
        return Failure(exc.kinds, message, exc.status, exc.retry_after_ms or 0)
    return Failure((kind,), message)


def describe(exc: BaseException) -> tuple[str, str]:
    """A handler's failure as (error kind, message): the kind is its class name (an HTTP
    target's: its most specific kind). The message is always text that can be stored:
    bounded, valid UTF-8, and there even when the exception's `__str__` fails."""
    if isinstance(exc, AttemptTimeout):
        return "TimeoutError", str(exc)
    try:
        message = str(exc)
    except Exception as inner:  # its __str__ is broken: say so rather than fail the delivery
        message = f"(the exception's message cannot be shown: {type(inner).__name__})"
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + f"... ({len(message) - MESSAGE_LIMIT} more characters)"
    kind = exc.kinds[0] if isinstance(exc, HttpError) else type(exc).__name__
    return kind, message.encode("utf-8", "backslashreplace").decode("utf-8")
