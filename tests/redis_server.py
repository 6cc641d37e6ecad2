"""A real `redis-server` process for fault-injection tests, and the faults to inject into it.

`RedisServer` starts a server of its own on a free loopback port (127.0.0.1 only) with a
temporary directory of its own, and can kill it (SIGKILL), restart it on the same port and
directory, and inject faults while a workload runs:

    server = RedisServer(appendonly=True, password="pw").start()
    fault = Fault("down 4 s", lambda: server.down_for(4)).start()  # waits for fault.trigger
    ...                     # the workload sets fault.trigger mid-stream, then waits for fault.cleared
    server.stop()

Fault injectors (`oom_window`, `kill_clients`, `down_for`) block for the fault's duration, so
they run in a background thread (`Fault`) while the asyncio workload runs in the main thread;
each uses a client of its own. Every server started is stopped by `stop()`, and at exit as a
fallback (`atexit`), so no test leaves a process behind.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

log = logging.getLogger("faults.redis")

HOST = "127.0.0.1"  # never any other address
START_TIMEOUT = 10.0  # seconds a (re)start may take, AOF loading included

_LIVE: set[RedisServer] = set()  # started and not stopped: killed at exit if a test did not


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One `redis-server` process on 127.0.0.1, persistence off unless `appendonly` (then
    `appendfsync always`), protected by `password` (requirepass) when given."""

    def __init__(self, *, appendonly: bool = False, password: str | None = None, port: int | None = None,
                 directory: str | Path | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:  # a failure, never a skip: `make redis-server` installs it
            raise RuntimeError("redis-server is not installed: `make redis-server` installs it")
        self.binary = binary
        self.appendonly = appendonly
        self.password = password
        self.port = port if port is not None else free_port()
        self._own_directory = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="interlock-faults-")) if directory is None else Path(directory)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0  # how many times the process was started (1 + restarts)

    # ---- addresses -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL of database 0, with the password in it when there is one."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{HOST}:{self.port}/0"

    @property
    def safe_url(self) -> str:
        """`url` with the password masked, for logs and messages."""
        auth = ":***@" if self.password else ""
        return f"redis://{auth}{HOST}:{self.port}/0"

    def client(self, **options: Any) -> redis.Redis:
        """A synchronous client of database 0 (replies decoded to str)."""
        options.setdefault("decode_responses", True)
        options.setdefault("socket_timeout", 5)
        return redis.Redis(host=HOST, port=self.port, db=0, password=self.password, **options)

    # ---- the process -------------------------------------------------------------------

    def _command(self) -> list[str]:
        command = [self.binary, "--port", str(self.port), "--bind", HOST, "--protected-mode", "yes",
                   "--dir", str(self.directory), "--save", "", "--daemonize", "no",
                   "--logfile", str(self.directory / "redis.log")]
        if self.appendonly:
            command += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            command += ["--appendonly", "no"]
        if self.password:
            command += ["--requirepass", self.password]
        return command

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> RedisServer:
        """Start the process and wait until it answers PING and has loaded its data."""
        if self.alive:
            raise RuntimeError(f"redis-server on port {self.port} is running already")
        self.process = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        _LIVE.add(self)
        self.starts += 1
        self._wait_ready()
        log.info("redis-server %s up (pid %d, start %d, appendonly %s)", self.safe_url, self.process.pid,
                 self.starts, "yes" if self.appendonly else "no")
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        client = self.client(socket_timeout=1, socket_connect_timeout=1)
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} exited with code "
                                       f"{self.process.returncode} at start: {self.log_tail()}")
                try:
                    if client.ping() and str(client.info("persistence").get("loading", 0)) == "0":
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                    pass  # not listening yet, or LOADING
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} not ready within {START_TIMEOUT} s: "
                                       f"{self.log_tail()}")
                time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save; what `appendfsync always` wrote survives."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        log.info("redis-server %s killed (SIGKILL)", self.safe_url)

    def restart(self) -> RedisServer:
        """Start again on the same port and directory (after `kill`), ready once PING answers
        and loading has finished."""
        self.kill()
        return self.start()

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and remove its directory if it made it."""
        _LIVE.discard(self)
        process, self.process = self.process, None
        if process is not None:
            terminate(process)
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            return " | ".join((self.directory / "redis.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def info(self, section: str) -> dict[str, Any]:
        with self.client() as client:
            return dict(client.info(section))

    def oom_rejections(self) -> int:
        """How many commands the server has refused with OOM since it started (INFO errorstats)."""
        stat = self.info("errorstats").get("errorstat_OOM")
        return int(stat["count"]) if isinstance(stat, dict) else 0

    # ---- faults (each blocks for its duration: run them in a `Fault`) --------------------

    def oom_window(self, seconds: float) -> int:
        """`maxmemory 1` with `noeviction` for `seconds`, then `maxmemory 0` (and the old policy)
        again: every command that may grow memory is refused with OOM meanwhile. Returns how
        many commands the server refused with OOM in the window."""
        with self.client() as client:
            policy = client.config_get("maxmemory-policy")["maxmemory-policy"]
            before = self.oom_rejections()
            client.config_set("maxmemory-policy", "noeviction")
            client.config_set("maxmemory", 1)
            log.info("redis %s: out of memory (maxmemory 1, noeviction) for %.1f s", self.safe_url, seconds)
            try:
                time.sleep(seconds)
            finally:
                client.config_set("maxmemory", 0)
                client.config_set("maxmemory-policy", policy)
            refused = self.oom_rejections() - before
            log.info("redis %s: memory back (maxmemory 0); %d commands were refused with OOM", self.safe_url, refused)
            return refused

    def kill_clients(self, every: float = 0.05, for_seconds: float = 3.0) -> int:
        """`CLIENT KILL TYPE normal SKIPME yes` every `every` seconds for `for_seconds`: every
        connection but the injector's own is dropped, again and again. Returns how many
        connections were killed in all."""
        killed = rounds = 0
        deadline = time.monotonic() + for_seconds
        with self.client() as client:
            while time.monotonic() < deadline:
                killed += int(client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))
                rounds += 1
                time.sleep(every)
        log.info("redis %s: %d connections killed in %d rounds over %.1f s", self.safe_url, killed, rounds,
                 for_seconds)
        return killed

    def down_for(self, seconds: float) -> None:
        """SIGKILL the server, wait `seconds`, start it again (same port and directory)."""
        self.kill()
        time.sleep(seconds)
        self.start()


class Fault:
    """A fault injector run in a background thread: it waits for `trigger` (set by the
    workload mid-stream), runs `inject`, then sets `cleared`. `started_at` and `cleared_at`
    are `time.monotonic()` readings; `result` is what `inject` returned, `error` what it raised."""

    def __init__(self, name: str, inject: Callable[[], Any], *, wait_for_trigger: float = 60.0) -> None:
        self.name = name
        self.inject = inject
        self.wait_for_trigger = wait_for_trigger
        self.trigger = threading.Event()
        self.cleared = threading.Event()
        self.started_at: float | None = None
        self.cleared_at: float | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name=f"fault: {name}", daemon=True)

    def start(self) -> Fault:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            if not self.trigger.wait(self.wait_for_trigger):
                raise RuntimeError(f"fault `{self.name}` was never triggered")
            if self._cancelled:
                return
            self.started_at = time.monotonic()
            log.info("fault `%s` starts", self.name)
            self.result = self.inject()
        except BaseException as exc:  # reported by the workload; the thread must not die silently
            self.error = exc
            log.exception("fault `%s` failed", self.name)
        finally:
            self.cleared_at = time.monotonic()
            self.cleared.set()
            log.info("fault `%s` cleared", self.name)

    def join(self, timeout: float = 30.0) -> None:
        """Wait for the fault to end; one that was never triggered is called off instead."""
        if not self.trigger.is_set():
            self._cancelled = True
            self.trigger.set()
        self._thread.join(timeout)


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_LIVE):
        server.stop()


def terminate(process: subprocess.Popen[Any]) -> None:
    """End a child process: SIGTERM, then SIGKILL if it is still there after 5 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
