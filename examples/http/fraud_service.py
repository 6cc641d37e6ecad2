"""A fraud-scoring service: the target `fraud` of examples/http/shop.route.

Only Python's standard library and no interlock: any program that speaks HTTP can be a
target. It takes CloudEvents in structured content mode (the whole event as a JSON body,
`Content-Type: application/cloudevents+json`; binary mode is understood too), prints one
line per request, and answers 200 with a JSON score. `fraud` is a sync target: the router
calls it inside the publish, and this answer comes back to whoever published the event,
in the ingest's 202 response as `replies.fraud`.

Run: `python3 examples/http/fraud_service.py --port 8082`
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: From this score up, checkout holds the order for a person to review.
REVIEW_FROM = 0.5


def score(order: dict[str, Any]) -> float:
    """A stand-in for a real model: the bigger the order, the riskier."""
    return round(min(float(order["amount"]) / 5000, 1.0), 2)


class FraudHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the router reuses its connections

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            if self.headers.get("Content-Type", "").startswith("application/cloudevents+json"):
                event = json.loads(body)  # structured: the whole CloudEvent
                event_id, order = event["id"], event["data"]
            else:
                event_id, order = self.headers.get("ce-id", "?"), json.loads(body)  # binary: the data alone
            risk = score(order)
            what = f"{order['id']} {float(order['amount']):.2f} {order['currency']}"
        except (ValueError, KeyError, TypeError):
            print("fraud: a request that is not an order -> 400 Bad Request", flush=True)
            self.answer(400, {"error": "the body is not an order"})
            return
        decision = "review" if risk >= REVIEW_FROM else "accept"
        print(f"fraud: ce-id={event_id} {what} -> score {risk} ({decision})", flush=True)
        self.answer(200, {"score": risk, "decision": decision})

    def answer(self, status: int, body: dict[str, Any]) -> None:
        content = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is printed by `do_POST` instead


def main() -> None:
    parser = argparse.ArgumentParser(description="The fraud-scoring service of examples/http (a sync HTTP target).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), FraudHandler)
    server.daemon_threads = True
    print(f"fraud: listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
