"""interlock's side of bench/peers.py, run with the Python of the checkout being measured.

The project: one async target `sink` with a retry policy and a dead letter, every `bench.*`
event routed to it. The worker registers the no-op handler on `sink` and runs the router; the
publisher registers no handler (so it delivers nothing) and only publishes, on the same Redis
database. Each `publish` returns once the event is stored; the worker acknowledges a delivery
after its handler returns. Nothing is tuned: the target has the language's defaults
(concurrency 16).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import side

import interlock

PROJECT = """
dead_letter dlq
retry quick { attempts 3, backoff exponential initial 100ms factor 2 max 5s }
target sink { mode async, retry quick, dead_letter dlq }
route all { on bench.* to sink }
"""


def project_file(targets: int = 1) -> str:
    """The project; with `targets` > 1 (bench/cluster.py), that many sinks, `bench.N` routed
    to `sinkK` for K = N mod targets: streams whose hash slots spread over a cluster."""
    path = Path(tempfile.mkdtemp(prefix="interlock-peers-")) / "bench.route"
    if targets == 1:
        path.write_text(PROJECT)
    else:
        sinks = "".join(f"target sink{k} {{ mode async, retry quick, dead_letter dlq }}\n"
                        f"route r{k} {{ on bench.t{k} to sink{k} }}\n" for k in range(targets))
        path.write_text(PROJECT.split("target sink")[0] + sinks)
    return str(path)


async def worker(args: argparse.Namespace) -> None:
    tally = side.Tally(args.events)
    router = interlock.load(project_file(args.targets), store=args.url)

    async def sink(event: interlock.Event) -> None:
        tally.handle(event.data["n"], event.data.get("t0"))

    for target in ["sink"] if args.targets == 1 else [f"sink{k}" for k in range(args.targets)]:
        router.handler(target)(sink)

    async with router:
        tally.ready(side.versions("interlock", "redis", "hiredis") | {"module": interlock.__file__})
        await side.forever()


async def publisher(args: argparse.Namespace) -> None:
    router = interlock.load(project_file(args.targets), store=args.url)
    targets = args.targets

    async def send(n: int, t0: float | None) -> None:
        kind = "bench.run" if targets == 1 else f"bench.t{n % targets}"
        await router.publish(kind, {"n": n} if t0 is None else {"n": n, "t0": t0})

    async with router:
        await side.publish_async(args, send)


if __name__ == "__main__":
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--uvloop", action="store_true", help="run on uvloop (interlock[fast]) instead of "
                            "asyncio's loop")
        parser.add_argument("--targets", type=int, default=1, help="sinks the events are spread over")

    arguments = side.arguments(options)
    main = worker(arguments) if arguments.role == "worker" else publisher(arguments)
    if arguments.uvloop:
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)
