"""Dramatiq's side of bench/peers.py: its Redis broker (a list per queue and a hash of message
bodies, every operation a Lua script: one `EVALSHA` per enqueue, per fetch of up to `prefetch`
messages, and per ack).

Guarantees kept: Dramatiq acknowledges a message after its actor returned (its default); a
message that a dead worker held goes back to the queue once its heartbeat times out. So
at-least-once like the others. Default middleware (retries, time limits, ...) kept.

Tuned in its favour:
- one worker thread (`--threads`): the no-op actor gains nothing from more, each is a hand-off;
- queue prefetch 256 (`--prefetch`; its default is 2 per thread): a fetch takes up to that many;
- worker timeout 5 ms (`--timeout-ms`; default 1000): an idle consumer backs off from 5 ms up to
  this before polling again, so this caps the wait a new message may have in a quiet queue;
- 64 in flight: 64 threads, each calling `send` one at a time (the broker's client pool is
  thread-safe; Dramatiq has no batched or pipelined enqueue: `group` sends one by one).
"""

from __future__ import annotations

import argparse
import threading

import dramatiq
import side
from dramatiq.brokers.redis import RedisBroker

QUEUE = "bench"


def declare(url: str, tally: side.Tally | None) -> dramatiq.Actor:
    broker = RedisBroker(url=url)
    dramatiq.set_broker(broker)

    def noop(n: int, t0: float | None = None) -> None:
        if tally is not None:
            tally.handle(n, t0)

    return dramatiq.actor(noop, actor_name="noop", queue_name=QUEUE, broker=broker)


def worker(args: argparse.Namespace) -> None:
    tally = side.Tally(args.events)
    actor = declare(args.url, tally)
    runner = dramatiq.Worker(actor.broker, queues={QUEUE}, worker_threads=args.threads,
                             worker_timeout=args.timeout_ms)
    runner.queue_prefetch = args.prefetch
    runner.start()
    tally.ready(side.versions("dramatiq", "redis", "hiredis"))
    threading.Event().wait()


def publisher(args: argparse.Namespace) -> None:
    actor = declare(args.url, None)

    def send(n: int, t0: float | None) -> None:
        if t0 is None:
            actor.send(n)
        else:
            actor.send(n, t0)

    side.publish_sync(args, send)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=1, help="worker threads")
    parser.add_argument("--prefetch", type=int, default=256, help="messages a fetch may take")
    parser.add_argument("--timeout-ms", type=int, default=5, help="worker timeout: the longest idle poll backoff")


if __name__ == "__main__":
    arguments = side.arguments(options)
    (worker if arguments.role == "worker" else publisher)(arguments)
