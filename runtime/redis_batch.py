"""Group commit for the Redis store: what callers ask while a round trip is in flight goes,
pipelined, in the next one, and calls of one shared script become one call.

A lone caller pays one round trip; a hundred concurrent publishes or acks pay a few. Each
caller still waits for its own reply, so a publish that returned is on the server. A reply
that is an error reaches its own caller only, as a StoreError.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from .store import StoreError


class Script:
    """A Lua script that concurrent callers share: their keys and arguments are concatenated
    into one call (after `header`, the arguments every call starts with) and its reply, a
    list with one element per caller, split back."""

    def __init__(self, source: str, header: tuple[Any, ...] = ()) -> None:
        self.source = source
        self.header = header
        self.sha = hashlib.sha1(source.encode()).hexdigest()


_Item = tuple[Any, tuple[Any, ...], asyncio.Future[Any]]  # (script or None, command or (keys, args), caller)


class Batch:
    """One event loop's group commit on one client. `describe` turns redis-py's exceptions
    into StoreErrors."""

    LIMIT = 512  # callers per round trip

    def __init__(self, client: aioredis.Redis, describe: Callable[[BaseException], StoreError]) -> None:
        self.client = client
        self.describe = describe
        self.queue: list[_Item] = []
        self.task: asyncio.Task[None] | None = None

    async def call(self, *command: Any) -> Any:
        return await self._submit(None, command)

    async def script(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        return await self._submit(script, (keys, args))

    async def _submit(self, script: Script | None, payload: tuple[Any, ...]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._flush())
        self.queue.append((script, payload, future))
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the callers that are ready to ask, ask: they join this round trip
        while self.queue:
            batch, self.queue = self.queue[:self.LIMIT], self.queue[self.LIMIT:]
            # One command per plain call, one per script whatever its callers.
            commands: list[tuple[Any, ...]] = []
            shared: dict[Script, list[_Item]] = {}
            for item in batch:
                if item[0] is None:
                    commands.append(item[1])
                else:
                    shared.setdefault(item[0], []).append(item)
            for script, items in shared.items():
                keys = [key for _, (k, _a), _f in items for key in k]
                args = [*script.header, *(arg for _, (_k, a), _f in items for arg in a)]
                commands.append(("EVALSHA", script.sha, len(keys), *keys, *args))
            try:
                replies = await self._execute(commands, {script.sha: script.source for script in shared})
            except Exception as exc:  # the whole round trip failed: every caller hears of it
                error = self.describe(exc)
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            except BaseException:  # cancelled with its loop: so are its callers
                for _, _, future in batch:
                    future.cancel()
                raise
            plain = iter(replies)
            for script, _, future in batch:
                if script is None:
                    self._settle(future, next(plain))
            for items, reply in zip(shared.values(), replies[len(replies) - len(shared):], strict=True):
                for number, (_, _, future) in enumerate(items):
                    self._settle(future, reply if isinstance(reply, Exception) else reply[number])
            await asyncio.sleep(0)  # the callers just answered may ask again at once: in the next trip

    async def _execute(self, commands: list[tuple[Any, ...]], sources: dict[str, str]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        replies = list(await pipe.execute(raise_on_error=False))
        for number, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):  # the server restarted, or its scripts were flushed
                try:  # this command's callers alone hear of a failure here: the others' commands ran
                    await self.client.script_load(sources[commands[number][1]])
                    replies[number] = await self.client.execute_command(*commands[number])  # type: ignore[no-untyped-call]
                except Exception as exc:
                    replies[number] = exc
        return replies

    def _settle(self, future: asyncio.Future[Any], reply: Any) -> None:
        if future.done():
            return  # its caller was cancelled; the command ran all the same
        if isinstance(reply, Exception):
            future.set_exception(self.describe(reply))
        else:
            future.set_result(reply)
