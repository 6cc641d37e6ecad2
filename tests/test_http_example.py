"""examples/http end to end, with real processes on loopback: the two services of the
example (payments_service.py, fraud_service.py), and `interlock serve examples/http` on
memory:// in front of them, twice: once with the payments token the service expects, once
with a wrong one. CloudEvents are posted to the ingest as a client would; what the services
print (one line per request they answer) and what serve logs show what became of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from served import HOST, free_port, stop, wait_healthy

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "http"
TOKEN = "example-token-1234"
WRONG_TOKEN = "not-the-token-5678"


class Process:
    """A subprocess whose stdout and stderr go to a log file, read as it runs."""

    def __init__(self, name: str, folder: Path, command: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = folder / f"{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder)

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines()

    def wait_for(self, text: str, timeout: float = 10) -> str:
        """The first line holding `text`, once there is one (an AssertionError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.lines() if text in line]
            if found:
                return found[0]
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no line with {text!r} from {self.name} within {timeout} s:\n"
                                     f"{self.log.read_text()}")
            time.sleep(0.02)


class Example:
    """The services, and one `interlock serve` with the right payments token and one with a wrong one."""

    def __init__(self, folder: Path) -> None:
        self.processes: list[Process] = []
        payments_port, fraud_port = free_port(), free_port()
        self.payments = self.start("payments", folder, [
            sys.executable, "-u", str(EXAMPLE / "payments_service.py"), "--port", str(payments_port),
            "--token", TOKEN])
        self.fraud = self.start("fraud", folder, [
            sys.executable, "-u", str(EXAMPLE / "fraud_service.py"), "--port", str(fraud_port)])
        env = {**os.environ, "PAYMENTS_URL": f"http://{HOST}:{payments_port}/payments",
               "FRAUD_URL": f"http://{HOST}:{fraud_port}/score"}
        self.serve, self.url = self.start_serve("serve", folder, {**env, "PAYMENTS_TOKEN": f"Bearer {TOKEN}"})
        self.wrong, self.wrong_url = self.start_serve("wrong", folder,
                                                      {**env, "PAYMENTS_TOKEN": f"Bearer {WRONG_TOKEN}"})
        self.payments.wait_for("listening on")
        self.fraud.wait_for("listening on")
        for process, url in ((self.serve, self.url), (self.wrong, self.wrong_url)):
            wait_healthy(url, process.process, process.log)
            assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200

    def start(self, name: str, folder: Path, command: list[str], env: dict[str, str] | None = None) -> Process:
        process = Process(name, folder, command, env)
        self.processes.append(process)
        return process

    def start_serve(self, name: str, folder: Path, env: dict[str, str]) -> tuple[Process, str]:
        port = free_port()
        command = [sys.executable, "-m", "interlock.cli", "serve", str(EXAMPLE), "--store", "memory://",
                   "--port", str(port)]
        return self.start(name, folder, command, env), f"http://{HOST}:{port}"

    def stop(self) -> None:
        for process in self.processes:
            stop(process.process)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    running = Example(tmp_path_factory.mktemp("http-example"))
    try:
        yield running
    finally:
        running.stop()


def order(number: int, amount: float, currency: str = "EUR") -> dict[str, Any]:
    return {"id": f"o-{number}", "amount": amount, "currency": currency, "customer": f"c-{number}"}


def post_binary(url: str, event_id: str, data: dict[str, Any]) -> httpx.Response:
    """One CloudEvent in binary content mode: the attributes as `ce-*` headers, the data as the body."""
    headers = {"ce-specversion": "1.0", "ce-id": event_id, "ce-type": "order.placed", "ce-source": "checkout",
               "content-type": "application/json"}
    return httpx.post(f"{url}/events", content=json.dumps(data), headers=headers, timeout=10)


def cloudevent(event_id: str, data: dict[str, Any], type: str = "order.placed") -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "type": type, "source": "checkout", "data": data}


def receipt(event_id: str, targets: list[str], replies: dict[str, Any] | None = None, *,
            unrouted: bool = False, duplicate: bool = False) -> dict[str, Any]:
    return {"id": event_id, "targets": targets, "unrouted": unrouted, "duplicate": duplicate,
            "replies": replies or {}, "errors": {}, "failures": {}}


def requests_for(service: Process, event_id: str) -> list[str]:
    """What `service` answered to each request for the event, in order: `attempt=N ... -> STATUS`."""
    marker = f"ce-id={event_id} "
    return [line.split(marker, 1)[1] for line in service.lines() if marker in line]


def test_a_small_order_in_binary_mode_goes_to_payments_alone(example: Example) -> None:
    response = post_binary(example.url, "small-1", order(1, 25))
    assert response.status_code == 202
    assert response.json() == receipt("small-1", ["payments"])
    example.payments.wait_for("ce-id=small-1 ")
    assert requests_for(example.payments, "small-1") == ["attempt=1 o-1 25.00 EUR -> 200 OK, payment taken"]
    assert requests_for(example.fraud, "small-1") == []  # under 100: not screened


def test_the_fraud_score_comes_back_in_the_receipt_as_the_sync_reply(example: Example) -> None:
    response = httpx.post(f"{example.url}/events", json=cloudevent("screened-1", order(2, 180, "USD")),
                          headers={"content-type": "application/cloudevents+json"}, timeout=10)
    assert response.status_code == 202
    assert response.json() == receipt("screened-1", ["fraud", "payments"],
                                      {"fraud": {"score": 0.04, "decision": "accept"}})
    # The reply was in the response: the fraud service had answered before the 202.
    assert requests_for(example.fraud, "screened-1") == ["o-2 180.00 USD -> score 0.04 (accept)"]
    example.payments.wait_for("ce-id=screened-1 ")
    assert requests_for(example.payments, "screened-1") == ["attempt=1 o-2 180.00 USD -> 200 OK, payment taken"]


def test_a_503_with_retry_after_is_retried_a_second_later(example: Example) -> None:
    posted = time.monotonic()
    response = post_binary(example.url, "big-1", order(3, 1250))
    assert response.json() == receipt("big-1", ["fraud", "payments"], {"fraud": {"score": 0.25, "decision": "accept"}})
    example.payments.wait_for("ce-id=big-1 attempt=2")
    waited = time.monotonic() - posted
    assert requests_for(example.payments, "big-1") == [
        "attempt=1 o-3 1250.00 EUR -> 503 Service Unavailable, Retry-After: 1",
        "attempt=2 o-3 1250.00 EUR -> 200 OK, payment taken",
    ]
    assert waited >= 0.95  # `Retry-After: 1` over the policy's first backoff of at most 200 ms
    line = example.serve.wait_for("payments failed (http.503")
    assert "Retry-After: 1000 ms" in line and "retry in 1000 ms" in line


def test_a_batch_has_a_receipt_per_event_and_a_repeated_id_is_a_duplicate(example: Example) -> None:
    batch = [cloudevent("batch-1", order(4, 40)), cloudevent("batch-2", {"id": "o-4"}, type="order.shipped")]
    response = httpx.post(f"{example.url}/events", json=batch,
                          headers={"content-type": "application/cloudevents-batch+json"}, timeout=10)
    assert response.status_code == 202
    assert response.json() == {"receipts": [receipt("batch-1", ["payments"]),
                                            receipt("batch-2", [], unrouted=True)]}
    example.payments.wait_for("ce-id=batch-1 ")
    again = post_binary(example.url, "batch-1", order(4, 40))
    assert again.json() == receipt("batch-1", [], duplicate=True)
    # A marker posted after the duplicate is delivered; the duplicate was not delivered again.
    post_binary(example.url, "batch-marker", order(5, 10))
    example.payments.wait_for("ce-id=batch-marker ")
    assert len(requests_for(example.payments, "batch-1")) == 1


def test_an_order_that_breaks_the_schema_is_refused_before_anything_is_sent(example: Example) -> None:
    response = post_binary(example.url, "broken-1", {"id": "o-6", "amount": "a lot", "currency": "EUR",
                                                     "customer": "c-6"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "amount" in response.json()["detail"]
    post_binary(example.url, "broken-marker", order(6, 10))
    example.payments.wait_for("ce-id=broken-marker ")
    assert requests_for(example.payments, "broken-1") == []


def test_a_wrong_token_is_a_401_given_up_at_once_into_the_dead_letter(example: Example) -> None:
    response = post_binary(example.wrong_url, "wrong-1", order(7, 60))
    assert response.json() == receipt("wrong-1", ["payments"])  # accepted: the failure comes later
    line = example.wrong.wait_for("gave up on wrong-1")
    assert "payments gave up on wrong-1 (`http.4xx` is in give_up_on); dead letter payments_dlq" in line
    assert requests_for(example.payments, "wrong-1") == ["attempt=1 -> 401 Unauthorized (wrong or missing token)"]
    # The token is a secret: the router's log never shows it, right or wrong.
    for process in (example.serve, example.wrong):
        text = process.log.read_text()
        assert TOKEN not in text and WRONG_TOKEN not in text
