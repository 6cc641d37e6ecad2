"""Supervision of the router's background tasks: a task that fails is logged and started again;
a failure that trying again does not cure reaches the caller at the next `drain` or `publish`;
a transient store error does not."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

import pytest

import interlock
from interlock.runtime.outcomes import DeliveryError
from interlock.runtime.store import StoreError, StoreUnavailable

PROJECT = """
dead_letter dlq
target work { mode async, dead_letter dlq, retry { attempts 3 backoff fixed 5ms } }
route all { on job.* to work }
"""


def load() -> interlock.Router:
    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text(PROJECT)
    return interlock.load(str(folder / "p.route"))


def failing_once(router: interlock.Router, error: Exception) -> list[int]:
    """Make the acknowledgement task raise `error` on its first round; counts its rounds."""
    acker = router.engine.acker
    send = acker.send
    rounds: list[int] = []

    async def flaky() -> None:
        rounds.append(1)
        if len(rounds) == 1:
            acker.wake.set()  # what was queued is sent when it starts again
            raise error
        await send()

    acker.send = flaky  # type: ignore[method-assign]
    return rounds


def test_a_task_that_fails_is_started_again_and_its_failure_reaches_drain(caplog: pytest.LogCaptureFixture) -> None:
    router = load()
    handled: list[str] = []

    @router.handler("work")
    async def work(event: interlock.Event) -> None:
        handled.append(event.id)

    rounds = failing_once(router, RuntimeError("a bug in a background task"))

    async def main() -> None:
        async with router:
            await router.publish("job.run", {}, id="j1")
            with pytest.raises(DeliveryError, match=r"acknowledgements.*a bug in a background task"):
                await router.drain(5)
            await router.drain(5)  # reported once; delivery went on
            assert router.engine.healthy()
            await router.publish("job.run", {}, id="j2")
            await router.drain(5)
        assert not router.engine.healthy()

    with caplog.at_level(logging.WARNING, logger="interlock.runtime"):
        asyncio.run(main())
    assert handled == ["j1", "j2"]
    assert len(rounds) >= 2
    assert any(r.levelno == logging.ERROR and "acknowledgements failed" in r.getMessage() for r in caplog.records)


def test_a_transient_store_error_is_retried_and_not_reported() -> None:
    router = load()
    handled: list[str] = []

    @router.handler("work")
    async def work(event: interlock.Event) -> None:
        handled.append(event.id)

    failing_once(router, StoreUnavailable("cannot reach the store (a test's cut)"))

    async def main() -> None:
        async with router:
            await router.publish("job.run", {}, id="j1")
            await router.drain(5)  # no DeliveryError: the failure cured itself
            await router.publish("job.run", {}, id="j2")
            await router.drain(5)

    asyncio.run(main())
    assert handled == ["j1", "j2"]


def test_a_fault_also_reaches_the_next_publish_before_anything_is_stored() -> None:
    router = load()

    @router.handler("work")
    async def work(event: interlock.Event) -> None:
        pass

    failing_once(router, StoreError("WRONGTYPE a key of the wrong kind"))

    async def main() -> None:
        async with router:
            await router.publish("job.run", {}, id="j1")
            for _ in range(100):  # until the acknowledgement task has failed
                if router.engine.supervisor.fault is not None:
                    break
                await asyncio.sleep(0.01)
            with pytest.raises(DeliveryError, match="WRONGTYPE"):
                await router.publish("job.run", {}, id="j2")
            receipt = await router.publish("job.run", {}, id="j2")  # nothing was stored: not a duplicate
            assert not receipt.duplicate
            await router.drain(5)

    asyncio.run(main())
