"""Celery's side of bench/peers.py: a Redis broker (kombu's Redis transport: a list per queue,
`LPUSH` to publish, `BRPOP` to consume, unacknowledged messages kept in a hash until acked).

Guarantees kept: `acks_late` (a task is acknowledged after it ran; one that a dead worker held
is restored to the queue after the visibility timeout), so at-least-once like the others.

Tuned in its favour, none of it weakening that:
- the `solo` pool: tasks run in the worker's one process, with no hand-off to a child process
  or thread (the prefork pool would be more processes than the one worker each system gets;
  `threads` only adds a hand-off for a no-op task);
- prefetch multiplier 64 (`--prefetch`): with acks late, how many unacknowledged tasks the
  worker may hold;
- no result backend (`ignore_result`), no events, gossip, mingle or heartbeat;
- publishing to the queue's anonymous direct exchange: one `LPUSH` per task, no routing-table
  lookup (what Celery does for a plain `queue=`);
- 64 in flight: kombu's `Producer.batch()`: the 64 `send_task`s of a chunk go in one pipeline,
  flushed before the next chunk starts (64 publishes in flight sharing round trips, as
  interlock's do). `--flight threads` is the other way: 64 threads, each calling `send_task` one
  at a time on a producer pool of 64 (a threaded web server handling 64 requests); on this
  machine it published about 1,200 events/s against the batches' 3,200 (the GIL, a producer
  per thread), and either way the worker, about 900-1,300 tasks/s, is the bottleneck.
- Tried and no faster: the `threads` pool (`--pool threads --concurrency N`), prefetch 1, 4, 256.
"""

from __future__ import annotations

import argparse
from typing import Any

import side
from celery import Celery
from celery.signals import worker_ready

QUEUE = "bench"


def make_app(url: str, prefetch: int) -> Celery:
    app = Celery("bench", broker=url)
    app.conf.update(
        task_acks_late=True,
        task_ignore_result=True,
        task_default_queue=QUEUE,
        worker_prefetch_multiplier=prefetch,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        broker_connection_retry_on_startup=True,
        broker_pool_limit=side.FLIGHT,
    )
    return app


def worker(args: argparse.Namespace) -> None:
    tally = side.Tally(args.events)
    app = make_app(args.url, args.prefetch)

    @app.task(name="noop", acks_late=True, ignore_result=True)
    def noop(n: int, t0: float | None = None) -> None:
        tally.handle(n, t0)

    def ready(**_: Any) -> None:
        tally.ready(side.versions("celery", "kombu", "redis", "hiredis"))

    worker_ready.connect(ready, weak=False)
    app.worker_main(["worker", f"--pool={args.pool}", f"--concurrency={args.concurrency}", "--loglevel=WARNING",
                     f"--queues={QUEUE}", "--without-gossip", "--without-mingle", "--without-heartbeat"])


def publisher(args: argparse.Namespace) -> None:
    app = make_app(args.url, args.prefetch)

    def send(n: int, t0: float | None, producer: Any = None) -> None:
        app.send_task("noop", args=(n,) if t0 is None else (n, t0), queue=QUEUE, producer=producer)

    def batched(numbers: range, _send: side.SendSync) -> None:
        for first in range(numbers.start, numbers.stop, side.FLIGHT):
            with app.producer_or_acquire() as producer, producer.batch(max_size=side.FLIGHT):
                for n in range(first, min(first + side.FLIGHT, numbers.stop)):
                    send(n, None, producer)

    side.publish_sync(args, send, batched if args.flight == "batch" else None)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefetch", type=int, default=64, help="worker_prefetch_multiplier")
    parser.add_argument("--pool", default="solo", help="solo (tasks in the worker's thread) or threads")
    parser.add_argument("--concurrency", type=int, default=1, help="threads of the threads pool")
    parser.add_argument("--flight", choices=["threads", "batch"], default="batch",
                        help="64 in flight: 64 threads, or kombu's pipelined Producer.batch() of 64")


if __name__ == "__main__":
    arguments = side.arguments(options)
    (worker if arguments.role == "worker" else publisher)(arguments)
