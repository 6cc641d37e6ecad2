"""interlock on one Redis server and on a 3-master Redis Cluster, side by side in one run;
and what a master's failover costs, with and without `min_replicas` (WAIT).

Throughput: the two-process workload of bench/peers.py (one publishing process, one worker
process, no-op handlers, ack after the handler; bench/peers/interlock_side.py), its events
spread over `--targets` async targets (default 6), so that their streams, one per target,
fall in different hash slots: on the cluster, on different masters. Sequential publishes and
64 in flight; medians of `--rounds`, the two stores alternating.

Failover: a cluster of 3 masters with a replica each (node timeout 1 s); one process
publishes `--failover-events` events (paced, 64 in flight) to 6 targets and handles them;
mid-stream the master holding the most of them is killed (SIGKILL), its replica promoted,
and the old master restarted as a replica. Publishes that raise are published again (same
id) until accepted. Reported: seconds from the kill to the promotion, and to the first
event handled again of the killed master's streams; publishes that raised; accepted events
never handled (lost: replication is asynchronous, and what the master acknowledged but had
not yet sent to its replica is gone); and the publish latency p50/p99 with and without
WAIT.

Run: `.venv/bin/python bench/cluster.py [--events N] [--rounds N] [--failover-rounds N]`.
About 3 minutes with the defaults. Uses tests/redis_cluster.py to start the cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import peers
from redis_server import engine_banner, percentile, start_server

import interlock
from interlock.runtime.redis_store import RedisStore


def _tests_cluster() -> Any:
    """tests/redis_cluster.py (the cluster the tests start), with the tests' own redis_server
    module under it (bench/ has a module of that name too)."""
    tests = Path(__file__).resolve().parent.parent / "tests"
    ours = sys.modules.pop("redis_server")
    sys.path.insert(0, str(tests))
    try:
        return importlib.import_module("redis_cluster")
    finally:
        sys.path.remove(str(tests))
        sys.modules["redis_server"] = ours


RedisCluster = _tests_cluster().RedisCluster

log = logging.getLogger("bench.cluster")

TARGETS = 6
# bench/peers/interlock_side.py's project with TARGETS sinks, each handled one at a time.
FAILOVER_PROJECT = """
dead_letter dlq
retry quick { attempts 3, backoff exponential initial 100ms factor 2 max 5s }
""" + "".join(f"target sink{k} {{ mode async, retry quick, dead_letter dlq, concurrency 1 }}\n"
              f"route r{k} {{ on bench.t{k} to sink{k} }}\n" for k in range(TARGETS))


def throughput(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    """Events/s per store and mode, one entry per round."""
    system = peers.System("interlock", "interlock_side.py", None, ("--targets", str(args.targets)))
    logs = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    rates: dict[str, dict[str, list[float]]] = {mode: {"one server": [], "cluster": []}
                                                for mode in ("sequential", "flight")}
    server, url = start_server()
    cluster = RedisCluster(masters=3).start()
    peer_args = argparse.Namespace(rate=1000.0, seconds=5.0, timeout=120.0, stall=10.0, events=args.events)
    try:
        for turn in range(args.rounds):
            stores = [("one server", f"{url}/0"), ("cluster", cluster.url)]
            for mode in rates:
                for name, store in stores if turn % 2 == 0 else stores[::-1]:
                    run = peers.measure(system, sys.executable, mode, store, peer_args, logs, {})
                    if run.problem or run.rate is None:
                        log.warning("round %d %s %s: %s", turn + 1, name, mode, run.problem)
                        continue
                    rates[mode][name].append(run.rate)
                    log.info("round %d/%d %-10s %-10s %8.0f events/s", turn + 1, args.rounds, mode, name, run.rate)
        spread = {m.port: m.slot_count for m in cluster.masters()}
        streams = [f"interlock:{{deliveries.sink{k}}}" for k in range(args.targets)]
        holders = [cluster.node_for_key(key) for key in streams]
        log.info("slots per master: %s; the %d targets' streams per master: %s", spread, args.targets,
                 {port: holders.count(port) for port in spread})
    finally:
        cluster.stop()
        server.terminate()
        server.wait(10)
    return rates


class Failover:
    """One failover round: publish paced events, kill the busiest master mid-stream. With
    `lag` seconds, its replica is cut off (stopped, its link killed) that long before the
    kill, so that what the master acknowledged meanwhile never reached it: a replica that
    lags (a slow network, a busy replica) makes the window `min_replicas` closes."""

    def __init__(self, cluster: RedisCluster, project: str, min_replicas: int, events: int, lag: float) -> None:
        self.cluster = cluster
        self.events = events
        self.lag = lag
        self.first_try: dict[int, float] = {}
        self.router = interlock.load(project, store=RedisStore(cluster.url, min_replicas=min_replicas))
        self.handled: dict[int, float] = {}
        self.accepted: set[int] = set()
        self.raised = 0
        self.latencies: list[float] = []
        self.killed_at = 0.0
        self.promoted_after = 0.0
        keys = [f"interlock:{{deliveries.sink{k}}}" for k in range(TARGETS)]
        holders = [cluster.node_for_key(key) for key in keys]
        self.victim = max(set(holders), key=holders.count)
        self.victim_targets = {k for k, port in enumerate(holders) if port == self.victim}
        for k in range(TARGETS):
            self.router.handler(f"sink{k}")(self._handle)

    async def _handle(self, event: interlock.Event) -> None:
        await asyncio.sleep(0.002)  # (one at a time per target: a backlog builds up, as under load)
        self.handled.setdefault(event.data["n"], time.monotonic())

    def _fault(self) -> None:
        replica = self.cluster.node(self.cluster.replicas_of(self.victim)[0].port).process
        assert replica is not None
        if self.lag:
            # The replica frozen and its link cut (what was already sent is still read when it
            # wakes up): the master's writes from now on reach no replica.
            replica.send_signal(signal.SIGSTOP)
            with self.cluster.client(self.victim) as master:
                master.execute_command("CLIENT", "KILL", "TYPE", "replica")
            time.sleep(self.lag)
        self.killed_at = time.monotonic()
        self.cluster.kill(self.victim)
        replica.send_signal(signal.SIGCONT)
        self.promoted_after = self.cluster.wait_failover(self.victim)
        self.cluster.restart(self.victim)

    async def _publish(self, n: int) -> None:
        self.first_try[n] = time.monotonic()
        while True:
            started = time.monotonic()
            try:
                await asyncio.wait_for(self.router.publish(f"bench.t{n % TARGETS}", {"n": n}, id=f"ev-{n}"), 15)
            except Exception as exc:
                if not self.raised:
                    log.info("a publish raised %s: %s", type(exc).__name__, exc)
                self.raised += 1
                await asyncio.sleep(0.2)
                continue
            self.latencies.append(time.monotonic() - started)
            self.accepted.add(n)
            return

    async def run(self) -> None:
        fault = threading.Thread(target=self._fault, daemon=True)
        slots = asyncio.Semaphore(64)
        tasks = []
        async with self.router:
            for n in range(self.events):
                if n == self.events // 3:
                    fault.start()
                await slots.acquire()
                task = asyncio.ensure_future(self._publish(n))
                task.add_done_callback(lambda _t: slots.release())
                tasks.append(task)
                await asyncio.sleep(0.001)
            await asyncio.gather(*tasks)
            fault.join(60)
            deadline = time.monotonic() + 30
            while len(self.accepted - set(self.handled)) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)

    def resumed_after(self) -> float:
        """Seconds from the kill to the first event of the killed master's streams, published
        after it, handled."""
        after = [t for n, t in self.handled.items()
                 if n % TARGETS in self.victim_targets and self.first_try[n] > self.killed_at]
        return min(after) - self.killed_at if after else float("nan")


def failover(args: argparse.Namespace) -> dict[int, list[Failover]]:
    project = Path(tempfile.mkdtemp(prefix="cluster-bench-")) / "bench.route"
    project.write_text(FAILOVER_PROJECT)
    out: dict[tuple[float, int], list[Failover]] = {(lag, n): [] for lag in (0.0, args.lag) for n in (0, 1)}
    for turn in range(args.failover_rounds):
        for lag, min_replicas in out:
            cluster = RedisCluster(masters=3, replicas=1).start()
            try:
                round_ = Failover(cluster, str(project), min_replicas, args.failover_events, lag)
                asyncio.run(round_.run())
            finally:
                cluster.stop()
            out[lag, min_replicas].append(round_)
            log.info("failover round %d, replica cut off %.1f s before, min_replicas %d: promoted in %.2f s, "
                     "handled again after %.2f s, %d raised, %d lost", turn + 1, lag, min_replicas,
                     round_.promoted_after, round_.resumed_after(), round_.raised,
                     len(round_.accepted - set(round_.handled)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per throughput run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--targets", type=int, default=TARGETS)
    parser.add_argument("--failover-events", type=int, default=6_000)
    parser.add_argument("--failover-rounds", type=int, default=3)
    parser.add_argument("--lag", type=float, default=0.5, help="seconds the replica is stopped before the kill")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("faults").setLevel(logging.WARNING)
    logging.getLogger("interlock").setLevel(logging.ERROR)
    banner = engine_banner()
    rates = throughput(args)
    failovers = failover(args)
    print(banner)
    print(f"\nthroughput: {args.events:,} events over {args.targets} targets, one publishing and one worker "
          f"process; events/s, medians of {args.rounds} rounds\n")
    print("| mode | one server | 3-master cluster | cluster / one server |")
    print("| --- | ---: | ---: | ---: |")
    for mode, by_store in rates.items():
        one = statistics.median(by_store["one server"]) if by_store["one server"] else float("nan")
        many = statistics.median(by_store["cluster"]) if by_store["cluster"] else float("nan")
        print(f"| {peers.MODES[mode]} | {one:,.0f} | {many:,.0f} | {many / one:.2f}x |")
    print(f"\nfailover: {args.failover_events:,} events (64 in flight), the busiest master killed a third of the way; "
          f"medians of {args.failover_rounds} rounds\n")
    print("| replica cut off before the kill | min_replicas | promoted after (s) | delivering again after (s) "
          "| publishes raised | accepted, then lost | publish p50 / p99 (ms) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (lag, min_replicas), rounds in failovers.items():
        if not rounds:
            continue
        latencies = [x for r in rounds for x in r.latencies]
        lost = [len(r.accepted - set(r.handled)) for r in rounds]
        promoted = statistics.median(r.promoted_after for r in rounds)
        print(f"| {f'{lag:g} s' if lag else 'no'} | {min_replicas} | {promoted:.2f} | "
              f"{statistics.median(r.resumed_after() for r in rounds):.2f} | "
              f"{statistics.median(r.raised for r in rounds):.0f} | {statistics.median(lost):.0f} (max {max(lost)}) | "
              f"{1000 * percentile(latencies, 0.5):.2f} / {1000 * percentile(latencies, 0.99):.1f} |")


if __name__ == "__main__":
    main()
