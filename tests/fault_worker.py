"""A worker process for tests/test_faults.py: delivers every target of a project from a shared Redis.

Usage: python fault_worker.py URL PROJECT OUTPUT. It registers one handler for every target
of the project, loaded with the default settings (nothing but the store given), and each
handler appends a line `TARGET<TAB>EVENT_ID<TAB>ATTEMPT` to OUTPUT when it succeeds (a file,
not Redis: the record must not depend on what it checks). It writes `ready` on stdout once
delivery has started, and runs until it is terminated (SIGTERM stops delivery cleanly).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import interlock

log = logging.getLogger("faults.worker")


async def main(url: str, project: str, output: str) -> None:
    router = interlock.load(project, store=url)
    with open(output, "a", buffering=1) as record:  # line-buffered: each line lands as it is written

        def handler(target: str) -> interlock.runtime.delivery.Handler:
            async def handle(event: interlock.Event) -> None:
                record.write(f"{target}\t{event.id}\t{event.attempt}\n")

            return handle

        for target in router.targets:
            router.handler(target)(handler(target))
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with router:
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            await stop.wait()
        await router.store.close()
    log.info("worker stopped")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
