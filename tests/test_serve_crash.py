"""`interlock serve` on Redis killed with SIGKILL while events flow to HTTP targets, then
started again: every event the ingest accepted (202) is delivered or dead-lettered."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis
from http_server import TargetServer
from served import HOST, free_port, wait_healthy

import interlock

PROJECT = """
event job.created { n: int }
dead_letter failed
retry quick { attempts 3, backoff fixed 50ms }
target work { http POST env("WORK_URL"), timeout 500ms, retry quick, dead_letter failed, concurrency 8 }
target flaky { http POST env("FLAKY_URL"), timeout 500ms, retry quick, dead_letter failed }
route all { on job.created to work, flaky }
"""

EVENTS = 300
KILL_AFTER = 100  # accepted events


def start(folder: Path, port: int, store: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "interlock.cli", "serve", "jobs.route", "--store", store, "--port", str(port),
             "--claim-idle", "1s"], cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    wait_healthy(f"http://{HOST}:{port}", process, log)
    return process


async def post_all(url: str, ids: list[str], accepted: set[str], kill: subprocess.Popen[bytes] | None) -> None:
    """Post every id (20 at a time); SIGKILL `kill` once KILL_AFTER were accepted."""
    queue = list(ids)

    async def poster(client: httpx.AsyncClient) -> None:
        while queue:
            event_id = queue.pop()
            event = {"specversion": "1.0", "id": event_id, "source": "tests", "type": "job.created",
                     "data": {"n": int(event_id.removeprefix("j"))}}
            try:
                response = await client.post(f"{url}/events", content=json.dumps(event),
                                             headers={"content-type": "application/cloudevents+json"})
            except httpx.TransportError:
                continue  # no answer: not known to be accepted (posted again after the restart)
            if response.status_code == 202:
                accepted.add(event_id)
                if kill is not None and len(accepted) >= KILL_AFTER and kill.poll() is None:
                    kill.send_signal(signal.SIGKILL)

    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(poster(client) for _ in range(20)))


def test_serve_killed_mid_stream_on_redis_loses_no_accepted_event(tmp_path: Path, redis_url: str) -> None:
    store = f"{redis_url.rsplit('/', 1)[0]}/10"
    with redis.Redis.from_url(store) as client:
        client.flushdb()
    (tmp_path / "jobs.route").write_text(PROJECT)
    log = tmp_path / "serve.stderr"
    port = free_port()
    url = f"http://{HOST}:{port}"
    ids = [f"j{n}" for n in range(EVENTS)]
    accepted: set[str] = set()
    with TargetServer() as server:
        env = {**os.environ, "WORK_URL": server.url("/slow/20"), "FLAKY_URL": server.url("/fail/99")}
        first = start(tmp_path, port, store, env, log)
        try:
            asyncio.run(post_all(url, ids, accepted, kill=first))
            assert first.wait(10) == -signal.SIGKILL
            assert KILL_AFTER <= len(accepted) < EVENTS  # killed mid-stream
            in_flight = {r.id for r in server.of("/slow/20")}
            assert in_flight < accepted  # it had delivered some, not all
            second = start(tmp_path, port, store, env, log)
            try:
                asyncio.run(post_all(url, [i for i in ids if i not in accepted], accepted, kill=None))
                assert accepted == set(ids)
                router = interlock.load(str(tmp_path / "jobs.route"), store=store, deliver_http=False)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    delivered = {r.id for r in server.of("/slow/20")}
                    dead = {d.event.id for d in router.dead_letters("failed") if d.target == "flaky"}
                    if delivered >= accepted and dead >= accepted:
                        break
                    time.sleep(0.2)
                assert accepted - delivered == set(), f"{len(accepted - delivered)} never delivered to `work`"
                assert accepted - dead == set(), f"{len(accepted - dead)} never dead-lettered for `flaky`"
                letters = [d for d in router.dead_letters("failed") if d.target == "flaky"]
                assert all(a.kind == "http.500" and a.status == 500 for d in letters for a in d.attempts)
            finally:
                second.terminate()
                assert second.wait(15) == 0
        finally:
            for process in (first,):
                if process.poll() is None:
                    process.kill()
                    process.wait()
