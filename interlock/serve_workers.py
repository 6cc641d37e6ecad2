"""Worker processes: N children running one function, and the parent that watches them.

The children are started with `spawn` (a fresh interpreter each: nothing of the parent's
state, threads or event loop is inherited); their arguments are pickled (a listening socket
is passed as a file descriptor). The parent forwards SIGTERM and SIGINT to them as SIGTERM
and waits for them to finish. A child that ends while no stop was asked for (it could not
start, or it died) stops the others too: the exit code is then 1, and whatever supervises
the service (systemd, Kubernetes) starts it again.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

log = logging.getLogger("interlock.serve")


def die_with_parent(parent: int) -> None:
    """In a worker: be sent SIGTERM when the process that started it dies, even by SIGKILL
    (Linux's PR_SET_PDEATHSIG), so that no worker keeps the port after its command is gone
    and whatever supervises the command can start it again. Elsewhere, a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError) as exc:
        log.warning("cannot ask to end with the command (%s): a worker may outlive it", exc)
        return
    if os.getppid() != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


PR_SET_PDEATHSIG = 1


def run_workers(count: int, target: Callable[..., None], args: tuple[Any, ...], *, grace: float) -> int:
    """Run `target(parent_pid, *args)` in `count` processes until a signal or one of them ends; 0 when
    they were stopped by a signal and all ended well, else 1. Children still running `grace`
    seconds after being asked to stop are killed."""
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    context = multiprocessing.get_context("spawn")
    children: list[BaseProcess] = []
    for number in range(1, count + 1):
        process = context.Process(target=target, args=(os.getpid(), *args), name=f"interlock-worker-{number}")
        process.start()
        children.append(process)
    log.info("started %d workers (pids %s)", count, ", ".join(str(c.pid) for c in children))
    while not stopping.is_set():
        ended = [c for c in children if c.exitcode is not None]
        if ended:
            for child in ended:
                log.error("worker %d ended with exit code %s: stopping the others", child.pid, child.exitcode)
            break
        multiprocessing.connection.wait([c.sentinel for c in children], timeout=0.2)
    for child in children:
        if child.exitcode is None and child.pid is not None:
            os.kill(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.exitcode is None:
            log.error("worker %d did not stop within %.0f s: killed", child.pid, grace)
            child.kill()
            child.join()
    # A child stopped by SIGTERM before it set its handlers ends with -SIGTERM: that is a stop too.
    clean = stopping.is_set() and all(c.exitcode in (0, -signal.SIGTERM) for c in children)
    log.info("all workers stopped")
    return 0 if clean else 1
