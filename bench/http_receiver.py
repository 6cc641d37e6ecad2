"""The receiving end of bench/http_delivery.py: an HTTP target that answers at once.

A bare HTTP/1.1 server on asyncio (a protocol, no framework: the less it costs, the more of
the machine is left to what is measured). It answers every POST with `200` and an empty body
at once, keeps connections alive, and notes when each request arrived by its `ce-id` header,
on `time.monotonic()`: the one monotonic clock that every process of the machine reads.

- `GET /count`: `{"count": N}`, the POSTs noted since the last `GET /take`;
- `GET /take`: `{"arrivals": [[ce-id, monotonic seconds], ...]}`, and forgets them.

    .venv/bin/python bench/http_receiver.py PORT     # prints "ready" once it listens on 127.0.0.1:PORT

It understands what httpx sends (a `Content-Length` body, no chunked encoding): it is a
benchmark's instrument, not a general HTTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time

HOST = "127.0.0.1"
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


class Arrivals:
    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []


class Receiver(asyncio.Protocol):
    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:  # each complete request in the buffer, in order
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            request_line, *header_lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return  # the rest of the body is still on its way
            del self.buffer[:end + 4 + length]
            self.answer(request_line, headers)
            if headers.get("connection", "").lower() == "close":
                self.transport.close()

    def answer(self, request_line: str, headers: dict[str, str]) -> None:
        assert self.transport is not None
        method, path, *_ = [*request_line.split(" "), "", ""]
        if method == "POST":
            self.arrivals.seen.append((headers.get("ce-id", ""), time.monotonic()))
            self.transport.write(OK)
            return
        if path == "/count":
            body = json.dumps({"count": len(self.arrivals.seen)}).encode()
        elif path == "/take":
            body = json.dumps({"arrivals": self.arrivals.seen}).encode()
            self.arrivals.seen = []
        else:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            return
        self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def main(port: int) -> None:
    arrivals = Arrivals()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Receiver(arrivals), HOST, port, backlog=2048)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(int(sys.argv[1])))
