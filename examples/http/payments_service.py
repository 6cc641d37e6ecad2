"""A payments service: the target `payments` of examples/http/shop.route.

Only Python's standard library and no interlock: any program that speaks HTTP can be a
target. It takes CloudEvents in binary content mode (the event's attributes in `ce-*`
headers, its data as the JSON body), prints one line per request, and answers:

- 401 without `Authorization: Bearer TOKEN` (`--token`): the router gives up at once
  (`give_up_on [http.4xx]`) and the event goes to the dead letter `payments_dlq`;
- 503 with `Retry-After: 1` the first time it sees an event of an amount of 1,000 or more
  (the bank wants a second look): the router tries again a second later;
- 200 otherwise: the payment is taken.

Run: `python3 examples/http/payments_service.py --port 8081 --token demo-secret`
"""

from __future__ import annotations

import argparse
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

#: Orders from this amount up are declined with a 503 the first time they are seen.
SECOND_LOOK_FROM = 1000


class PaymentsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the router reuses its connections
    token: ClassVar[str] = ""
    seen: ClassVar[set[str]] = set()  # the ids of the events asked for a second look
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        event_id = self.headers.get("ce-id", "?")
        attempt = self.headers.get("Interlock-Attempt", "?")
        if not hmac.compare_digest(self.headers.get("Authorization", ""), f"Bearer {self.token}"):
            self.report(event_id, attempt, "", 401, "Unauthorized (wrong or missing token)")
            self.answer(401, {"error": "a valid bearer token is required"})
            return
        try:
            order: dict[str, Any] = json.loads(body)
            amount = float(order["amount"])
            what = f"{order['id']} {amount:.2f} {order['currency']}"
        except (ValueError, KeyError, TypeError):
            self.report(event_id, attempt, "", 400, "Bad Request (not an order)")
            self.answer(400, {"error": "the body is not an order"})
            return
        if amount >= SECOND_LOOK_FROM:
            with self.lock:
                first_time = event_id not in self.seen
                self.seen.add(event_id)
            if first_time:
                self.report(event_id, attempt, what, 503, "Service Unavailable, Retry-After: 1")
                self.answer(503, {"error": "the bank wants a second look: try again in a second"},
                            {"Retry-After": "1"})
                return
        self.report(event_id, attempt, what, 200, "OK, payment taken")
        self.answer(200, {"status": "paid", "order": order["id"]})

    def report(self, event_id: str, attempt: str, what: str, status: int, meaning: str) -> None:
        order = f" {what}" if what else ""
        print(f"payments: ce-id={event_id} attempt={attempt}{order} -> {status} {meaning}", flush=True)

    def answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        content = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is printed by `report` instead


def main() -> None:
    parser = argparse.ArgumentParser(description="The payments service of examples/http (an async HTTP target).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default="demo-secret", help="the bearer token callers must send")
    args = parser.parse_args()
    PaymentsHandler.token = args.token
    server = ThreadingHTTPServer((args.host, args.port), PaymentsHandler)
    server.daemon_threads = True
    print(f"payments: listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
