"""The ops CLI against a live store: `status`, `dead-letters list|show|redrive|purge` and
`publish`, run as subprocesses (`python -m interlock.cli`) on a `redis-server` of each test's
own, while a worker delivers in this process.

The state every test starts from (`shop`): a worker with handlers for `billing` (ordered by
customer, 4 partitions; it fails two events, which go to `orders_dlq`), `mailer` (one event
waits an hour for its retry, another gives up at once with PermissionError) and `scoring` (a
sync target that always fails: its dead letter); `audit` has no handler anywhere, so its
deliveries stay unread, but one that a consumer `worker-x` read and never acknowledged. One
event went unrouted; one entry of `orders_dlq` was written two hours ago.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis
from http_server import TargetServer
from redis_server import RedisServer

import interlock
from interlock.runtime.dead_letters import dead_entry, dead_stream
from interlock.runtime.event import Event
from interlock.runtime.outcomes import Attempt

PROJECT = """
event order.created { id: string, customer: string, amount: float }

retry quick { attempts 2  backoff fixed 10ms }
dead_letter orders_dlq
dead_letter audit_dlq { retain 7d }
unrouted to dead_letter unrouted_dlq

target billing { mode async, order by customer, timeout 2s, retry quick, dead_letter orders_dlq }
target mailer {
  mode async, timeout 2s, dead_letter orders_dlq
  retry { attempts 3  backoff fixed 1h  give_up_on [PermissionError] }
}
target audit { mode async, timeout 2s, retry quick, dead_letter audit_dlq }
target scoring { mode sync, timeout 1s, retry { attempts 1 }, dead_letter orders_dlq }
target quote { mode sync, http POST env("OPS_QUOTE_URL"), timeout 2s, retry { attempts 1 } }

route orders { on order.created to billing, mailer, audit }
route scored { on order.scored to scoring }
route quotes { on quote.asked to quote }
"""

PARTITIONS = 4
ORDERS = [("o-1", "c-1", 10.0), ("o-2", "c-2", 20.0), ("o-3", "c-3", 30.0), ("o-bad-1", "c-4", 40.0),
          ("o-bad-2", "c-5", 50.0), ("o-13", "c-6", 13.0), ("o-666", "c-7", 666.0)]
TWO_HOURS_MS = 2 * 3600 * 1000


@attrs.define
class Shop:
    """The state the tests start from, and the worker that keeps delivering."""

    url: str
    project: Path
    router: interlock.Router
    client: redis.Redis
    failing: set[str]  # the events billing fails
    billed: list[str]  # the events billing took
    old_id: str = ""  # the entry of orders_dlq written two hours ago

    def cli(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
            store: str | None = None) -> subprocess.CompletedProcess[str]:
        """`interlock ARGS... --store URL` in a process of its own."""
        command = [sys.executable, "-m", "interlock.cli", *args, "--store", store or self.url]
        if args and args[0] in ("status", "publish", "dead-letters") and "--partitions" not in args:
            command += ["--partitions", str(PARTITIONS)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, input=stdin,
                              stdin=subprocess.DEVNULL if stdin is None else None,
                              env={**os.environ, **(env or {})})
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def json(self, *args: str) -> Any:
        done = self.cli(*args, "--format", "json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def dead(self, name: str) -> list[dict[str, Any]]:
        """The entries of a dead letter, read straight from Redis (id, target, last kind)."""
        out = []
        for entry_id, fields in self.client.xrange(f"interlock:{{{dead_stream(name)}}}"):
            entry = json.loads(fields[b"e"])
            kind = entry["attempts"][-1]["kind"] if entry["attempts"] else None
            out.append({"id": entry_id.decode(), "target": entry["target"], "kind": kind,
                        "event": entry["event"]["id"]})
        return out

    def length(self, stream: str) -> int:
        return int(self.client.xlen(f"interlock:{{{stream}}}"))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what}")
        time.sleep(0.02)


def build(url: str, project: Path) -> Shop:
    router = interlock.load(str(project), store=url, partitions=PARTITIONS, deliver_http=False)
    client = redis.Redis.from_url(url)
    shop = Shop(url, project, router, client, {"o-bad-1", "o-bad-2"}, [])

    @router.handler("billing")
    async def billing(event: interlock.Event) -> None:
        if event.id in shop.failing:
            raise ValueError(f"card declined for {event.id}")
        shop.billed.append(event.id)

    @router.handler("mailer")
    async def mailer(event: interlock.Event) -> None:
        if event.data["amount"] == 13:
            raise ConnectionError("smtp down")
        if event.data["amount"] == 666:
            raise PermissionError("mailbox closed")

    @router.handler("scoring")
    def scoring(event: interlock.Event) -> None:
        raise RuntimeError("model offline")

    router.__enter__()
    for event_id, customer, amount in ORDERS:
        router.publish_sync("order.created", {"id": event_id, "customer": customer, "amount": amount}, id=event_id)
    assert router.publish_sync("order.scored", {"id": "s-1"}, id="s-1").errors
    assert router.publish_sync("nobody.listens", {}, id="u-1").unrouted
    # billing's two failures, mailer's PermissionError, scoring's failure; mailer's retry waits.
    wait_for(lambda: shop.length("dead.orders_dlq") == 4, "4 dead letters")
    wait_for(lambda: client.zcard("interlock:{deliveries.mailer}:retries") == 1, "mailer's retry")
    wait_for(lambda: len(shop.billed) == 5, "billing's deliveries")

    async def stuck() -> None:  # a consumer that read one of audit's deliveries and went away
        store = interlock.load(str(project), store=url).store
        await store.read("deliveries.audit", "interlock", "worker-x")
        old = dead_entry(Event("order.created", {"id": "o-old", "customer": "c-0", "amount": 1.0}, id="o-old"),
                         "mailer", ("orders",), (Attempt(1, "TimeoutError", "too slow", 0),), "gave up",
                         store.now_ms() - TWO_HOURS_MS)
        shop.old_id = str(await store.append(dead_stream("orders_dlq"), old))
        await store.close()

    asyncio.run(stuck())
    return shop


@pytest.fixture
def shop(make_redis_server: Callable[..., RedisServer], tmp_path: Path) -> Iterator[Shop]:
    project = tmp_path / "shop.route"
    project.write_text(PROJECT)
    state = build(make_redis_server().url, project)
    try:
        yield state
    finally:
        state.router.__exit__(None, None, None)
        state.client.close()


# ---- status ------------------------------------------------------------------------------


def test_status_counts_what_waits_per_target(shop: Shop) -> None:
    status = shop.json("status", str(shop.project))
    targets = status["targets"]
    consumer = shop.router.engine.consumer
    assert status["partitions"] == PARTITIONS
    assert status["store"].startswith("RedisStore('redis://127.0.0.1:")
    billing = targets["billing"]
    assert {k: billing[k] for k in ("mode", "ordered", "streams", "backlog", "pending", "in_retry", "dead_letters",
                                    "oldest_age_ms", "instances", "partition_holders")} == {
        "mode": "async", "ordered": True, "streams": PARTITIONS, "backlog": 0, "pending": 0, "in_retry": 0,
        "dead_letters": 2, "oldest_age_ms": None, "instances": [consumer], "partition_holders": [consumer] * PARTITIONS}
    mailer = targets["mailer"]
    assert (mailer["backlog"], mailer["pending"], mailer["in_retry"], mailer["dead_letters"]) == (0, 0, 1, 2)
    assert mailer["partition_holders"] is None and mailer["instances"] == []
    audit = targets["audit"]
    assert (audit["backlog"], audit["pending"], audit["in_retry"], audit["dead_letters"]) == (len(ORDERS) - 1, 1, 0, 0)
    assert audit["instances"] == ["worker-x"]
    assert 0 <= audit["oldest_age_ms"] < 60_000
    scoring = targets["scoring"]
    assert (scoring["mode"], scoring["backlog"], scoring["pending"], scoring["dead_letters"]) == ("sync", None, None, 1)
    assert status["dead_letters"] == {"audit_dlq": {"depth": 0}, "orders_dlq": {"depth": 5},
                                      "unrouted_dlq": {"depth": 1}}


def test_status_as_text(shop: Shop) -> None:
    done = shop.cli("status", str(shop.project))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    audit = next(line for line in lines if line.startswith("│ audit"))
    assert re.findall(r"│\s*([^│]*?)\s*(?=│)", audit)[1:6] == ["async", str(len(ORDERS) - 1), "1", "0", "0"]
    assert "partition holders" in done.stdout
    assert re.search(rf"│ billing\s*│ {re.escape(shop.router.engine.consumer)}\s*│ p0-p3\s*│", done.stdout)
    assert "sync targets are called inside publish" in done.stdout
    assert re.search(r"│ orders_dlq\s*│\s*5 │", done.stdout)


def test_status_reads_and_changes_nothing(shop: Shop) -> None:
    before = {key: shop.client.type(key) for key in shop.client.scan_iter("interlock:*")}
    shop.json("status", str(shop.project))
    after = {key: shop.client.type(key) for key in shop.client.scan_iter("interlock:*")}
    assert before == after
    assert shop.client.xpending("interlock:{deliveries.audit}", "interlock")["pending"] == 1


def _pty_run(args: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    """A command on a pseudo-terminal of 200 x 60 characters; (process, the terminal's fd)."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 200, 0, 0))
    process = subprocess.Popen(args, stdin=child, stdout=child, stderr=child, close_fds=True,
                               env={**os.environ, "TERM": "xterm", "COLUMNS": "200", "LINES": "60"})
    os.close(child)
    return process, main


def _read_until(fd: int, seen: bytearray, pattern: Callable[[str], bool], timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode("utf-8", "replace"))
        if pattern(text):
            return text
        left = deadline - time.monotonic()
        assert left > 0, f"not seen on the terminal: {text[-3000:]}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            with contextlib.suppress(OSError):  # the process closed the terminal
                seen.extend(os.read(fd, 65536))


def test_watch_refreshes_until_ctrl_c(shop: Shop) -> None:
    process, terminal = _pty_run([sys.executable, "-m", "interlock.cli", "status", str(shop.project), "--store",
                                  shop.url, "--partitions", str(PARTITIONS), "--watch", "0.2"])
    seen = bytearray()
    try:
        def backlogs(text: str) -> list[int]:  # audit's backlog, as each refresh showed it
            return [int(n) for n in re.findall(r"│ audit\s+│ async\s+│\s+(\d+) │", text)]

        _read_until(terminal, seen, lambda text: len(ORDERS) - 1 in backlogs(text))
        shop.router.publish_sync("order.created", {"id": "o-new", "customer": "c-9", "amount": 1.0}, id="o-new")
        footer = "every 0.2 s; Ctrl-C to stop"
        text = _read_until(terminal, seen, lambda text: len(ORDERS) in backlogs(text)
                           and text.rindex(footer) > text.rindex("│ audit"))
        assert text.count(footer) >= 2
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
        assert "Traceback" not in _read_until(terminal, seen, lambda text: True)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(terminal)


def test_status_of_a_memory_store_and_the_refusals(shop: Shop) -> None:
    done = shop.cli("status", str(shop.project), "--format", "json", store="memory://")
    assert done.returncode == 0, done.stderr
    memory = json.loads(done.stdout)
    assert memory["targets"]["billing"]["partition_holders"] is None  # one process: no partitions
    assert memory["targets"]["audit"]["backlog"] == 0
    both = shop.cli("status", str(shop.project), "--watch", "--format", "json")
    assert both.returncode == 2 and "--watch is a live view" in both.stderr


def test_a_partition_count_the_instances_do_not_use_is_refused(shop: Shop) -> None:
    keys = set(shop.client.scan_iter("interlock:*"))
    order = '{"id": "o-p", "customer": "c-1", "amount": 1}'
    for partitions, problem in (("2", "the store holds partition p2 of `billing`: its instances use more than 2"),
                                ("8", "the store has no partition p7 of `billing`: its instances use fewer than 8")):
        for args in (["status", str(shop.project)], ["publish", str(shop.project), "order.created", "--data", order],
                     ["dead-letters", "redrive", str(shop.project), "orders_dlq", "--target", "billing", "--yes"]):
            done = shop.cli(*args, "--partitions", partitions)
            assert done.returncode == 2, done.stderr
            assert problem in done.stderr
    assert set(shop.client.scan_iter("interlock:*")) == keys


# ---- dead-letters ----------------------------------------------------------------------------


def ids(document: dict[str, Any]) -> list[str]:
    return [entry["id"] for entry in document["entries"]]


def test_list_with_filters(shop: Shop) -> None:
    dead = shop.dead("orders_dlq")
    everything = shop.json("dead-letters", "list", str(shop.project), "orders_dlq")
    assert (everything["total"], everything["matched"]) == (5, 5)
    assert ids(everything) == [d["id"] for d in dead]  # oldest first
    bad = next(e for e in everything["entries"] if e["event_id"] == "o-bad-1")
    assert {k: bad[k] for k in ("target", "event_type", "last_kind", "attempts", "reason")} == {
        "target": "billing", "event_type": "order.created", "last_kind": "ValueError", "attempts": 2,
        "reason": "all 2 attempts failed"}
    billing = shop.json("dead-letters", "list", str(shop.project), "orders_dlq", "--target", "billing")
    assert sorted(e["event_id"] for e in billing["entries"]) == ["o-bad-1", "o-bad-2"]
    permission = shop.json("dead-letters", "list", str(shop.project), "orders_dlq", "--kind", "PermissionError")
    assert [e["event_id"] for e in permission["entries"]] == ["o-666"]
    old = shop.json("dead-letters", "list", str(shop.project), "orders_dlq", "--older-than", "1h")
    assert ids(old) == [shop.old_id]
    new = shop.json("dead-letters", "list", str(shop.project), "orders_dlq", "--newer-than", "1h", "--target",
                    "mailer", "--target", "scoring")
    assert sorted(e["event_id"] for e in new["entries"]) == ["o-666", "s-1"]
    chosen = shop.json("dead-letters", "list", str(shop.project), "orders_dlq", "--id", shop.old_id, "--id",
                       dead[1]["id"])
    assert ids(chosen) == [dead[1]["id"], shop.old_id]
    limited = shop.json("dead-letters", "list", str(shop.project), "orders_dlq", "--limit", "2")
    assert (ids(limited), limited["matched"]) == ([d["id"] for d in dead[:2]], 5)
    unrouted = shop.json("dead-letters", "list", str(shop.project), "unrouted_dlq")
    assert [(e["event_id"], e["target"], e["last_kind"]) for e in unrouted["entries"]] == [("u-1", None, None)]


def test_list_as_a_table(shop: Shop) -> None:
    done = shop.cli("dead-letters", "list", str(shop.project), "orders_dlq")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("dead letter orders_dlq: 5 entries")
    assert re.search(r"│ order\.created o-bad-1\s*│ billing\s*│ ValueError\s*│\s*2 │ all 2 attempts failed",
                     done.stdout)
    assert re.search(r"│ order\.created o-old\s*│ mailer\s*│ TimeoutError\s*│\s*1 │ gave up", done.stdout)
    limited = shop.cli("dead-letters", "list", str(shop.project), "orders_dlq", "--limit", "3", "--target", "billing")
    assert limited.stdout.startswith("dead letter orders_dlq: 2 of 5 entries match")
    some = shop.cli("dead-letters", "list", str(shop.project), "orders_dlq", "--limit", "3")
    assert some.stdout.startswith("dead letter orders_dlq: 5 entries, the oldest 3 shown")


def test_show_prints_every_attempt_and_the_event(shop: Shop) -> None:
    entry = next(d for d in shop.dead("orders_dlq") if d["event"] == "o-bad-1")
    shown = shop.json("dead-letters", "show", str(shop.project), "orders_dlq", entry["id"])
    (full,) = shown["entries"]
    assert [(a["attempt"], a["kind"], a["message"], a["status"]) for a in full["history"]] == [
        (1, "ValueError", "card declined for o-bad-1", None), (2, "ValueError", "card declined for o-bad-1", None)]
    assert full["event"]["data"] == {"id": "o-bad-1", "customer": "c-4", "amount": 40.0}
    assert full["routes"] == ["orders"] and full["target"] == "billing"
    text = shop.cli("dead-letters", "show", str(shop.project), "orders_dlq", entry["id"])
    assert text.returncode == 0, text.stderr
    assert "card declined for o-bad-1" in text.stdout and '"customer": "c-4"' in text.stdout
    missing = shop.cli("dead-letters", "show", str(shop.project), "orders_dlq", "1-0")
    assert missing.returncode == 2 and "no entry 1-0 in dead letter `orders_dlq`" in missing.stderr


def test_redrive_delivers_again_and_empties_what_it_took(shop: Shop) -> None:
    shop.failing.clear()  # billing works again
    before = shop.dead("orders_dlq")
    done = shop.json("dead-letters", "redrive", str(shop.project), "orders_dlq", "--target", "billing", "--yes")
    assert done["redriven"] == 2
    wait_for(lambda: {"o-bad-1", "o-bad-2"} <= set(shop.billed), "billing to take the redriven events")
    assert shop.dead("orders_dlq") == [d for d in before if d["target"] != "billing"]
    text = shop.cli("dead-letters", "redrive", str(shop.project), "orders_dlq", "--target", "billing", "--yes")
    assert (text.returncode, text.stdout.strip()) == (
        0, "nothing to redrive: no entry of dead letter `orders_dlq` matches (3 entries)")


def test_redrive_and_purge_need_yes_off_a_terminal(shop: Shop) -> None:
    before = shop.dead("orders_dlq")
    for action in ("redrive", "purge"):
        done = shop.cli("dead-letters", action, str(shop.project), "orders_dlq", "--target", "billing")
        assert done.returncode == 2
        assert f"not done: to {action} 2 of the 5 entries of dead letter `orders_dlq`, give --yes (stdin is not a " \
               "terminal to ask on)" in done.stderr
    assert shop.dead("orders_dlq") == before


def test_purge_asks_on_a_terminal(shop: Shop) -> None:
    before = shop.dead("orders_dlq")
    question = "purge 1 of the 5 entries of dead letter `orders_dlq`? [y/N]"
    for answer, code in ((b"n\n", 2), (b"y\n", 0)):
        process, terminal = _pty_run([sys.executable, "-m", "interlock.cli", "dead-letters", "purge",
                                      str(shop.project), "orders_dlq", "--kind", "PermissionError", "--store",
                                      shop.url])
        seen = bytearray()
        try:
            _read_until(terminal, seen, lambda text: question in text)
            os.write(terminal, answer)
            assert process.wait(20) == code
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            os.close(terminal)
    assert shop.dead("orders_dlq") == [d for d in before if d["kind"] != "PermissionError"]


def test_redrive_refuses_a_sync_targets_entries(shop: Shop) -> None:
    before = shop.dead("orders_dlq")
    done = shop.cli("dead-letters", "redrive", str(shop.project), "orders_dlq", "--yes")
    assert done.returncode == 2
    assert "cannot redrive entries of sync target(s) `scoring`" in done.stderr
    assert shop.dead("orders_dlq") == before


def test_purge_removes_exactly_the_filtered_entries(shop: Shop) -> None:
    before = shop.dead("orders_dlq")
    done = shop.json("dead-letters", "purge", str(shop.project), "orders_dlq", "--target", "mailer", "--newer-than",
                     "1h", "--yes")
    assert done["purged"] == 1
    assert shop.dead("orders_dlq") == [d for d in before if d["event"] != "o-666"]
    old = shop.json("dead-letters", "purge", str(shop.project), "orders_dlq", "--id", shop.old_id, "--yes")
    assert (old["purged"], old["ids"]) == (1, [shop.old_id])
    assert [d["event"] for d in shop.dead("orders_dlq")] == [d["event"] for d in before
                                                              if d["event"] not in ("o-666", "o-old")]


@pytest.mark.parametrize(("args", "message"), [
    (["list", "orders_dql"], "no dead letter `orders_dql` in this project; did you mean `orders_dlq`?"),
    (["show", "nope", "1-0"], "no dead letter `nope` in this project; its dead letters: audit_dlq, orders_dlq"),
    (["list", "orders_dlq", "--target", "biling"], "no target `biling` in this project; did you mean `billing`?"),
    (["list", "orders_dlq", "--older-than", "10 minutes"], "is not a duration"),
    (["list", "orders_dlq", "--id", "abc"], "not a stream entry id: 'abc'"),
    (["purge", "orders_dlq", "--limit", "0"], "must be 1 or more"),
])
def test_dead_letter_mistakes_exit_2_with_a_message(shop: Shop, args: list[str], message: str) -> None:
    done = shop.cli("dead-letters", args[0], str(shop.project), *args[1:])
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


# ---- publish ---------------------------------------------------------------------------------


def test_publish_stores_async_deliveries(shop: Shop, tmp_path: Path) -> None:
    receipt = shop.json("publish", str(shop.project), "order.created", "--data",
                        '{"id": "o-cli", "customer": "c-1", "amount": 5}', "--id", "cli-1")
    assert receipt == {"id": "cli-1", "targets": ["audit", "billing", "mailer"], "unrouted": False,
                       "duplicate": False, "replies": {}, "errors": {}, "failures": {}}
    wait_for(lambda: "cli-1" in shop.billed, "billing to take the published event")
    assert shop.length("deliveries.audit") == len(ORDERS) + 1
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"specversion": "1.0", "id": "cli-2", "source": "ops", "type": "order.created",
                                 "data": {"id": "o-cli-2", "customer": "c-2", "amount": 6}}))
    text = shop.cli("publish", str(shop.project), "--event", str(event))
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == ["cli-2: published to audit, billing, mailer", "  audit: stored for delivery",
                                        "  billing: stored for delivery", "  mailer: stored for delivery"]
    again = shop.cli("publish", str(shop.project), "--event", "-", stdin=event.read_text())
    assert "published already" in again.stdout
    unrouted = shop.json("publish", str(shop.project), "nobody.listens", "--data", "{}")
    assert unrouted["unrouted"] is True and shop.length("dead.unrouted_dlq") == 2


def test_publish_refuses_a_bad_event_and_stores_nothing(shop: Shop) -> None:
    keys = set(shop.client.scan_iter("interlock:*"))
    bad = shop.cli("publish", str(shop.project), "order.created", "--data",
                   '{"id": "o-x", "customer": "c-1", "amount": "lots"}')
    assert bad.returncode == 1
    assert "amount" in bad.stderr and bad.stdout == ""
    scored = shop.cli("publish", str(shop.project), "order.scored", "--data", '{"id": "s-2"}', "--id", "s-2")
    assert scored.returncode == 2
    assert "the event reaches sync target(s) `scoring`" in scored.stderr
    broken = shop.cli("publish", str(shop.project), "order.created", "--data", "{oops")
    assert broken.returncode == 2 and "--data is not JSON" in broken.stderr
    neither = shop.cli("publish", str(shop.project), "order.created")
    assert neither.returncode == 2 and "one of the arguments --data --event is required" in neither.stderr
    assert set(shop.client.scan_iter("interlock:*")) == keys  # no delivery, dead letter or idempotency key
    assert shop.length("deliveries.audit") == len(ORDERS)


def test_publish_calls_http_sync_targets(shop: Shop) -> None:
    with TargetServer() as server:
        env = {"OPS_QUOTE_URL": server.url("/ok")}
        done = shop.cli("publish", str(shop.project), "quote.asked", "--data", '{"n": 1}', "--id", "q-1",
                        "--format", "json", env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["replies"] == {"quote": {"ok": True, "id": "q-1"}}
        assert [r.id for r in server.of("/ok")] == ["q-1"]
        failing = shop.cli("publish", str(shop.project), "quote.asked", "--data", "{}", "--id", "q-2",
                           env={"OPS_QUOTE_URL": server.url("/missing")})
        assert failing.returncode == 1
        assert "quote: failed: http.404" in failing.stdout
    unset = shop.cli("publish", str(shop.project), "quote.asked", "--data", "{}", env={"OPS_QUOTE_URL": ""})
    assert unset.returncode == 2 and "OPS_QUOTE_URL" in unset.stderr


# ---- stores that cannot be used ---------------------------------------------------------------


def test_an_unreachable_store_is_a_message_without_its_password(shop: Shop, tmp_path: Path) -> None:
    order = '{"id": "o", "customer": "c", "amount": 1}'
    for args in (["status", str(shop.project)], ["dead-letters", "list", str(shop.project), "orders_dlq"],
                 ["publish", str(shop.project), "order.created", "--data", order]):
        done = shop.cli(*args, store="redis://:hunter2@127.0.0.1:1/0")
        assert done.returncode == 2, done.stderr
        assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in done.stderr
        assert "hunter2" not in done.stderr + done.stdout
    unknown = shop.cli("status", str(shop.project), store="postgres://db")
    assert unknown.returncode == 2 and "unknown store 'postgres://db'" in unknown.stderr
    broken = tmp_path / "broken.route"
    broken.write_text("route r { on a.b to nowhere }\n")
    assert shop.cli("status", str(broken)).returncode == 1


def test_stored_text_that_looks_like_markup_is_shown_as_written(shop: Shop) -> None:
    # An event id or a handler's message with square brackets (a JSON pointer) used to be
    # read as rich markup: "internal error: MarkupError", or the text styled and changed.
    for event_id in ("[/]", "[red]o-7[/red]"):
        done = shop.cli("publish", str(shop.project), "nobody.listens", "--data", "{}", "--id", event_id)
        assert done.returncode == 0, done.stderr
    listed = shop.cli("dead-letters", "list", str(shop.project), "unrouted_dlq")
    assert listed.returncode == 0, listed.stderr
    assert "[/]" in listed.stdout and "[red]o-7[/red]" in listed.stdout
