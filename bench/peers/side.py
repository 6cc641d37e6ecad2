"""What every side of bench/peers.py shares: its command line, its channel to peers.py, the
worker's tally of handled events and the three ways of publishing.

Each system's module (`interlock_side.py`, `celery_side.py`, ...) runs as a process of its own,
with the Python of that system's virtualenv, in one of two roles:

    python bench/peers/celery_side.py worker  --url redis://127.0.0.1:PORT/DB --events N --mode MODE
    python bench/peers/celery_side.py publish --url redis://127.0.0.1:PORT/DB --events N --mode MODE [--rate R]

This module uses only the standard library, so that every virtualenv can import it.

The channel: JSON lines on the process's standard output, which only `emit` writes to (the
descriptor is duplicated at import, and standard output then goes to standard error, where
the libraries' banners and logs belong). Standard input carries peers.py's requests; when it
closes (peers.py is done with the process, or has died), the process exits at once.

- A worker emits `{"ready": true, "versions": {...}}` once it consumes, then counts each call of
  its no-op handler in a `Tally`. On the request `finish STALL TIMEOUT` it waits until every
  event was handled, no new one came for STALL seconds, or TIMEOUT passed, and emits its count:
  distinct event numbers handled, calls (repeats included), whether it stopped waiting for lack
  of progress (`stalled`), when the last new one was handled
  (`time.monotonic()`, one clock for every process of the machine) and, for paced events, each
  event's latency (the time from its publish call starting, carried in the event as `t0`).
- A publisher publishes one warm-up event (number -1, which the tally ignores: connections are
  open and lazy imports done before the clock starts), then `--events` events numbered from 0,
  and emits `{"start", "end", "errors", "late_p99"}`: the clock when the first publish started
  and the last returned, the publishes that raised (counted, not retried) and how late the
  pacer was.

Modes: `sequential` (each publish awaited before the next), `flight` (FLIGHT publishes in
flight at once), `paced` (`--rate` events/s, each carrying `t0`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import Any

FLIGHT = 64  # publishes in flight at once in the `flight` mode

_channel = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # what anything else writes to standard output goes to standard error
_lock = threading.Lock()
log = logging.getLogger("side")

SendSync = Callable[[int, float | None], object]  # publishes event n (carrying t0 when paced)
SendAsync = Callable[[int, float | None], Awaitable[object]]


def emit(message: dict[str, Any]) -> None:
    with _lock:
        _channel.write(json.dumps(message) + "\n")
        _channel.flush()


def arguments(extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["worker", "publish"])
    parser.add_argument("--url", required=True, help="redis://HOST:PORT/DB")
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--mode", choices=["sequential", "flight", "paced"], required=True)
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s, paced mode")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {args.role} %(name)s %(levelname)s %(message)s")
    return args


def versions(*names: str) -> dict[str, str]:
    """The installed versions of these distributions (and the Python running them)."""
    found = {"python": sys.version.split()[0]}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _exit_when_stdin_closes(on_line: Callable[[str], None] | None = None) -> None:
    def watch() -> None:
        for line in sys.stdin:
            if on_line is not None:
                on_line(line)
        os._exit(0)  # peers.py closed our input: it is done with us, or gone

    threading.Thread(target=watch, name="stdin", daemon=True).start()


class Tally:
    """The worker's count: `handle(n, t0)` is the whole no-op handler of every system."""

    def __init__(self, events: int) -> None:
        self.events = events
        self.seen = bytearray(events)
        self.distinct = 0
        self.calls = 0
        self.last = 0.0
        self.latencies: list[float] = []
        self.complete = threading.Event()
        self.lock = threading.Lock()  # Dramatiq's and Celery's handlers may run on threads

    def handle(self, n: int, t0: float | None = None) -> None:
        now = time.monotonic()
        if n < 0:
            return  # the publisher's warm-up event
        with self.lock:
            self.calls += 1
            if t0 is not None:
                self.latencies.append(now - t0)
            if not self.seen[n]:
                self.seen[n] = 1
                self.distinct += 1
                self.last = now
                if self.distinct == self.events:
                    self.complete.set()

    def ready(self, versions: dict[str, str]) -> None:
        """Tell peers.py the worker consumes, and serve its `finish` request from now on."""
        _exit_when_stdin_closes(self._request)
        emit({"ready": True, "versions": versions})

    def _request(self, line: str) -> None:
        words = line.split()
        if words and words[0] == "finish":
            threading.Thread(target=self._finish, args=(float(words[1]), float(words[2])), daemon=True).start()

    def _finish(self, stall: float, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen, since, stalled = -1, time.monotonic(), False
        while not self.complete.wait(0.2):
            now = time.monotonic()
            if self.distinct != seen:
                seen, since = self.distinct, now
            stalled = now - since > stall
            if stalled or now > deadline:
                break
        with self.lock:
            emit({"distinct": self.distinct, "calls": self.calls, "last": self.last, "stalled": stalled,
                  "complete": self.complete.is_set(), "latencies": self.latencies})


class _Outcome:
    def __init__(self) -> None:
        self.errors = 0
        self.first_error = ""
        self.late: list[float] = []
        self.start = self.end = 0.0

    def failed(self, error: BaseException) -> None:
        if not self.errors:
            self.first_error = f"{type(error).__name__}: {error}"
            log.exception("publish failed (the first; the others are counted)")
        self.errors += 1

    def report(self) -> None:
        late = sorted(self.late)
        emit({"start": self.start, "end": self.end, "errors": self.errors, "first_error": self.first_error,
              "late_p99": late[min(len(late) - 1, round(0.99 * len(late)) - 1)] if late else 0.0})


def publish_sync(args: argparse.Namespace, send: SendSync,
                 flight: Callable[[range, SendSync], None] | None = None) -> None:
    """Publish with a blocking client. The `flight` mode runs `flight(numbers, send)` when given
    (a library's own batching), else FLIGHT threads, each publishing its share one at a time."""
    _exit_when_stdin_closes()
    outcome = _Outcome()

    def guarded(n: int, t0: float | None = None) -> None:
        try:
            send(n, t0)
        except Exception as error:  # a bench counts it and goes on
            outcome.failed(error)

    send(-1, None)
    outcome.start = time.monotonic()
    if args.mode == "sequential":
        for n in range(args.events):
            guarded(n)
    elif args.mode == "flight" and flight is not None:
        flight(range(args.events), send)
    elif args.mode == "flight":
        def share(first: int) -> None:
            for n in range(first, args.events, FLIGHT):
                guarded(n)

        with ThreadPoolExecutor(FLIGHT) as pool:
            for future in [pool.submit(share, first) for first in range(FLIGHT)]:
                future.result()
    else:  # paced: the pacer publishes each event when it is due, in its own thread
        for n in range(args.events):
            due = outcome.start + n / args.rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            t0 = time.monotonic()
            outcome.late.append(max(0.0, t0 - due))
            guarded(n, t0)
    outcome.end = time.monotonic()
    outcome.report()


async def publish_async(args: argparse.Namespace, send: SendAsync) -> None:
    """Publish with an asyncio client: `flight` is FLIGHT tasks each publishing its share one at
    a time; `paced` starts a task per event when it is due (as bench/redis_latency.py does)."""
    _exit_when_stdin_closes()
    outcome = _Outcome()

    async def guarded(n: int, paced: bool = False) -> None:
        try:
            await send(n, time.monotonic() if paced else None)
        except Exception as error:  # a bench counts it and goes on
            outcome.failed(error)

    await send(-1, None)
    outcome.start = time.monotonic()
    if args.mode == "sequential":
        for n in range(args.events):
            await guarded(n)
    elif args.mode == "flight":
        async def share(first: int) -> None:
            for n in range(first, args.events, FLIGHT):
                await guarded(n)

        await asyncio.gather(*(share(first) for first in range(FLIGHT)))
    else:
        tasks: list[asyncio.Task[None]] = []
        sent = 0
        while sent < args.events:
            now = time.monotonic()
            due = min(args.events, int((now - outcome.start) * args.rate) + 1)
            if due > sent:
                outcome.late.extend(max(0.0, now - (outcome.start + n / args.rate)) for n in range(sent, due))
                tasks.extend(asyncio.create_task(guarded(n, paced=True)) for n in range(sent, due))
                sent = due
            else:
                await asyncio.sleep(outcome.start + sent / args.rate - now)
        await asyncio.gather(*tasks)
    outcome.end = time.monotonic()
    outcome.report()


async def forever() -> None:
    """A worker's main coroutine waits here: peers.py closes its input, and it exits."""
    await asyncio.Event().wait()
