"""A real HTTP server on loopback for the HTTP-target tests: it records every request and
answers as its path says, per event (by `ce-id`, or the structured body's `id`):

- `/ok`: 200 with `{"ok": true, "id": ID}` (JSON);
- `/fail/N`: 500 to the first N requests of an event, then 200;
- `/busy/N`: 429 with `Retry-After: N` to an event's first request, then 200;
- `/unavailable`: 503 with `Retry-After: 1` to an event's first request, then 200;
- `/missing`: 404 with a body;
- `/slow/MS`: 200 after MS milliseconds;
- `/close`: closes the connection without a response;
- `/echo-auth`: 500 whose body is the request's Authorization header (a server that leaks it);
- `/big`: 200 with a body of 8 MiB;
- `/order/N`: 500 to the first request of every Nth event (by arrival), else 200;
- `/echo-reason`: 503 whose reason phrase and `X-Echo` header are the Authorization header;
- `/echo-late`: 500 whose body is 500 bytes, then the Authorization header;
- `/echo-json`: 500 whose body is the Authorization header in a JSON string.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Request:
    def __init__(self, path: str, headers: dict[str, str], body: bytes, at: float) -> None:
        self.path = path
        self.headers = headers  # names in lower case
        self.body = body
        self.at = at

    @property
    def id(self) -> str:
        if "ce-id" in self.headers:
            return self.headers["ce-id"]
        return str(json.loads(self.body)["id"])

    def json(self) -> Any:
        return json.loads(self.body)


class TargetServer:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.seen: Counter[tuple[str, str]] = Counter()  # (path, event id): requests so far
        self.arrivals = 0
        self.inflight = self.most_inflight = 0  # requests being answered at once
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                with owner.lock:
                    owner.inflight += 1
                    owner.most_inflight = max(owner.most_inflight, owner.inflight)
                try:
                    owner.handle(self)
                finally:
                    with owner.lock:
                        owner.inflight -= 1

            do_PUT = do_PATCH = do_POST

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024  # socketserver's 5 drops connects under load

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="target-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> TargetServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def of(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def handle(self, http: BaseHTTPRequestHandler) -> None:
        length = int(http.headers.get("content-length") or 0)
        body = http.rfile.read(length)
        path = http.path.split("?")[0]  # the query is not part of the route
        request = Request(path, {k.lower(): v for k, v in http.headers.items()}, body, time.monotonic())
        with self.lock:
            self.requests.append(request)
            self.arrivals += 1
            arrival = self.arrivals
            self.seen[(path, request.id)] += 1
            count = self.seen[(path, request.id)]
        parts = path.strip("/").split("/")
        route, arg = parts[0], (parts[1] if len(parts) > 1 else "")
        if route == "close":
            http.close_connection = True
            http.connection.shutdown(socket.SHUT_RDWR)
            return
        if route == "slow":
            time.sleep(int(arg) / 1000)
        if route == "fail" and count <= int(arg):
            return self.reply(http, 500, b"try again later")
        if route == "busy" and count == 1:
            return self.reply(http, 429, b"slow down", {"Retry-After": arg})
        if route == "unavailable" and count == 1:
            return self.reply(http, 503, b"", {"Retry-After": "1"})
        if route == "missing":
            return self.reply(http, 404, b"no such endpoint: " + b"x" * 2000)
        auth = request.headers.get("authorization", "")
        if route == "echo-reason":
            http.send_response(503, auth)
            http.send_header("X-Echo", auth)
            http.send_header("Content-Length", "0")
            http.end_headers()
            return None
        if route == "echo-late":
            return self.reply(http, 500, b"p" * 500 + auth.encode())
        if route == "echo-json":
            return self.reply(http, 500, json.dumps({"you sent": auth}).encode(), {"Content-Type": "application/json"})
        if route == "echo-auth":
            return self.reply(http, 500, ("you sent " + request.headers.get("authorization", "")).encode())
        if route == "order" and count == 1 and arrival % int(arg) == 0:
            return self.reply(http, 500, b"")
        if route == "big":
            return self.reply(http, 200, b"x" * (8 * 1024 * 1024), {"Content-Type": "text/plain"})
        self.reply(http, 200, json.dumps({"ok": True, "id": request.id}).encode(),
                   {"Content-Type": "application/json"})

    @staticmethod
    def reply(http: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        http.send_response(status)
        for name, value in (headers or {}).items():
            http.send_header(name, value)
        http.send_header("Content-Length", str(len(body)))
        http.end_headers()
        http.wfile.write(body)
