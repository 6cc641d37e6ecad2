"""Fault injection on a real Redis Cluster (tests/redis_cluster.py): a master killed and its
replica promoted, slots moved while events flow.

The workload and its invariants are tests/fault_workload.py's, as for one server: every
accepted (event, target) pair handled or dead-lettered, failing deliveries never handled,
each key of the ordered target in order, the engine's background tasks alive.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import pytest
from fault_workload import Workload, assert_invariants, engine_health, run_bounded, write_project
from redis_cluster import RedisCluster, SlotMigration
from redis_server import Fault

import interlock
from interlock.runtime.redis_store import RedisStore

pytestmark = pytest.mark.faults

log = logging.getLogger("faults.test")

# The keys of the workload's streams: an unordered target, two partitions of the ordered one,
# the dead letter.
STREAMS = ["deliveries.plain", "deliveries.ordered.p0", "deliveries.ordered.p1", "dead.dlq"]


@pytest.fixture(autouse=True)
def _fault_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="faults")


def _masters_of(cluster: RedisCluster) -> dict[str, int]:
    return {stream: cluster.node_for_key(f"interlock:{{{stream}}}") for stream in STREAMS}


def test_a_master_killed_mid_stream_fails_over_and_with_min_replicas_nothing_accepted_is_lost(
        tmp_path: Path) -> None:
    """SIGKILL of the master holding the unordered target's stream, mid-stream, on a cluster
    of 3 masters with a replica each: its replica is promoted (about the node timeout, 1 s,
    later); publishes meanwhile raise and are published again; with `min_replicas=1` each
    publish that returned was on a replica, so every accepted event is delivered, in order
    per key, and the delivery tasks outlive the failover."""
    cluster = RedisCluster(masters=3, replicas=1).start()
    try:
        victim = cluster.node_for_key("interlock:{deliveries.plain}")
        router = interlock.load(str(write_project(tmp_path)), store=RedisStore(cluster.url, min_replicas=1))

        def kill() -> float:
            cluster.kill(victim)
            seconds = cluster.wait_failover(victim)
            # Until the old master is back as its replica, the promoted one has none: each
            # publish to it waits `replica_timeout` and raises (min_replicas is not met).
            cluster.restart(victim)
            return seconds

        fault = Fault(f"SIGKILL of master {victim}, its replica promoted, the old master back as a replica", kill)
        outcome = run_bounded(Workload(router, fault=fault.start(), drain_timeout=40).run())
        assert fault.error is None, fault.error
        log.info("failover took %.1f s", fault.result)
        assert cluster.node_for_key("interlock:{deliveries.plain}") != victim
        assert outcome.errors, "no publish raised: the master was not killed mid-stream"
        assert_invariants(router, outcome)
    finally:
        cluster.stop()


def test_slots_moved_while_events_flow_lose_nothing(tmp_path: Path) -> None:
    """The slots of the workload's streams move to other masters mid-stream, each paused
    half-way (its keys split between two masters: ASK for what moved, TRYAGAIN for a script
    whose keys are split): nothing accepted is lost, keys stay in order, and afterwards the
    store's commands reach the new masters."""
    cluster = RedisCluster(masters=3).start()
    try:
        router = interlock.load(str(write_project(tmp_path)), store=cluster.url)
        masters = cluster.masters()
        before = _masters_of(cluster)

        def move() -> int:
            moved = 0
            for stream, port in before.items():
                slot = cluster.keyslot(f"interlock:{{{stream}}}")
                if cluster.slot_owner(slot) != port:
                    continue  # (two streams in one slot: moved with the first)
                target = next(m.port for m in masters if m.port != port)

                def hold(migration: SlotMigration) -> None:
                    time.sleep(0.3)  # events flow while the slot is split

                moved += cluster.move_slot(slot, target, pause=hold)
            return moved

        fault = Fault("the workload's slots moved to other masters", move)
        outcome = run_bounded(Workload(router, fault=fault.start()).run())
        assert fault.error is None, fault.error
        assert fault.result > 0, "no key moved: the streams were empty when the fault came"
        after = _masters_of(cluster)
        assert all(after[stream] != before[stream] for stream in STREAMS), (before, after)
        assert_invariants(router, outcome)
    finally:
        cluster.stop()


def test_a_master_resharded_away_with_redis_cli_while_events_flow_loses_nothing(tmp_path: Path) -> None:
    """`redis-cli --cluster reshard` moves every slot of the master holding the unordered
    target's stream to another master mid-stream (thousands of slots, the streams' among
    them): nothing accepted is lost, keys stay in order, and that master ends with no slot."""
    cluster = RedisCluster(masters=3).start()
    try:
        router = interlock.load(str(write_project(tmp_path)), store=cluster.url)
        source = cluster.node_for_key("interlock:{deliveries.plain}")
        target = next(m.port for m in cluster.masters() if m.port != source)
        slots = next(m.slot_count for m in cluster.masters() if m.port == source)
        fault = Fault(f"redis-cli --cluster reshard of {slots} slots from {source} to {target}",
                      lambda: cluster.reshard(slots, source, target))
        outcome = run_bounded(Workload(router, fault=fault.start(), events=400).run())
        assert fault.error is None, fault.error
        log.info("resharded in %.1f s", fault.result)
        assert cluster.node_for_key("interlock:{deliveries.plain}") == target
        assert all(m.slot_count == 0 for m in cluster.masters() if m.port == source)
        assert_invariants(router, outcome)
    finally:
        cluster.stop()


PROJECT_A = """
dead_letter dlq
target a { mode async, dead_letter dlq }
route one { on one.x to a }
"""


def test_a_publish_redirected_by_moved_waits_for_the_replicas_of_where_it_ran(tmp_path: Path) -> None:
    """min_replicas=1: the slot of the target's stream moves to a master that has no replica;
    the next publish, sent to the old master, is redirected (MOVED) and runs on the new one,
    and must be waited for there (it raises), not on the connection it was first sent by
    (from a review: it returned, unreplicated)."""
    cluster = RedisCluster(masters=3, replicas=1).start()
    try:
        (tmp_path / "a.route").write_text(PROJECT_A)
        router = interlock.load(str(tmp_path / "a.route"), store=RedisStore(cluster.url, min_replicas=1))
        slot = cluster.keyslot("interlock:{deliveries.a}")
        owner = cluster.slot_owner(slot)
        other = next(m.port for m in cluster.masters() if m.port != owner)

        async def main() -> None:
            assert (await router.publish("one.x", {}, id="warm")).targets == {"a"}
            for replica in cluster.replicas_of(other):
                cluster.kill(replica.port)
            time.sleep(2.5)  # (the master notices its replica is gone)
            cluster.move_slot(slot, other)
            with pytest.raises(interlock.runtime.store.StoreUnavailable, match="reached 0 replica"):
                await router.publish("one.x", {}, id="after-move")
            await router.store.close()

        run_bounded(main())
    finally:
        cluster.stop()


def test_a_slot_held_half_migrated_neither_fails_publishes_nor_the_reader(tmp_path: Path) -> None:
    """The slot of the target's stream is held half-way through a migration for 1.5 s while
    events are published and delivered: publishes whose script meets TRYAGAIN are sent again
    until it ends (they raised at once), the blocking read that the move ends (UNBLOCKED) is
    a read that found nothing (the reader died, and the next publish raised DeliveryError),
    and everything is delivered."""
    cluster = RedisCluster(masters=3).start()
    try:
        (tmp_path / "a.route").write_text(PROJECT_A)
        router = interlock.load(str(tmp_path / "a.route"), store=cluster.url)
        got: list[int] = []
        router.handler("a")(lambda event: got.append(event.data["n"]))
        slot = cluster.keyslot("interlock:{deliveries.a}")
        other = next(m.port for m in cluster.masters() if m.port != cluster.slot_owner(slot))
        moving = threading.Event()

        def hold(migration: SlotMigration) -> None:
            moving.set()
            time.sleep(1.5)

        async def main() -> None:
            async with router:
                for n in range(20):
                    await router.publish("one.x", {"n": n})
                mover = threading.Thread(target=cluster.move_slot, args=(slot, other), kwargs={"pause": hold})
                mover.start()
                await asyncio.to_thread(moving.wait, 10)
                for n in range(20, 60):
                    await router.publish("one.x", {"n": n})  # raised TRYAGAIN at once
                    await asyncio.sleep(0.02)
                await asyncio.to_thread(mover.join, 30)
                await router.drain(20)
                assert engine_health(router) == []

        run_bounded(main())
        assert sorted(set(got)) == list(range(60))
    finally:
        cluster.stop()
