"""What one idle interlock instance costs on Redis: commands per second, its CPU, Redis's CPU.

Starts its own `redis-server` (no persistence, 127.0.0.1 only), then, for each kind of
instance, starts a fresh process that loads `examples/shop` with `store=<redis url>` and
default settings, enters `async with router:`, lets it settle (2 s), and measures over 10
idle seconds (nothing is published):

- the commands Redis runs for it: the difference of `INFO commandstats` before and after,
  minus the one `INFO` of the measurement itself, per command and in all (commandstats
  counts the commands a Lua script calls as well as the script's EVALSHA);
- its CPU: `time.process_time()` spent over the wall time, in % of one core;
- the Redis server's CPU (`used_cpu_user + used_cpu_sys` of `INFO cpu`), and the connections
  it holds open (`connected_clients`, the measuring client excluded).

Then, over `--monitor-seconds` more (default 5; a window of its own, so that MONITOR's cost is
not in the CPU figures), `MONITOR` splits those commands into the ones the instance sends
and the ones its scripts call.

The kinds: `worker`, a no-op async handler for every target of the project (the sync
`fraud_check` too), and `publish-only`, no handlers. Medians of `--runs` (default 3).

Only the public API is used (`interlock.load`, `router.handler`, `async with`), so the same
script measures an older engine from its own checkout and virtualenv:

    .venv/bin/python bench/redis_idle.py [--runs N] [--settle S] [--seconds S]
    cd /work/baseline && .venv/bin/python /work/main/bench/redis_idle.py   # the interlock of the cwd's venv

The first line printed says which interlock was imported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from redis_server import engine_banner, flush, redis_server

import interlock

SHOP = str(Path(__file__).resolve().parent.parent / "examples" / "shop")
KINDS = ("worker", "publish-only")
RESULT = "RESULT "  # the prefix of the child's one line of results
START, STOP = "interlock-bench-monitor-start", "interlock-bench-monitor-stop"


# ---- the measured instance (a child process) ------------------------------------------------


def snapshot(client: redis.Redis) -> dict[str, Any]:
    return client.info("commandstats", "cpu", "clients")  # type: ignore[no-any-return]


def command_calls(info: dict[str, Any]) -> dict[str, int]:
    return {key.removeprefix("cmdstat_"): int(value["calls"]) for key, value in info.items()
            if key.startswith("cmdstat_")}


def server_cpu(info: dict[str, Any]) -> float:
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def nothing(event: interlock.Event) -> None:
    return None


def monitor_line(raw: bytes | str) -> tuple[str, str, str]:
    """(source, command, the line) of one MONITOR line: `TIME [DB SOURCE] "COMMAND" "ARG" ...`,
    SOURCE being `lua` for a command a script called."""
    line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    _time, rest = line.split(" ", 1)
    close = rest.index("] ")
    source = rest[1:close].split(" ", 1)[1]
    command = rest[close + 2:].split(" ", 1)[0].strip('"').lower()
    return source, command, line


def watch(url: str, counts: dict[str, Counter[str]], window: list[float], ready: threading.Event) -> None:
    """MONITOR, counting commands per source (`sent` by a client, `scripts` for Lua's) from
    the START marker to the STOP marker; the markers' times (this clock) go into `window`."""
    client = redis.Redis.from_url(url, socket_timeout=None)  # an idle instance may send nothing for long
    connection = client.connection_pool.get_connection()
    connection.send_command("MONITOR")
    connection.read_response()
    ready.set()
    counting = False
    while True:
        try:
            source, command, line = monitor_line(connection.read_response())
        except ValueError:  # not a command line: counted, not parsed
            counts["sent"]["(unparsed)"] += counting
            continue
        if command == "echo" and (START in line or STOP in line):
            window.append(time.perf_counter())
            if STOP in line:
                break
            counting = True
        elif counting:
            counts["scripts" if source == "lua" else "sent"][command] += 1
    connection.disconnect()
    client.close()


async def monitor_window(url: str, probe: redis.Redis, seconds: float) -> dict[str, Any]:
    counts: dict[str, Counter[str]] = {"sent": Counter(), "scripts": Counter()}
    window: list[float] = []
    ready = threading.Event()
    thread = threading.Thread(target=watch, args=(url, counts, window, ready), daemon=True)
    thread.start()
    await asyncio.to_thread(ready.wait, 10)
    probe.echo(START)
    await asyncio.sleep(seconds)
    probe.echo(STOP)
    await asyncio.to_thread(thread.join, 10)
    if len(window) != 2:
        raise RuntimeError(f"MONITOR did not see both markers (saw {len(window)})")
    return {"monitor_wall": window[-1] - window[0], "sent": dict(counts["sent"]), "scripts": dict(counts["scripts"])}


async def measure_instance(url: str, kind: str, settle: float, seconds: float, monitored: float) -> dict[str, Any]:
    router = interlock.load(SHOP, store=url)
    if kind == "worker":
        for target in router.targets:
            router.handler(target)(nothing)
    probe = redis.Redis.from_url(url)
    probe.ping()  # connected (and its handshake counted) before the first snapshot
    async with router:
        await asyncio.sleep(settle)
        before, cpu_before, wall_before = snapshot(probe), time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        after, cpu_after, wall_after = snapshot(probe), time.process_time(), time.perf_counter()
        split = await monitor_window(url, probe, monitored) if monitored > 0 else {}
    probe.close()
    wall = wall_after - wall_before
    calls = command_calls(after)
    for command, count in command_calls(before).items():
        calls[command] -= count
    calls["info"] -= 1  # the snapshot before (the one after is not in its own reply)
    return {"wall": wall, "calls": {c: n for c, n in calls.items() if n}, "cpu": (cpu_after - cpu_before) / wall,
            "server_cpu": (server_cpu(after) - server_cpu(before)) / wall,
            "connections": int(after["connected_clients"]) - 1, **split}


def child(url: str, kind: str, settle: float, seconds: float, monitored: float) -> None:
    result = asyncio.run(measure_instance(url, kind, settle, seconds, monitored))
    print(RESULT + json.dumps(result), flush=True)


# ---- the driver -------------------------------------------------------------------------------


def run_instance(url: str, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    flush(url)
    command = [sys.executable, __file__, "--child", kind, "--url", url, "--settle", str(args.settle),
               "--seconds", str(args.seconds), "--monitor-seconds", str(args.monitor_seconds)]
    timeout = args.settle + args.seconds + args.monitor_seconds + 60
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode != 0 or not lines:
        sys.exit(f"the {kind} instance failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix(RESULT))  # type: ignore[no-any-return]


def rates(results: list[dict[str, Any]], field: str, wall: str) -> dict[str, float]:
    """Per command, the median over runs of its calls per second in `field` (a dict of counts)."""
    commands = {c for r in results for c in r.get(field, {})}
    return {c: statistics.median(r[field].get(c, 0) / r[wall] for r in results) for c in commands}


def median_result(results: list[dict[str, Any]]) -> dict[str, Any]:
    monitored = all("sent" in r for r in results)
    return {"calls": rates(results, "calls", "wall"),
            "total": statistics.median(sum(r["calls"].values()) / r["wall"] for r in results),
            "sent": rates(results, "sent", "monitor_wall") if monitored else {},
            "scripts": rates(results, "scripts", "monitor_wall") if monitored else {},
            "sent_total": statistics.median(sum(r["sent"].values()) / r["monitor_wall"] for r in results)
            if monitored else float("nan"),
            "cpu": statistics.median(r["cpu"] for r in results),
            "server_cpu": statistics.median(r["server_cpu"] for r in results),
            "connections": statistics.median(r["connections"] for r in results)}


def print_tables(medians: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\none idle instance of examples/shop (default settings), {args.seconds:g} s measured after "
          f"{args.settle:g} s to settle, medians of {args.runs} runs:\n")
    print("| instance | commands/s (commandstats) | sent by the instance /s (MONITOR) | instance CPU (% of a core) "
          "| redis-server CPU (% of a core) | connections |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for kind, m in medians.items():
        print(f"| {kind} | {m['total']:,.1f} | {m['sent_total']:,.1f} | {100 * m['cpu']:.2f} "
              f"| {100 * m['server_cpu']:.2f} | {m['connections']:g} |")
    for kind, m in medians.items():
        print(f"\n{kind}, per command (calls/s):\n")
        print("| command | commandstats | sent by the instance (MONITOR) | called by its scripts (MONITOR) |")
        print("| --- | ---: | ---: | ---: |")
        commands = {*m["calls"], *m["sent"], *m["scripts"]}
        for command in sorted(commands, key=lambda c: (-m["calls"].get(c, 0), c)):
            print(f"| {command} | {m['calls'].get(command, 0):,.2f} | {m['sent'].get(command, 0):,.2f} "
                  f"| {m['scripts'].get(command, 0):,.2f} |")
        if not commands:
            print("| (none) | 0 | 0 | 0 |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after start before measuring")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds measured (commandstats, CPU)")
    parser.add_argument("--monitor-seconds", type=float, default=5.0,
                        help="seconds of MONITOR after that, to split sent from in-script commands (0: none)")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.url, args.child, args.settle, args.seconds, args.monitor_seconds)
        return
    print(engine_banner())
    with redis_server() as url:
        medians = {kind: median_result([run_instance(f"{url}/0", kind, args) for _ in range(args.runs)])
                   for kind in KINDS}
    print_tables(medians, args)


if __name__ == "__main__":
    main()
