"""arq's side of bench/peers.py (in .venv-arq: arq 0.28 requires redis-py < 6).

arq keeps jobs in a sorted set scored by when they are due and each job's data in a key of its
own; an enqueue is `WATCH` + `EXISTS` + `MULTI`/`PSETEX`/`ZADD`/`EXEC`; the worker polls the
sorted set every `poll_delay`, claims each job with a `WATCH`ed in-progress key, runs it, and
removes it from the queue in a last transaction.

Guarantees kept: a job leaves the queue only after it ran (a dead worker's in-progress key
expires and the job runs again), so at-least-once like the others.

Tuned in its favour:
- `poll_delay` 2 ms (`--poll-ms`; default 500 ms): how long an idle worker sleeps between polls,
  so about the longest a new job waits in a quiet queue;
- `max_jobs` 64 (`--max-jobs`; default 10): jobs run at once, so that 64 claims and
  completions share the wait for Redis;
- `keep_result` 0: no result stored (nothing reads it), no result logging.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import side
from arq import Worker, create_pool
from arq.connections import RedisSettings
from arq.worker import func


async def worker(args: argparse.Namespace) -> None:
    tally = side.Tally(args.events)

    async def noop(ctx: dict[str, Any], n: int, t0: float | None = None) -> None:
        tally.handle(n, t0)

    async def started(ctx: dict[str, Any]) -> None:
        tally.ready(side.versions("arq", "redis", "hiredis"))

    runner = Worker(functions=[func(noop, name="noop")], redis_settings=RedisSettings.from_dsn(args.url),
                    poll_delay=args.poll_ms / 1000, max_jobs=args.max_jobs, keep_result=0, log_results=False,
                    handle_signals=False, on_startup=started)
    await runner.async_run()


async def publisher(args: argparse.Namespace) -> None:
    pool = await create_pool(RedisSettings.from_dsn(args.url))

    async def send(n: int, t0: float | None) -> None:
        await (pool.enqueue_job("noop", n) if t0 is None else pool.enqueue_job("noop", n, t0))

    await side.publish_async(args, send)
    await pool.aclose()


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--poll-ms", type=float, default=2.0, help="poll_delay")
    parser.add_argument("--max-jobs", type=int, default=64)


if __name__ == "__main__":
    arguments = side.arguments(options)
    asyncio.run(worker(arguments) if arguments.role == "worker" else publisher(arguments))
