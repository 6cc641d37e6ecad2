"""interlock side by side with the Python alternatives on Redis: Celery, Dramatiq, arq, FastStream.

Starts one `redis-server` (no persistence, 127.0.0.1 only, a free port); each system gets a
database of its own, emptied before each run. A run is one worker process (a no-op handler,
acknowledgement after it) and one publishing process, both started afresh, each system's with
the Python of its own virtualenv (bench/peers/*_side.py; interlock's with this Python, so a
baseline checkout's venv measures that checkout). The worker counts the distinct event numbers
its handler saw; a run that lost events, timed out or saw publishes fail says so instead of
giving a rate. Three modes:

- `sequential`: each publish awaited before the next; events/s from the first publish starting
  to the last new event handled (`time.monotonic()`, one clock for every process);
- `flight`: 64 publishes in flight at once (64 tasks, or what a blocking library does best:
  see each side's docstring); events/s as above;
- `paced`: `--rate` events/s (default 1,000) for `--seconds` (default 5), each carrying the
  time its publish call started; the handler notes the latency; p50 and p99.

Systems: interlock, Celery, Dramatiq, arq, FastStream (a call per message, and a batch
subscriber), and a bare redis-py loop of XADD / XREADGROUP / XACK written by hand (the floor).
Each peer is tuned in its favour without weakening at-least-once; the side modules say how.
Medians of `--rounds` (default 3); within a round every system runs each mode, in an order
that rotates from round to round, so noise spreads evenly.

The peers live in virtualenvs of their own, made on the first run from the pinned
bench/peers-requirements.txt (.venv-peers) and bench/arq-requirements.txt (.venv-arq: arq
needs redis-py < 6); a changed file makes the script reinstall.

    .venv/bin/python bench/peers.py [--events N] [--rounds N] [--systems a,b] [--modes m,n] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from redis_server import engine_banner, flush, percentile, start_server

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SIDES = BENCH / "peers"
READY_TIMEOUT = 60.0  # seconds for a worker to start consuming
log = logging.getLogger("peers")


@dataclass(frozen=True)
class System:
    name: str
    module: str  # in bench/peers/
    venv: str | None  # None: the Python running this script (the interlock measured)
    options: tuple[str, ...] = ()


SYSTEMS = (
    System("interlock", "interlock_side.py", None),
    System("interlock+uvloop", "interlock_side.py", None, ("--uvloop",)),  # interlock[fast]
    System("celery", "celery_side.py", ".venv-peers"),
    System("dramatiq", "dramatiq_side.py", ".venv-peers"),
    System("arq", "arq_side.py", ".venv-arq"),
    System("faststream", "faststream_side.py", ".venv-peers"),
    System("faststream-batch", "faststream_side.py", ".venv-peers", ("--batch",)),
    System("bare", "bare_side.py", ".venv-peers"),
)
VENVS = {".venv-peers": "peers-requirements.txt", ".venv-arq": "arq-requirements.txt"}
MODES = {"sequential": "sequential publishes", "flight": "64 publishes in flight",
         "paced": "paced"}


def ensure_venv(name: str, requirements: str) -> Path:
    """The Python of ROOT/name, a virtualenv with `requirements` installed (made or updated when
    the file changed since: its text is kept in the venv as a stamp)."""
    venv, wanted = ROOT / name, (BENCH / requirements).read_text()
    python, stamp = venv / "bin" / "python", venv / ".bench-requirements"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    base = getattr(sys, "_base_executable", None) or shutil.which("python3") or "python3"
    log.info("installing %s into %s (once; a few seconds to a minute)", requirements, venv)
    steps = [[base, "-m", "venv", str(venv)]] if not python.exists() else []
    steps.append([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r",
                  str(BENCH / requirements)])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if done.returncode:
            sys.exit(f"{' '.join(step)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    stamp.write_text(wanted)
    return python


class Side:
    """One side process (worker or publisher): JSON lines from its stdout through `read`,
    requests to its stdin through `send`; `close` ends it (its stdin closing makes it exit;
    terminated, then killed, if it does not)."""

    def __init__(self, argv: list[str], log_file: IO[str]) -> None:
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file,
                                        text=True, cwd=SIDES)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.ended = False  # its output closed: it exited (or is exiting)
        LIVE.add(self)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def read(self, timeout: float) -> dict[str, Any] | None:
        """The next message, or None if the process ended or said nothing within `timeout`."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            self.ended = True
            return None
        return json.loads(line)  # type: ignore[no-any-return]

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        except OSError:
            pass  # it died: its read says so

    def close(self) -> None:
        LIVE.discard(self)
        try:
            assert self.process.stdin is not None
            self.process.stdin.close()
        except OSError:
            pass
        for stop in (None, self.process.terminate, self.process.kill):
            if stop is not None:
                stop()
            try:
                self.process.wait(3)
                return
            except subprocess.TimeoutExpired:
                continue


LIVE: set[Side] = set()  # closed on the way out, whatever happened


@dataclass
class Run:
    """One system in one mode, one round."""

    events: int
    rate: float | None = None  # events/s, when every event was handled and no publish failed
    latencies: list[float] = field(default_factory=list)  # paced: seconds, publish call to handler
    late_p99: float = 0.0  # paced: how late the pacer started events
    repeats: int = 0  # handler calls beyond the first per event
    problem: str = ""


def measure(system: System, python: str, mode: str, url: str, args: argparse.Namespace, logs: Path,
            versions: dict[str, dict[str, str]]) -> Run:
    events = round(args.rate * args.seconds) if mode == "paced" else args.events
    run = Run(events)
    flush(url)
    common = ["--url", url, "--events", str(events), "--mode", mode, "--rate", str(args.rate), *system.options]
    log_path = logs / f"{system.name}-{mode}-{time.strftime('%H%M%S')}.log"
    with log_path.open("w") as log_file:
        worker = Side([python, system.module, "worker", *common], log_file)
        try:
            ready = worker.read(READY_TIMEOUT)
            if not ready or not ready.get("ready"):
                run.problem = f"WORKER DID NOT START (see {log_path})"
                return run
            versions[system.name] = ready["versions"]
            time.sleep(0.5)  # consuming, connections open
            publisher = Side([python, system.module, "publish", *common], log_file)
            try:
                published = publisher.read(args.timeout)
            finally:
                publisher.close()
            worker.send(f"finish {args.stall} {args.timeout}")
            count = worker.read(args.timeout + args.stall + 10)
        finally:
            worker.close()
    if count is None:
        run.problem = f"WORKER GAVE NO COUNT (see {log_path})"
        return run
    run.latencies, run.repeats = count["latencies"], count["calls"] - count["distinct"]
    problems = []
    if published is None:
        problems.append(f"PUBLISHER {'FAILED' if publisher.ended else f'TIMED OUT after {args.timeout:g} s'} "
                        f"(see {log_path})")
    elif published["errors"]:
        problems.append(f"{published['errors']:,} PUBLISHES FAILED ({published['first_error']})")
    missing = events - count["distinct"]
    if published is None or published["errors"]:
        problems.append(f"{count['distinct']:,} of {events:,} handled")
    elif missing and count["stalled"]:
        problems.append(f"LOST {missing:,} of {events:,} (none handled in the last {args.stall:g} s)")
    elif missing:
        problems.append(f"TIMED OUT: {missing:,} of {events:,} not handled {args.timeout:g} s after publishing")
    if problems:
        run.problem = "; ".join(problems)
    else:
        assert published is not None
        run.late_p99 = published["late_p99"]
        run.rate = events / max(count["last"] - published["start"], 1e-9)
    return run


def table(headers: Sequence[str], rows: list[list[str]], markdown: bool) -> None:
    """Columns after the first are right-aligned, but a last column of notes."""
    if markdown:
        print("| " + " | ".join(headers) + " |")
        print("| --- | " + " | ".join("---:" for _ in headers[1:-1]) + " | --- |")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    for row in [list(headers), *rows]:
        cells = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1], strict=True)),
                 row[-1]]
        print("  ".join(cells).rstrip())


def rounds_note(runs: list[Run]) -> str:
    ok = [r for r in runs if not r.problem]
    notes = [f"{len(ok)}/{len(runs)} rounds ok"]
    notes += sorted({r.problem for r in runs if r.problem})
    if any(r.repeats for r in runs):
        notes.append(f"repeats: {', '.join(str(r.repeats) for r in runs)}")
    return "; ".join(notes)


def median_rate(runs: list[Run]) -> float | None:
    rates = [r.rate for r in runs if r.rate is not None]
    return statistics.median(rates) if rates else None


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "—"


def throughput_table(mode: str, results: dict[str, list[Run]], markdown: bool) -> None:
    rates = {name: median_rate(runs) for name, runs in results.items()}
    ours, bare = rates.get("interlock"), rates.get("bare")
    rows = [[name, "—" if rate is None else f"{rate:,.0f}", ratio(ours, rate) if name != "interlock" else "",
             ratio(rate, bare), rounds_note(results[name])] for name, rate in rates.items()]
    table(["system", "events/s", "interlock ÷ it", "it ÷ bare", "runs"], rows, markdown)


def paced_table(results: dict[str, list[Run]], markdown: bool) -> dict[str, tuple[float, float] | None]:
    """Prints the table; returns per system the medians over rounds of (p50, p99), in ms."""
    figures: dict[str, tuple[float, float] | None] = {}
    for name, runs in results.items():
        ok = [r for r in runs if not r.problem]
        figures[name] = (1000 * statistics.median(percentile(r.latencies, 0.50) for r in ok),
                         1000 * statistics.median(percentile(r.latencies, 0.99) for r in ok)) if ok else None
    bare = figures.get("bare")
    rows = []
    for name, runs in results.items():
        got = figures[name]
        ok = [r for r in runs if not r.problem]
        late = f"{1000 * statistics.median(r.late_p99 for r in ok):.2f}" if ok else "—"
        rows.append([name, f"{got[0]:.2f}" if got else "—", f"{got[1]:.2f}" if got else "—",
                     ratio(got[1], bare[1]) if got and bare else "—", late, rounds_note(runs)])
    table(["system", "p50 ms", "p99 ms", "p99 ÷ bare p99", "pacer late p99 ms", "runs"], rows, markdown)
    return figures


def summary(results: dict[str, dict[str, list[Run]]], paced: dict[str, tuple[float, float] | None] | None) -> None:
    """Each interlock (asyncio's loop, uvloop) against the best of the peers, and the goals."""
    ours = [s.name for s in SYSTEMS if s.name.startswith("interlock")]
    peers = [s.name for s in SYSTEMS if s.name not in ("bare", *ours)]
    met = []
    for us in ours:
        parts = []
        for mode, label in (("sequential", "sequential"), ("flight", "in flight")):
            if mode not in results or us not in results[mode]:
                continue
            rates = {name: median_rate(runs) for name, runs in results[mode].items()}
            best = max((n for n in peers if rates.get(n)), key=lambda n: rates[n] or 0.0, default=None)
            if best is None or not rates[us]:
                parts.append(f"{label} —")
                continue
            times = (rates[us] or 0.0) / (rates[best] or 1.0)
            parts.append(f"{label} {times:.2f}x ({best})")
            met.append(f"{us} ≥ 3x the best peer {label}: {'met' if times >= 3 else 'NOT met'}")
        if parts:
            print(f"{us} vs the best peer: {', '.join(parts)}")
        if paced is not None and paced.get(us):
            p99 = paced[us][1]  # type: ignore[index]
            met.append(f"{us} paced p99 < 10 ms: {'met' if p99 < 10 else 'NOT met'} ({p99:.2f} ms)")
            bare = paced.get("bare")
            if bare:
                met.append(f"{us} paced p99 ≤ 3x the bare loop's: {'met' if p99 <= 3 * bare[1] else 'NOT met'} "
                           f"({p99 / bare[1]:.2f}x)")
    if met:
        print("goals: " + "; ".join(met))


def pick(text: str, known: Sequence[str], what: str) -> list[str]:
    chosen = [word.strip() for word in text.split(",") if word.strip()]
    unknown = [word for word in chosen if word not in known]
    if unknown:
        sys.exit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return [name for name in known if name in chosen]  # in the table's order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per throughput run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1000.0, help="paced: events per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="paced: for how long")
    parser.add_argument("--systems", default=",".join(s.name for s in SYSTEMS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds a publisher may take, and a worker after it (bounded waits)")
    parser.add_argument("--stall", type=float, default=10.0,
                        help="seconds without a new event handled after which the rest is counted lost")
    parser.add_argument("--markdown", action="store_true", help="markdown tables, to paste into the README")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    names = pick(args.systems, [s.name for s in SYSTEMS], "systems")
    modes = pick(args.modes, list(MODES), "modes")
    systems = [s for s in SYSTEMS if s.name in names]
    pythons = {s.name: str(ensure_venv(s.venv, VENVS[s.venv])) if s.venv else sys.executable for s in systems}
    banner = engine_banner()
    log.info("%s", banner)
    logs = Path(tempfile.mkdtemp(prefix="peers-logs-"))
    versions: dict[str, dict[str, str]] = {}
    results: dict[str, dict[str, list[Run]]] = {mode: {s.name: [] for s in systems} for mode in modes}
    began = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # through the `finally` below: no orphans
    server, url = start_server()
    try:
        for turn in range(args.rounds):
            order = systems[turn % len(systems):] + systems[:turn % len(systems)]
            for mode in modes:
                for system in order:
                    db = SYSTEMS.index(system)
                    run = measure(system, pythons[system.name], mode, f"{url}/{db}", args, logs, versions)
                    results[mode][system.name].append(run)
                    log.info("round %d/%d %-10s %-16s %s", turn + 1, args.rounds, mode, system.name,
                             run.problem or (f"{run.rate:,.0f} events/s" if mode != "paced" else
                                             f"p50 {1000 * percentile(run.latencies, 0.5):.2f} ms, "
                                             f"p99 {1000 * percentile(run.latencies, 0.99):.2f} ms"))
    finally:
        for side in list(LIVE):
            side.close()
        server.terminate()
        server.wait(10)
    report(results, versions, banner, args, time.monotonic() - began)
    if not any(run.problem for by_system in results.values() for runs in by_system.values() for run in runs):
        shutil.rmtree(logs)  # else kept: the table names the log of each run that went wrong


def report(results: dict[str, dict[str, list[Run]]], versions: dict[str, dict[str, str]], banner: str,
           args: argparse.Namespace, spent: float) -> None:
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    print(banner)
    print(f"redis-server {redis_version[2].removeprefix('v=') if len(redis_version) > 2 else '?'}, one for all "
          f"(a database each); one publishing process and one worker process per run; medians of {args.rounds} "
          f"rounds; {spent / 60:.1f} min in all")
    for name, found in versions.items():
        print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in found.items() if k != "module"))
    paced = None
    for mode, by_system in results.items():
        print()
        if mode == "paced":
            print(f"paced: {args.rate:g} events/s for {args.seconds:g} s; ms from the publish call's start to the "
                  "handler (medians of the rounds' percentiles)")
            print()
            paced = paced_table(by_system, args.markdown)
        else:
            print(f"{MODES[mode]}: {args.events:,} events, first publish to last handled")
            print()
            throughput_table(mode, by_system, args.markdown)
    print()
    summary(results, paced)


if __name__ == "__main__":
    main()
