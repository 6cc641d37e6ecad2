"""FastStream's side of bench/peers.py: its Redis broker on a Redis Stream, with a consumer
group (`XADD` per publish; `XREADGROUP` of up to 100 entries, then each one handled).

- `faststream`: one handler call per message, each acknowledged by an `XACK` of its own after
  its handler returned (the default ack policy, `REJECT_ON_ERROR`, on a group);
- `faststream-batch` (`--batch`): a batch subscriber, one call per `XREADGROUP` of up to 100
  messages, acknowledged by one `XACK` after the call.

Guarantees kept: acknowledged after the handler, on a consumer group, so an entry a dead worker
held stays pending (at-least-once like the others; claiming it back is left to the app).

Tuned in its favour: no per-message logging (`logger=None`), no dependency injection or
validation of the body (`apply_types=False`: the handler gets the decoded JSON); 100 entries
per read (`max_records`; unlimited by default); the block time of an idle read (its default
100 ms) returns as soon as an entry comes, so it does not delay one. The group is created when
the subscriber starts, from the stream's end (`$`), before anything is published.
One handler call at a time: `max_workers` 16 (`--max-workers`, calls at once, their XACKs
overlapping) was no faster on this machine. 64 in flight: 64 tasks each awaiting
`broker.publish` one at a time (the broker's pool opens a connection per concurrent command).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import side
from faststream.redis import RedisBroker, StreamSub

STREAM = "bench"


async def worker(args: argparse.Namespace) -> None:
    tally = side.Tally(args.events)
    broker = RedisBroker(args.url, logger=None, apply_types=False)
    stream = StreamSub(STREAM, group="g", consumer="c1", max_records=100, batch=args.batch)

    if args.batch:
        @broker.subscriber(stream=stream)
        async def handle_batch(bodies: list[dict[str, Any]]) -> None:
            for body in bodies:
                tally.handle(body["n"], body.get("t0"))
    else:
        @broker.subscriber(stream=stream, max_workers=args.max_workers)
        async def handle(body: dict[str, Any]) -> None:
            tally.handle(body["n"], body.get("t0"))

    async with broker:
        await broker.start()
        tally.ready(side.versions("faststream", "redis", "hiredis"))
        await side.forever()


async def publisher(args: argparse.Namespace) -> None:
    broker = RedisBroker(args.url, logger=None, apply_types=False)

    async def send(n: int, t0: float | None) -> None:
        await broker.publish({"n": n} if t0 is None else {"n": n, "t0": t0}, stream=STREAM)

    async with broker:
        await side.publish_async(args, send)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-workers", type=int, default=1, help="handler calls at once (not with --batch)")
    parser.add_argument("--batch", action="store_true", help="a batch subscriber (100 a call, one XACK)")


if __name__ == "__main__":
    arguments = side.arguments(options)
    asyncio.run(worker(arguments) if arguments.role == "worker" else publisher(arguments))
