"""A real Redis Cluster on loopback for tests, and the faults to inject into it.

`RedisCluster` starts `masters * (1 + replicas)` `redis-server` processes in cluster mode, each
on a free 127.0.0.1 port whose cluster bus port (port + 10000) is free too, each in a temporary
directory of its own (`ClusterNode`, a `redis_server.RedisServer`), joins them with
`redis-cli --cluster create`, and waits until every node says `cluster_state:ok` and all of
them agree on who serves each of the 16384 slots:

    cluster = RedisCluster(masters=3, replicas=1).start()
    client = cluster.cluster_client()           # a redis.cluster.RedisCluster on startup_nodes
    port = cluster.node_for_key("orders")       # the master serving the key right now
    cluster.kill(port)
    seconds = cluster.wait_failover(port)       # a replica promoted, cluster_state:ok again
    cluster.restart(port)                       # rejoins with its nodes.conf, as a replica
    cluster.reshard(100, from_port, to_port)    # redis-cli --cluster reshard, live
    cluster.move_slot(slot, to_port, pause=hold)  # by hand; `hold` runs mid-migration (ASK)
    cluster.stop()

The cluster's topology is always read from a live node (CLUSTER NODES), never remembered: after
a failover or a reshard, `masters()`, `replicas_of()` and `node_for_key()` tell what the cluster
says now. The node timeout is short (1 s by default) so that failover takes seconds. Fault
injectors (`kill_clients`, `down_for`) block for the fault's duration, like redis_server.py's,
so they run in a `redis_server.Fault`; the per-node ones (`oom_window`) are on `node(port)`.
Every cluster started is stopped by `stop()`, and at exit as a fallback (`atexit`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.cluster
from redis_server import HOST, START_TIMEOUT, RedisServer

log = logging.getLogger("faults.redis.cluster")

SLOTS = 16384  # hash slots of a Redis Cluster
BUS_OFFSET = 10000  # the cluster bus listens on port + 10000
READY_TIMEOUT = 30.0  # seconds for the cluster to agree after create, restart, reshard
POLL = 0.05  # seconds between two looks at the cluster while waiting

_LIVE: set[RedisCluster] = set()  # started and not stopped: stopped at exit if a test did not
_TAKEN: set[int] = set()  # ports handed out to clusters of this process and not released


# ---- clients of a store URL (one server or a cluster) ---------------------------------------


def client_for(url: str, **options: Any) -> Any:
    """A redis-py client of a store URL: `redis.Redis` for `redis://`, a
    `redis.cluster.RedisCluster` for `redis+cluster://` (the tests' own reads and writes)."""
    from interlock.runtime.redis_nodes import parse_cluster_url

    cluster = parse_cluster_url(url)
    if cluster is None:
        return redis.Redis.from_url(url, **options)
    return redis.cluster.RedisCluster.from_url(cluster.node_url(*cluster.seeds[0]), **options)


def async_client_for(url: str, **options: Any) -> Any:
    """`client_for` in redis-py's asyncio flavour."""
    import redis.asyncio
    import redis.asyncio.cluster

    from interlock.runtime.redis_nodes import parse_cluster_url

    cluster = parse_cluster_url(url)
    if cluster is None:
        return redis.asyncio.Redis.from_url(url, **options)
    return redis.asyncio.cluster.RedisCluster.from_url(cluster.node_url(*cluster.seeds[0]), **options)


def flush(url: str) -> None:
    """Empty the store a URL names: its database, or every master of its cluster."""
    client = client_for(url)
    try:
        if isinstance(client, redis.cluster.RedisCluster):
            client.flushall(target_nodes=redis.cluster.RedisCluster.PRIMARIES)  # type: ignore[no-untyped-call]
        else:
            client.flushdb()
    finally:
        client.close()


# ---- ports -------------------------------------------------------------------------------


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _port_range() -> tuple[int, int]:
    """Ports whose bus port (+10000) stays below the kernel's ephemeral range, which
    `redis_server.free_port()` and every outgoing connection draw from."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    top = min(low, 65536) - BUS_OFFSET
    return (10000, top) if top - 10000 >= 1000 else (20000, 65536 - BUS_OFFSET)


def cluster_port() -> int:
    """A port free on the loopback interface right now, with its cluster bus port free too."""
    low, high = _port_range()
    for _ in range(1000):
        port = random.randrange(low, high)
        if port not in _TAKEN and _bindable(port) and _bindable(port + BUS_OFFSET):
            _TAKEN.add(port)
            return port
    raise RuntimeError(f"no free port pair (port, port + {BUS_OFFSET}) found in {low}-{high}")


# ---- what the cluster says ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One line of CLUSTER NODES: a node as some live node of the cluster sees it.
    `slots` are inclusive (first, last) ranges; `migrating`/`importing` are (slot, node id)."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    config_epoch: int
    connected: bool
    slots: tuple[tuple[int, int], ...]
    migrating: tuple[tuple[int, str], ...] = ()
    importing: tuple[tuple[int, str], ...] = ()

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def is_replica(self) -> bool:
        return "slave" in self.flags

    @property
    def failed(self) -> bool:
        """Flagged FAIL (agreed) or PFAIL (suspected) by the node asked."""
        return "fail" in self.flags or "fail?" in self.flags

    @property
    def slot_count(self) -> int:
        return sum(last - first + 1 for first, last in self.slots)

    def serves(self, slot: int) -> bool:
        return any(first <= slot <= last for first, last in self.slots)


def parse_cluster_nodes(text: str) -> list[NodeInfo]:
    """The nodes of a CLUSTER NODES reply (one line per node)."""
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split(",")[0]  # ip:port@cport[,hostname]
        port = int(address.split("@")[0].rsplit(":", 1)[1])
        slots: list[tuple[int, int]] = []
        migrating: list[tuple[int, str]] = []
        importing: list[tuple[int, str]] = []
        for token in fields[8:]:
            if token.startswith("["):  # [slot->-id] migrating, [slot-<-id] importing
                slot, arrow, other = token.strip("[]").partition("->-")
                if arrow:
                    migrating.append((int(slot), other))
                else:
                    slot, _, other = token.strip("[]").partition("-<-")
                    importing.append((int(slot), other))
            else:
                first, _, last = token.partition("-")
                slots.append((int(first), int(last or first)))
        nodes.append(NodeInfo(node_id=fields[0], port=port, flags=frozenset(fields[2].split(",")),
                              master_id=None if fields[3] == "-" else fields[3], config_epoch=int(fields[6]),
                              connected=fields[7] == "connected", slots=tuple(slots),
                              migrating=tuple(migrating), importing=tuple(importing)))
    return nodes


@dataclass(frozen=True, slots=True)
class SlotMigration:
    """What `RedisCluster.move_slot` passes to its `pause` hook, mid-migration: the slot is
    MIGRATING on `source_port` and IMPORTING on `target_port`; `moved` keys are on the target
    already (a client gets ASK for them), `remaining` ones still on the source."""

    slot: int
    source_port: int
    target_port: int
    moved: tuple[bytes, ...]
    remaining: tuple[bytes, ...]


# ---- the processes --------------------------------------------------------------------------


class ClusterNode(RedisServer):
    """One `redis-server` of a cluster: a `RedisServer` with cluster mode on, `nodes.conf` in its
    directory (so a restart rejoins as the same node), protected mode off unless a password."""

    def __init__(self, *, port: int, directory: Path, password: str | None, node_timeout_ms: int,
                 appendonly: bool = False) -> None:
        super().__init__(appendonly=appendonly, password=password, port=port, directory=directory)
        self.node_timeout_ms = node_timeout_ms
        self.node_id = ""  # CLUSTER MYID once started (kept in nodes.conf across restarts)
        self.killed_at: float | None = None  # time.monotonic() of the last `RedisCluster.kill`
        self._log_offset = 0

    def _wait_ready(self) -> None:
        """Wait for this process's own "Ready to accept connections" (or its exit) before
        `RedisServer`'s PING: a port taken since it was found free must fail at once, not
        time out on, or be answered by, whatever listens there now."""
        deadline = time.monotonic() + START_TIMEOUT
        log_file = self.directory / "redis.log"
        while self.process is not None and self.process.poll() is None and time.monotonic() < deadline:
            try:
                with log_file.open("rb") as lines:
                    lines.seek(self._log_offset)
                    if b"Ready to accept connections" in lines.read():
                        break
            except OSError:
                pass  # not created yet
            time.sleep(0.01)
        super()._wait_ready()

    def _command(self) -> list[str]:
        command = super()._command()
        command[command.index("--protected-mode") + 1] = "yes" if self.password else "no"
        command += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    # a replica syncs at once, not after the default 5 s wait for more replicas
                    "--repl-diskless-sync-delay", "0"]
        if self.password:
            command += ["--masterauth", self.password]  # replicas authenticate to their master
        return command

    def start(self) -> ClusterNode:
        log_file = self.directory / "redis.log"
        self._log_offset = log_file.stat().st_size if log_file.exists() else 0  # a restart appends
        super().start()
        with self.client() as client:
            self.node_id = str(client.execute_command("CLUSTER", "MYID"))
        return self


class RedisCluster:
    """`masters` masters with `replicas` replicas each, all on 127.0.0.1, persistence off unless
    `appendonly`, every node protected by `password` (requirepass, masterauth) when given."""

    def __init__(self, masters: int = 3, replicas: int = 0, password: str | None = None, *,
                 node_timeout_ms: int = 1000, appendonly: bool = False,
                 ready_timeout: float = READY_TIMEOUT) -> None:
        if masters < 3:
            raise ValueError("a Redis Cluster needs at least 3 masters (redis-cli --cluster create refuses fewer)")
        if replicas < 0:
            raise ValueError("replicas must be 0 or more")
        binaries = {name: shutil.which(name) for name in ("redis-server", "redis-cli")}
        missing = [name for name, path in binaries.items() if path is None]
        if missing:  # a failure, never a skip: `make redis-server` installs both
            raise RuntimeError(f"{' and '.join(missing)} not installed: `make redis-server` installs them")
        self.cli = str(binaries["redis-cli"])
        self.masters_wanted = masters
        self.replicas_wanted = replicas
        self.password = password
        self.node_timeout_ms = node_timeout_ms
        self.appendonly = appendonly
        self.ready_timeout = ready_timeout
        self.directory: Path | None = None
        self._nodes: dict[int, ClusterNode] = {}  # by port, in creation order
        self._first_masters: list[int] = []  # masters right after create, by slot order

    # ---- addresses ---------------------------------------------------------------------

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """(host, port) of the masters as created (not updated by failovers: any node will do
        for a client to discover the cluster)."""
        return [(HOST, port) for port in self._first_masters]

    @property
    def url(self) -> str:
        """`redis+cluster://[:password@]127.0.0.1:P1,127.0.0.1:P2,...` over `startup_nodes`."""
        return self._url(self.password)

    @property
    def safe_url(self) -> str:
        """`url` with the password masked, for logs and messages."""
        return self._url("***" if self.password else None)

    def _url(self, password: str | None) -> str:
        auth = f":{password}@" if password else ""
        return "redis+cluster://" + auth + ",".join(f"{host}:{port}" for host, port in self.startup_nodes)

    @property
    def urls(self) -> list[str]:
        """One plain `redis://` URL (database 0) per node of `startup_nodes`."""
        auth = f":{self.password}@" if self.password else ""
        return [f"redis://{auth}{host}:{port}/0" for host, port in self.startup_nodes]

    @property
    def ports(self) -> list[int]:
        """Every node's port, running or not, in creation order."""
        return list(self._nodes)

    def node(self, port: int) -> ClusterNode:
        """The process listening on `port` (its own `client()`, `oom_window()`, `log_tail()` ...)."""
        try:
            return self._nodes[port]
        except KeyError:
            raise KeyError(f"no node of this cluster on port {port}") from None

    def client(self, port: int, **options: Any) -> redis.Redis:
        """A plain client of one node (no redirections followed)."""
        return self.node(port).client(**options)

    def cluster_client(self, **options: Any) -> redis.cluster.RedisCluster:
        """A redis-py cluster client on `startup_nodes` (replies decoded to str)."""
        options.setdefault("decode_responses", True)
        options.setdefault("socket_timeout", 5)
        nodes = [redis.cluster.ClusterNode(host, port)  # type: ignore[no-untyped-call]
                 for host, port in self.startup_nodes]
        return redis.cluster.RedisCluster(startup_nodes=nodes, password=self.password, **options)

    # ---- start and stop ----------------------------------------------------------------

    def start(self) -> RedisCluster:
        """Start every node, create the cluster, and wait until it is ready (`wait_stable`)."""
        if self._nodes:
            raise RuntimeError("this cluster was started already")
        started = time.monotonic()
        self.directory = Path(tempfile.mkdtemp(prefix="interlock-cluster-"))
        _LIVE.add(self)
        try:
            for index in range(self.masters_wanted * (1 + self.replicas_wanted)):
                node = self._start_node(self.directory / f"node-{index}")
                self._nodes[node.port] = node
            self._create()
            self.wait_stable(self.ready_timeout, what="cluster not ready after create")
            self._first_masters = [node.port for node in sorted(self.masters(), key=lambda n: n.slots[0])]
        except BaseException:
            self.stop()
            raise
        log.info("redis cluster %s up: %d masters, %d replicas each, in %.2f s", self.safe_url,
                 self.masters_wanted, self.replicas_wanted, time.monotonic() - started)
        return self

    def _start_node(self, directory: Path) -> ClusterNode:
        directory.mkdir()
        for attempt in range(5):  # a port found free may be taken before redis-server binds it
            node = ClusterNode(port=cluster_port(), directory=directory, password=self.password,
                               node_timeout_ms=self.node_timeout_ms, appendonly=self.appendonly)
            try:
                return node.start()
            except RuntimeError:
                node.stop()
                _TAKEN.discard(node.port)
                if attempt == 4 or "in use" not in node.log_tail(20):
                    raise
                log.info("port %d (or its bus port) taken before redis-server bound it; another", node.port)
                for leftover in directory.iterdir():
                    leftover.unlink()
        raise AssertionError("unreachable")

    def _create(self) -> None:
        addresses = [f"{HOST}:{port}" for port in self._nodes]
        output = self._redis_cli("--cluster", "create", *addresses, "--cluster-replicas",
                                 str(self.replicas_wanted), "--cluster-yes", timeout=self.ready_timeout)
        if "[OK] All 16384 slots covered" not in output:
            raise RuntimeError(f"redis-cli --cluster create did not cover all slots: {_tail(output)}")

    def _redis_cli(self, *arguments: str, timeout: float) -> str:
        """Run redis-cli (authenticated when there is a password); its output, or RuntimeError."""
        auth = ["-a", self.password, "--no-auth-warning"] if self.password else []
        shown = " ".join(arguments)
        try:
            result = subprocess.run([self.cli, *auth, *arguments], stdin=subprocess.DEVNULL, capture_output=True,
                                    text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"redis-cli {shown} did not finish within {timeout} s") from exc
        output = result.stdout + result.stderr
        if result.returncode != 0 or "[ERR]" in output:
            raise RuntimeError(f"redis-cli {shown} failed (exit {result.returncode}): {_tail(output)}")
        return output

    def stop(self) -> None:
        """SIGKILL every node (nothing of theirs is kept) and remove the cluster's directory."""
        _LIVE.discard(self)
        for node in self._nodes.values():
            if node.alive and node.process is not None:
                os.kill(node.process.pid, signal.SIGKILL)
        for node in self._nodes.values():
            node.stop()  # reaps the process, forgets it at exit
            _TAKEN.discard(node.port)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    # ---- topology, as a live node sees it now -------------------------------------------

    def _live(self) -> list[ClusterNode]:
        return [node for node in self._nodes.values() if node.alive]

    def nodes(self, port: int | None = None) -> list[NodeInfo]:
        """Every node as `port` sees it (CLUSTER NODES), or as the first live node answering."""
        asked = [self.node(port)] if port is not None else self._live()
        errors = []
        for node in asked:
            try:
                with node.client(socket_timeout=2, socket_connect_timeout=1) as client:
                    return parse_cluster_nodes(str(client.execute_command("CLUSTER", "NODES")))
            except redis.RedisError as exc:
                errors.append(f"{node.port}: {exc}")
        raise RuntimeError(f"no node of the cluster answers CLUSTER NODES: {'; '.join(errors) or 'none running'}")

    def masters(self) -> list[NodeInfo]:
        """The masters as the cluster sees them now, by port: those serving slots (a dead one
        too, until a replica takes over) or not flagged failing."""
        return sorted((node for node in self.nodes() if node.is_master and (node.slots or not node.failed)),
                      key=lambda node: node.port)

    def replicas_of(self, master: NodeInfo | int) -> list[NodeInfo]:
        """The replicas of `master` (a NodeInfo or a port) as the cluster sees them now, failed
        ones included (see `NodeInfo.failed`)."""
        master_id = master.node_id if isinstance(master, NodeInfo) else self.node(master).node_id
        return sorted((node for node in self.nodes() if node.is_replica and node.master_id == master_id),
                      key=lambda node: node.port)

    def keyslot(self, key: str | bytes) -> int:
        """The hash slot of `key` (CLUSTER KEYSLOT on a live node)."""
        for node in self._live():
            try:
                with node.client(socket_timeout=2, socket_connect_timeout=1) as client:
                    return int(client.execute_command("CLUSTER", "KEYSLOT", key))
            except redis.ConnectionError:
                continue
        raise RuntimeError("no node of the cluster answers CLUSTER KEYSLOT")

    def slot_owner(self, slot: int) -> int:
        """The port of the master serving `slot` now (a slot mid-migration: the source)."""
        for node in self.nodes():
            if node.is_master and node.serves(slot):
                return node.port
        raise RuntimeError(f"no master serves slot {slot}")

    def node_for_key(self, key: str | bytes) -> int:
        """The port of the master serving `key` now."""
        return self.slot_owner(self.keyslot(key))

    # ---- waiting for the cluster ----------------------------------------------------------

    def wait_stable(self, timeout: float | None = None, *, what: str = "cluster not stable") -> float:
        """Wait until every live node says `cluster_state:ok`, sees all 16384 slots served by
        running masters, no slot open (migrating/importing), no running node failing, and all
        agree on the slot map and roles; and every running replica's link to its master is up.
        Seconds it took, or RuntimeError naming what was not ready (a master killed without a
        replica to take over is never stable: restart it)."""
        return self._wait(what, self.ready_timeout if timeout is None else timeout, replica_links=True)

    def wait_failover(self, dead_port: int, timeout: float = 30.0) -> float:
        """After `kill(dead_port)` of a master: wait until none of its slots is served by it any
        more (a replica promoted) and the live nodes agree, with `cluster_state:ok`, as in
        `wait_stable` but for replica links (the promoted replica's siblings may still be
        syncing from it). Seconds since the kill (since the call if the node was not killed
        through `kill`)."""
        node = self.node(dead_port)
        if node.alive:
            raise RuntimeError(f"node {dead_port} is running: kill it first")
        if any(seen.node_id == node.node_id and seen.is_replica for seen in self.nodes()):
            raise ValueError(f"node {dead_port} is a replica: there is no failover to wait for")
        since = node.killed_at if node.killed_at is not None else time.monotonic()
        self._wait(f"no failover of master {dead_port}", timeout, replica_links=False)
        seconds = time.monotonic() - since
        log.info("redis cluster: master %d failed over in %.2f s", dead_port, seconds)
        return seconds

    def _wait(self, what: str, timeout: float, *, replica_links: bool) -> float:
        started = time.monotonic()
        deadline = started + timeout
        while True:
            problems = self._problems(replica_links=replica_links)
            if not problems:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
                raise RuntimeError(f"{what} within {timeout} s: {shown}")
            time.sleep(POLL)

    def _port_of(self, node_id: str) -> int | str:
        return next((node.port for node in self._nodes.values() if node.node_id == node_id), node_id[:8])

    def _problems(self, *, replica_links: bool) -> list[str]:
        """What keeps the cluster from being stable now (nothing: it is)."""
        live = self._live()
        if not live:
            return ["no node is running"]
        live_ids = {node.node_id: node.port for node in live}
        problems: list[str] = []
        pictures: dict[Any, list[int]] = {}  # what each node sees -> the nodes that see it
        for node in live:
            try:
                with node.client(socket_timeout=2, socket_connect_timeout=1) as client:
                    state = _field(str(client.execute_command("CLUSTER", "INFO")), "cluster_state")
                    view = parse_cluster_nodes(str(client.execute_command("CLUSTER", "NODES")))
                    me = next((seen for seen in view if "myself" in seen.flags), None)
                    link = (str(client.info("replication").get("master_link_status"))
                            if replica_links and me is not None and me.is_replica else "up")
            except redis.RedisError as exc:
                problems.append(f"{node.port}: not answering ({exc})")
                continue
            if state != "ok":
                problems.append(f"{node.port}: cluster_state:{state}")
            if link != "up":
                problems.append(f"{node.port}: replica link to its master {link}")
            ranges = sorted((first, last, seen.node_id) for seen in view if seen.is_master
                            for first, last in seen.slots)
            covered = sum(last - first + 1 for first, last, _ in ranges)
            if covered != SLOTS:
                problems.append(f"{node.port}: sees {covered} of {SLOTS} slots served")
            for seen in view:
                for slot, other in seen.migrating:
                    problems.append(f"{node.port}: sees slot {slot} migrating from {seen.port} to {other[:8]}")
                for slot, other in seen.importing:
                    problems.append(f"{node.port}: sees slot {slot} importing into {seen.port} from {other[:8]}")
            dead = {owner for _, _, owner in ranges if owner not in live_ids}
            if dead:
                ports = ",".join(str(self._port_of(owner)) for owner in sorted(dead))
                problems.append(f"{node.port}: sees slots served by {ports}, not running")
            by_id = {seen.node_id: seen for seen in view}
            for node_id, port in live_ids.items():
                known = by_id.get(node_id)
                if known is None:
                    problems.append(f"{node.port}: does not know node {port}")
                elif known.failed or "handshake" in known.flags or "noaddr" in known.flags:
                    problems.append(f"{node.port}: sees node {port} as {','.join(sorted(known.flags))}")
            roles = tuple(sorted((node_id, by_id[node_id].is_master, by_id[node_id].master_id)
                                 for node_id in live_ids if node_id in by_id))
            pictures.setdefault((tuple(ranges), roles), []).append(node.port)
        if len(pictures) > 1:
            groups = " vs ".join(",".join(map(str, ports)) for ports in pictures.values())
            problems.append(f"nodes disagree on the slot map or roles: {groups}")
        return problems

    # ---- faults ------------------------------------------------------------------------------

    def kill(self, port: int) -> None:
        """SIGKILL one node (master or replica); the others notice after the node timeout."""
        node = self.node(port)
        if node.alive:
            node.killed_at = time.monotonic()
        node.kill()

    def restart(self, port: int, *, wait: bool = True, timeout: float | None = None) -> ClusterNode:
        """Start a killed node again on the same port and directory: it rejoins with its
        nodes.conf (a failed-over master comes back as a replica of its successor). With
        `wait`, returns once the cluster is stable again (`wait_stable`) with the node in it."""
        node = self.node(port)
        node.kill()
        node.start()
        if wait:
            self.wait_stable(timeout, what=f"cluster not stable after node {port} restarted")
        return node

    def down_for(self, port: int, seconds: float) -> None:
        """SIGKILL a node, wait `seconds`, start it again and wait until the cluster is stable."""
        self.kill(port)
        time.sleep(seconds)
        self.restart(port)

    def kill_clients(self, every: float = 0.05, for_seconds: float = 3.0) -> int:
        """`CLIENT KILL TYPE normal SKIPME yes` on every live node, every `every` seconds for
        `for_seconds` (one round when 0): client connections drop, replication and cluster bus
        links stay. Returns how many connections were killed in all."""
        killed = rounds = 0
        deadline = time.monotonic() + for_seconds
        with contextlib.ExitStack() as stack:
            clients = [stack.enter_context(node.client()) for node in self._live()]
            while True:
                for client in clients:
                    with contextlib.suppress(redis.ConnectionError):  # a node killed meanwhile
                        killed += int(client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))
                rounds += 1
                if time.monotonic() + every > deadline:
                    break
                time.sleep(every)
        log.info("redis cluster %s: %d connections killed on %d nodes in %d rounds over %.1f s", self.safe_url,
                 killed, len(clients), rounds, for_seconds)
        return killed

    # ---- moving slots -----------------------------------------------------------------------

    def _live_master(self, port: int) -> NodeInfo:
        for seen in self.nodes():
            if seen.port == port and seen.is_master and not seen.failed and self.node(port).alive:
                return seen
        raise ValueError(f"node {port} is not a live master of the cluster")

    def reshard(self, slots: int, from_port: int, to_port: int, *, timeout: float = 120.0) -> float:
        """Move `slots` slots (and their keys) from one master to another with
        `redis-cli --cluster reshard`, the cluster live; returns once the cluster is stable
        again, with the seconds it took."""
        self.wait_stable(what="cluster not stable before reshard")
        source, target = self._live_master(from_port), self._live_master(to_port)
        if not 0 < slots <= source.slot_count:
            raise ValueError(f"node {from_port} serves {source.slot_count} slots: cannot move {slots}")
        started = time.monotonic()
        self._redis_cli("--cluster", "reshard", f"{HOST}:{from_port}", "--cluster-from", source.node_id,
                        "--cluster-to", target.node_id, "--cluster-slots", str(slots), "--cluster-yes",
                        timeout=timeout)
        self.wait_stable(what=f"cluster not stable after resharding {slots} slots from {from_port} to {to_port}")
        seconds = time.monotonic() - started
        log.info("redis cluster: %d slots moved from %d to %d in %.2f s", slots, from_port, to_port, seconds)
        return seconds

    def move_slot(self, slot: int, to_port: int, pause: Callable[[SlotMigration], object] | None = None, *,
                  batch: int = 100, timeout_ms: int = 5000) -> int:
        """Move one slot with its keys to master `to_port` by hand: SETSLOT IMPORTING on the
        target, MIGRATING on the source, MIGRATE half the keys, call `pause` (clients now get
        ASK for the moved keys, and for new keys of the slot), MIGRATE the rest (keys written
        to the source meanwhile too), SETSLOT NODE on the target, the source and every other
        master. The move is completed even if `pause` raises. Returns how many keys moved."""
        if not 0 <= slot < SLOTS:
            raise ValueError(f"no slot {slot}")
        self.wait_stable(what="cluster not stable before moving a slot")
        target = self._live_master(to_port)
        source = self._live_master(self.slot_owner(slot))
        if source.port == target.port:
            raise ValueError(f"slot {slot} is on node {to_port} already")
        moved: list[bytes] = []
        with self.client(source.port, decode_responses=False) as source_client, \
                self.client(target.port, decode_responses=False) as target_client:
            target_client.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
            source_client.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
            count = int(source_client.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot))
            keys: list[bytes] = list(source_client.execute_command("CLUSTER", "GETKEYSINSLOT", slot, max(count, 1)))
            half = keys[:len(keys) // 2]
            try:
                for start in range(0, len(half), batch):
                    moved += self._migrate(source_client, target.port, half[start:start + batch], timeout_ms)
                if pause is not None:
                    pause(SlotMigration(slot=slot, source_port=source.port, target_port=target.port,
                                        moved=tuple(moved), remaining=tuple(keys[len(half):])))
            finally:
                while True:
                    rest = list(source_client.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch))
                    if not rest:
                        break
                    moved += self._migrate(source_client, target.port, rest, timeout_ms)
                target_client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
                source_client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
                for other in self.masters():
                    if other.port not in (source.port, target.port) and self.node(other.port).alive:
                        with self.client(other.port) as client:
                            client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        self.wait_stable(what=f"cluster not stable after moving slot {slot} to {to_port}")
        log.info("redis cluster: slot %d moved from %d to %d with %d keys", slot, source.port, target.port,
                 len(moved))
        return len(moved)

    def _migrate(self, source: redis.Redis, target_port: int, keys: Sequence[bytes], timeout_ms: int) -> list[bytes]:
        if not keys:
            return []
        auth: list[str] = ["AUTH", self.password] if self.password else []
        source.execute_command(  # type: ignore[no-untyped-call]
            "MIGRATE", HOST, target_port, "", 0, timeout_ms, *auth, "KEYS", *keys)
        return list(keys)


def _field(info: str, name: str) -> str:
    """One `name:value` field of a CLUSTER INFO reply ('' when absent)."""
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    return ""


def _tail(output: str, lines: int = 8) -> str:
    return " | ".join(line for line in output.strip().splitlines()[-lines:] if line.strip()) or "(no output)"


@atexit.register
def _stop_leftovers() -> None:
    for cluster in list(_LIVE):
        cluster.stop()
