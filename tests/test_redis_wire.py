"""The Redis store's pipelined connection (runtime/redis_wire.py), against a real server:
errors reach their own command only; a lost connection sends idempotent commands again and
fails the others; a silent server is given up after the command timeout; closing fails what
waits."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import redis
from redis import exceptions as rx

from interlock.runtime.redis_wire import Wire


def _wire(url: str, *, retries: int = 3, command_timeout: float = 5.0) -> Wire:
    return Wire(url, shown=url, connect_timeout=2.0, command_timeout=command_timeout, retries=retries)


def _call(wire: Wire, *args: Any, idempotent: bool = True) -> asyncio.Future[Any]:
    return wire.call(args, idempotent=idempotent)


def test_commands_of_one_write_each_get_their_own_reply_or_error(redis_url: str) -> None:
    key = f"wire-{uuid.uuid4().hex}"

    async def main() -> list[Any]:
        wire = _wire(redis_url)
        try:
            calls = [_call(wire, "SET", key, "v"), _call(wire, "XADD", key, "*", "f", "v"),  # the wrong type
                     _call(wire, "GET", key), _call(wire, "SET", key, object()),  # cannot be packed
                     _call(wire, "ECHO", "last")]
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await wire.close()

    ok, wrong, got, unpackable, last = asyncio.run(main())
    assert ok == "OK" and got == "v" and last == "last"
    assert isinstance(wrong, rx.ResponseError) and "WRONGTYPE" in str(wrong)
    assert isinstance(unpackable, rx.DataError)


def test_a_connection_killed_mid_command_sends_idempotent_commands_again(redis_url: str) -> None:
    """`CLIENT KILL` while a blocking read and a slow script are in flight: the read (not
    idempotent) fails with the connection's error; the script is sent again and answers."""
    key = f"wire-{uuid.uuid4().hex}"
    admin = redis.Redis.from_url(redis_url)
    admin.xgroup_create(key, "g", "0", mkstream=True)

    async def main() -> tuple[Any, Any]:
        reader, wire = _wire(redis_url, retries=0), _wire(redis_url)
        try:
            read = _call(reader, "XREADGROUP", "GROUP", "g", "c", "BLOCK", 5000, "STREAMS", key, ">",
                         idempotent=False)
            await asyncio.sleep(0.2)  # the read waits on the server
            admin.client_kill_filter(_type="normal", skipme=True)
            got = await asyncio.gather(read, return_exceptions=True)
            echoed = await _call(wire, "ECHO", "after")  # a new connection, made when needed
            return got[0], echoed
        finally:
            await wire.close()
            await reader.close()

    read, echoed = asyncio.run(main())
    assert isinstance(read, rx.ConnectionError), read
    assert echoed == "after"
    admin.close()


def test_a_reply_lost_with_its_connection_is_asked_again(redis_url: str) -> None:
    """An idempotent command whose connection dies before its reply comes (a blocking pop
    ahead of it holds the connection on the server) is sent again on a new connection and
    answered."""
    admin = redis.Redis.from_url(redis_url)
    empty = f"wire-{uuid.uuid4().hex}"

    async def main() -> Any:
        wire = _wire(redis_url)
        try:
            sleeping = _call(wire, "BLPOP", empty, "0.3")
            echo = _call(wire, "ECHO", "again")
            await asyncio.sleep(0.05)
            await asyncio.to_thread(admin.client_kill_filter, _type="normal", skipme=True)
            return await asyncio.gather(sleeping, echo, return_exceptions=True)
        finally:
            await wire.close()

    popped, echoed = asyncio.run(main())
    assert echoed == "again" and popped is None, (popped, echoed)
    admin.close()


@pytest.mark.parametrize("retries", [0, 2])
def test_a_silent_server_is_given_up_after_the_command_timeout(redis_url: str, retries: int) -> None:
    """`CLIENT PAUSE` keeps every reply back: the command is given up after the command timeout
    (0.3 s) and fails with a TimeoutError naming the server, not sent again (a silent server
    would make each try wait as long), whatever its retries."""
    admin = redis.Redis.from_url(redis_url)

    async def main() -> tuple[BaseException | Any, float]:
        wire = _wire(redis_url, retries=retries, command_timeout=0.3)
        try:
            await _call(wire, "PING")  # connected before the pause
            admin.client_pause(2000)
            started = time.monotonic()
            got = await asyncio.gather(_call(wire, "PING"), return_exceptions=True)
            return got[0], time.monotonic() - started
        finally:
            admin.client_unpause()
            await wire.close()

    got, spent = asyncio.run(main())
    assert isinstance(got, (rx.TimeoutError, rx.ConnectionError)), got
    assert 0.3 <= spent < 0.6, spent
    admin.close()


def test_closing_fails_what_waits(redis_url: str) -> None:
    async def main() -> list[Any]:
        wire = _wire(redis_url)
        calls = [_call(wire, "BLPOP", f"wire-{uuid.uuid4().hex}", "0.5"), _call(wire, "PING")]
        await asyncio.sleep(0.05)
        await wire.close()
        late = _call(wire, "PING")
        return await asyncio.gather(*calls, late, return_exceptions=True)

    replies = asyncio.run(main())
    assert all(isinstance(reply, rx.ConnectionError) for reply in replies), replies


def test_a_server_that_refuses_connections_fails_commands_after_the_retries() -> None:
    async def main() -> tuple[Any, float]:
        wire = _wire("redis://127.0.0.1:1/0", retries=2)
        started = time.monotonic()
        try:
            got = await asyncio.gather(_call(wire, "PING"), return_exceptions=True)
        finally:
            await wire.close()
        return got[0], time.monotonic() - started

    got, spent = asyncio.run(main())
    assert isinstance(got, rx.ConnectionError), got
    assert spent < 2.0


def test_a_cancelled_blocking_read_takes_nothing_afterwards(redis_url: str) -> None:
    """A blocking read whose caller is cancelled (a router stopping) gives its connection up:
    an entry appended afterwards is not taken by a reader that is gone, it waits unread."""
    from interlock.runtime.redis_store import RedisStore

    stream = f"wire-{uuid.uuid4().hex}"

    async def main() -> tuple[int, int]:
        store = RedisStore(redis_url)
        try:
            await store.ensure_group(stream, "g")
            read = asyncio.ensure_future(store.read(stream, "g", "gone", block=5))
            await asyncio.sleep(0.2)
            read.cancel()
            await asyncio.gather(read, return_exceptions=True)
            await asyncio.sleep(0.1)
            await store.append(stream, {"n": 1})
            await asyncio.sleep(0.2)
            return len(await store.pending(stream, "g")), await store.backlog(stream, "g")
        finally:
            await store.close()

    pending, backlog = asyncio.run(main())
    assert (pending, backlog) == (0, 1)
