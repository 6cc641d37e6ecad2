"""The floor of bench/peers.py: Redis Streams from redis-py (asyncio, hiredis), written by hand.

- worker: a consumer group read from the start of the stream; `XREADGROUP COUNT 100 BLOCK 1000`,
  the no-op handler on each entry, then one `XACK` of the batch's ids, sent in one pipeline
  with the next `XREADGROUP` (one round trip per batch; an entry is acknowledged only after its
  handler ran, so at-least-once as the others);
- publisher: `sequential` awaits one `XADD` at a time; `flight` and `paced` go through a
  coalescer: the `XADD`s asked for while a pipeline is out go together in the next one, on one
  connection (what interlock's shared round trips do, by hand). Each caller still waits for
  its own `XADD` to be answered.
"""

from __future__ import annotations

import argparse
import asyncio

import redis
import redis.asyncio as aioredis
import side

STREAM, GROUP = "bare", "g"


async def worker(args: argparse.Namespace) -> None:
    tally = side.Tally(args.events)
    client = aioredis.Redis.from_url(args.url)
    try:
        await client.xgroup_create(STREAM, GROUP, "0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise
    tally.ready(side.versions("redis", "hiredis"))
    acks: list[bytes] = []
    while True:
        pipe = client.pipeline(transaction=False)
        if acks:
            pipe.xack(STREAM, GROUP, *acks)
        pipe.xreadgroup(GROUP, "c", {STREAM: ">"}, count=100, block=1000)
        reply = (await pipe.execute())[-1]
        acks = []
        for _stream, rows in reply or ():
            for entry_id, fields in rows:
                t0 = fields.get(b"t0")
                tally.handle(int(fields[b"n"]), None if t0 is None else float(t0))
                acks.append(entry_id)


class Coalescer:
    """`await xadd(fields)`: the XADDs asked for while a pipeline is out go in the next one."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.waiting: list[tuple[dict[str, str], asyncio.Future[None]]] = []
        self.flushing: asyncio.Task[None] | None = None

    async def xadd(self, fields: dict[str, str]) -> None:
        done = asyncio.get_running_loop().create_future()
        self.waiting.append((fields, done))
        if self.flushing is None:
            self.flushing = asyncio.create_task(self.flush())
        await done

    async def flush(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                pipe = self.client.pipeline(transaction=False)
                for fields, _ in batch:
                    pipe.xadd(STREAM, fields)
                try:
                    await pipe.execute()
                except Exception as error:
                    for _, done in batch:
                        done.set_exception(error)
                else:
                    for _, done in batch:
                        done.set_result(None)
        finally:
            self.flushing = None


async def publisher(args: argparse.Namespace) -> None:
    client = aioredis.Redis.from_url(args.url)
    coalescer = Coalescer(client)

    async def send(n: int, t0: float | None) -> None:
        fields = {"n": str(n)} if t0 is None else {"n": str(n), "t0": repr(t0)}
        if args.mode == "sequential":
            await client.xadd(STREAM, fields)
        else:
            await coalescer.xadd(fields)

    await side.publish_async(args, send)
    await client.aclose()


if __name__ == "__main__":
    arguments = side.arguments()
    asyncio.run(worker(arguments) if arguments.role == "worker" else publisher(arguments))
