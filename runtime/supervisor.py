"""The supervisor of a router's long-lived tasks: started together, stopped together, none
left behind; one that fails is logged and started again with backoff, and a failure that
trying again will not cure reaches the user.

A failure is *transient* when it is a retryable StoreError (Redis unreachable, loading, out
of memory, a consumer group lost): logged as a warning, the task starts again after a
backoff (50 ms doubling to 1 s). Anything else (a bug, a key of the wrong type) is logged as
an error with its traceback, the task starts again all the same (backoff up to 5 s), and
the failure is kept for `raise_fault`, which the next `publish` or `drain` calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .outcomes import DeliveryError
from .store import StoreError

log = logging.getLogger(__name__)

#: A task that ran this long without failing starts its backoff over.
HEALTHY_AFTER_S = 30.0


def transient(exc: BaseException) -> bool:
    return isinstance(exc, StoreError) and exc.retryable


class Supervisor:
    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.failures: dict[str, int] = {}  # per task, failures since it last ran well
        self.fault: BaseException | None = None
        self.fault_task = ""

    def start(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        """Run `body()` as the task `name` until stopped; a return ends it for good."""
        if name in self.tasks and not self.tasks[name].done():
            raise RuntimeError(f"task {name} is already running")
        self.tasks[name] = asyncio.create_task(self._run(name, body), name=f"interlock:{name}")

    async def _run(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await body()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if loop.time() - started > HEALTHY_AFTER_S:
                    self.failures[name] = 0
                failures = self.failures[name] = self.failures.get(name, 0) + 1
                # At most a second while the store is away: delivery resumes soon after it is back.
                wait = min(0.05 * 2 ** (failures - 1), 1.0 if transient(exc) else 5.0)
                if transient(exc):
                    log.warning("%s: %s; starting again in %.2f s", name, exc, wait,
                                extra={"task": name, "failures": failures})
                else:
                    log.error("%s failed; starting again in %.2f s", name, wait, exc_info=exc,
                              extra={"task": name, "failures": failures})
                    self.fault, self.fault_task = exc, name
                await asyncio.sleep(wait)

    def alive(self) -> bool:
        """Whether every task is running (none has ended, failed for good or been cancelled)."""
        return bool(self.tasks) and all(not task.done() for task in self.tasks.values())

    def raise_fault(self) -> None:
        """Raise, once, the last failure of a task that trying again would not cure."""
        fault, self.fault = self.fault, None
        if fault is not None:
            raise DeliveryError(f"background task `{self.fault_task}` failed: {type(fault).__name__}: {fault} "
                                "(it was started again; see the log of interlock.runtime)") from fault

    async def stop(self) -> None:
        """Cancel every task and wait for each to end (cancelling again one that swallowed it)."""
        tasks = list(self.tasks.values())
        while True:
            alive = [task for task in tasks if not task.done()]
            if not alive:
                break
            for task in alive:
                task.cancel()
            await asyncio.wait(alive, timeout=1.0)
        self.tasks.clear()
