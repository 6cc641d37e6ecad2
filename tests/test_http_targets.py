"""HTTP targets, delivered to a real HTTP server on loopback (tests/http_server.py): the
request as CloudEvents, each outcome's error kind, retries by policy (`Retry-After`
included), dead letters with status and excerpt, secrets kept out, order through retries."""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_server import TargetServer

import interlock
from interlock.runtime.event import Event
from interlock.runtime.outcomes import DeliveryError

TOKEN = "Bearer s3cret-t0ken-value"


@pytest.fixture
def server() -> Iterator[TargetServer]:
    with TargetServer() as running:
        yield running


def load(text: str, **options: Any) -> interlock.Router:
    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text(text)
    return interlock.load(str(folder / "p.route"), **options)


def project(url: str, *, policy: str = "retry quick", extra: str = "", mode: str = "async") -> str:
    return f"""
event order.created {{ id: string, amount: int, customer: string }}
dead_letter failed
retry quick {{ attempts 3, backoff fixed 10ms }}
target shop {{
  mode {mode}
  http POST "{url}"
  headers {{ "X-Team": "checkout" }}
  timeout 500ms
  {policy}, dead_letter failed
  {extra}
}}
route r {{ on order.created to shop with {{ order: id, total: amount, customer: customer }} }}
"""


def order(n: int, customer: str = "c1") -> dict[str, Any]:
    return {"id": f"o{n}", "amount": n, "customer": customer}


async def run(router: interlock.Router, events: list[dict[str, Any]], *, ids: bool = True) -> None:
    async with router:
        for n, data in enumerate(events):
            await router.publish("order.created", data, id=f"e{n}" if ids else None)
        await router.drain(20)


def dead(router: interlock.Router) -> list[interlock.DeadLetter]:
    return router.dead_letters("failed")


# ---- the request ----------------------------------------------------------------------


def test_binary_mode_sends_the_transformed_data_with_cloudevents_headers(server: TargetServer) -> None:
    router = load(project(server.url("/ok")))
    asyncio.run(run(router, [order(1)]))
    [request] = server.of("/ok")
    assert request.json() == {"order": "o1", "total": 1, "customer": "c1"}
    headers = request.headers
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-id"] == "e0"
    assert headers["ce-type"] == "order.created"
    assert headers["ce-source"] == "interlock"
    assert headers["ce-time"].endswith("Z")
    assert headers["content-type"] == "application/json"
    assert headers["x-team"] == "checkout"
    assert headers["interlock-attempt"] == "1"
    assert dead(router) == []


def test_structured_mode_sends_the_whole_cloudevent(server: TargetServer) -> None:
    router = load(project(server.url("/ok"), extra="format structured"))
    asyncio.run(run(router, [order(1)]))
    [request] = server.of("/ok")
    assert request.headers["content-type"].startswith("application/cloudevents+json")
    body = request.json()
    assert body["specversion"] == "1.0" and body["id"] == "e0" and body["type"] == "order.created"
    assert body["data"] == {"order": "o1", "total": 1, "customer": "c1"}
    assert not any(name.startswith("ce-") for name in request.headers)


def test_an_event_id_outside_ascii_is_percent_encoded_in_its_header(server: TargetServer) -> None:
    router = load(project(server.url("/ok")))

    async def main() -> None:
        async with router:
            await router.publish("order.created", order(1), id="é 1%")
            await router.drain(10)

    asyncio.run(main())
    [request] = server.of("/ok")
    assert request.headers["ce-id"] == "%C3%A9%201%25"


# ---- outcomes and their kinds -----------------------------------------------------------


def test_a_500_is_retried_by_the_policy_then_delivered(server: TargetServer) -> None:
    router = load(project(server.url("/fail/2")))
    asyncio.run(run(router, [order(1)]))
    requests = server.of("/fail/2")
    assert [r.headers["interlock-attempt"] for r in requests] == ["1", "2", "3"]
    assert dead(router) == []


def test_a_500_past_the_attempts_is_a_dead_letter_with_status_and_excerpt(server: TargetServer) -> None:
    router = load(project(server.url("/fail/9")))
    asyncio.run(run(router, [order(1)]))
    [letter] = dead(router)
    assert [a.kind for a in letter.attempts] == ["http.500"] * 3
    assert [a.status for a in letter.attempts] == [500] * 3
    assert "try again later" in letter.attempts[0].message
    assert letter.reason == "all 3 attempts failed"
    assert letter.event.id == "e0" and letter.target == "shop"


def test_retry_on_and_give_up_on_name_kinds_the_most_specific_deciding(server: TargetServer) -> None:
    policy = "retry quick\n  retry_on [http.5xx, http.429]\n  give_up_on [http.4xx]"
    router = load(project(server.url("/missing"), policy=policy))
    asyncio.run(run(router, [order(1)]))
    [letter] = dead(router)
    assert len(server.of("/missing")) == 1  # a 404 is given up on at once
    assert letter.attempts[0].kind == "http.404" and letter.attempts[0].status == 404
    assert letter.reason == "`http.4xx` is in give_up_on"
    assert len(letter.attempts[0].message) < 800  # a bounded excerpt of the 2 KB body
    assert letter.attempts[0].message.endswith("...")
    # A 429 is a 4xx too, but `http.429` in retry_on is more specific: it is retried.
    busy = load(project(server.url("/busy/0"), policy=policy))
    asyncio.run(run(busy, [order(2)]))
    assert len(server.of("/busy/0")) == 2
    assert dead(busy) == []


def test_retry_after_lengthens_the_wait_up_to_the_backoff_max(server: TargetServer) -> None:
    uncapped = load(project(server.url("/busy/1"), policy="retry { attempts 2, backoff fixed 10ms }"))
    asyncio.run(run(uncapped, [order(1)]))
    first, second = server.of("/busy/1")
    assert second.at - first.at >= 0.95  # Retry-After: 1 over a 10 ms backoff
    capped = load(project(server.url("/unavailable"),
                          policy="retry { attempts 2, backoff exponential initial 10ms factor 2 max 200ms }"))
    asyncio.run(run(capped, [order(2)]))
    first, second = server.of("/unavailable")
    assert 0.18 <= second.at - first.at < 0.9  # asked for 1 s; the policy's max is 200 ms
    assert dead(capped) == []


def test_a_response_slower_than_the_timeout_is_http_timeout(server: TargetServer) -> None:
    router = load(project(server.url("/slow/2000"), policy="retry { attempts 2, backoff fixed 10ms }"))
    asyncio.run(run(router, [order(1)]))
    [letter] = dead(router)
    assert [a.kind for a in letter.attempts] == ["http.timeout", "http.timeout"]
    assert [a.status for a in letter.attempts] == [None, None]


def test_a_connection_closed_without_a_response_is_http_connect(server: TargetServer) -> None:
    router = load(project(server.url("/close"), policy="retry { attempts 2, backoff fixed 10ms }"))
    asyncio.run(run(router, [order(1)]))
    [letter] = dead(router)
    assert [a.kind for a in letter.attempts] == ["http.connect", "http.connect"]


def test_a_refused_connection_is_http_connect(server: TargetServer) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    router = load(project(f"http://127.0.0.1:{port}/x", policy="retry { attempts 1 }"))
    asyncio.run(run(router, [order(1)]))
    [letter] = dead(router)
    assert letter.attempts[0].kind == "http.connect"


def test_tls_to_a_server_that_does_not_speak_it_is_http_tls(server: TargetServer) -> None:
    router = load(project(server.url("/ok").replace("http://", "https://"), policy="retry { attempts 1 }"))
    asyncio.run(run(router, [order(1)]))
    [letter] = dead(router)
    assert letter.attempts[0].kind == "http.tls"


def test_give_up_on_a_timeout(server: TargetServer) -> None:
    router = load(project(server.url("/slow/2000"), policy="retry quick\n  give_up_on [http.timeout]"))
    asyncio.run(run(router, [order(1)]))
    [letter] = dead(router)
    assert len(letter.attempts) == 1 and letter.reason == "`http.timeout` is in give_up_on"


# ---- sync targets -------------------------------------------------------------------------


def test_a_sync_targets_reply_is_its_response_body(server: TargetServer) -> None:
    router = load(project(server.url("/ok"), mode="sync"))

    async def main() -> interlock.Receipt:
        return await router.publish("order.created", order(1), id="s1")

    receipt = asyncio.run(main())
    assert receipt.replies == {"shop": {"ok": True, "id": "s1"}}


def test_a_failed_sync_target_is_in_the_receipts_errors_and_its_dead_letter(server: TargetServer) -> None:
    router = load(project(server.url("/fail/9"), mode="sync"))

    async def main() -> interlock.Receipt:
        return await router.publish("order.created", order(1), id="s1")

    receipt = asyncio.run(main())
    assert "HTTP 500" in receipt.errors["shop"]
    [letter] = dead(router)
    assert [a.status for a in letter.attempts] == [500, 500, 500]


def test_a_sync_reply_over_the_limit_fails_the_attempt(server: TargetServer) -> None:
    router = load(project(server.url("/big"), mode="sync", policy="retry { attempts 1 }"))

    async def main() -> interlock.Receipt:
        return await router.publish("order.created", order(1), id="s1")

    receipt = asyncio.run(main())
    [letter] = dead(router)
    assert letter.attempts[0].kind == "http.protocol"
    assert "over" in receipt.errors["shop"]


# ---- secrets ------------------------------------------------------------------------------


def secret_project() -> str:
    return """
event order.created { id: string, amount: int, customer: string }
dead_letter failed
target shop {
  http POST env("SHOP_URL")
  headers { "Authorization": env("SHOP_TOKEN") }
  retry { attempts 2, backoff fixed 10ms }
  dead_letter failed
}
route r { on order.created to shop }
"""


def test_secrets_come_from_the_environment_and_never_reach_dead_letters_or_logs(
        server: TargetServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    url = server.url("/echo-auth")
    monkeypatch.setenv("SHOP_URL", url)
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    router = load(secret_project())
    assert TOKEN not in json.dumps(router.artifact) and url not in json.dumps(router.artifact)
    with caplog.at_level(logging.DEBUG):
        asyncio.run(run(router, [order(1)]))
    [request, _] = server.of("/echo-auth")
    assert request.headers["authorization"] == TOKEN  # sent
    [letter] = dead(router)
    shown = json.dumps([[a.kind, a.message] for a in letter.attempts]) + letter.reason
    assert "you sent ***" in shown
    for secret in (TOKEN, "s3cret-t0ken-value", url):
        assert secret not in shown
        assert secret not in caplog.text
    assert "env(SHOP_URL)" in shown


def test_an_unset_variable_stops_the_router_from_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_URL", "http://127.0.0.1:9/x")
    monkeypatch.delenv("SHOP_TOKEN", raising=False)
    router = load(secret_project())

    async def main() -> None:
        async with router:
            pass

    with pytest.raises(DeliveryError, match="`SHOP_TOKEN`, which is not set"):
        asyncio.run(main())


# ---- order, Python handlers instead, Redis -------------------------------------------------


def test_order_by_key_holds_through_retries_over_http(server: TargetServer) -> None:
    router = load(project(server.url("/order/3"), extra="order by customer\n  concurrency 8"))
    events = [order(n, customer=f"c{n % 4}") for n in range(60)]
    asyncio.run(run(router, events))
    delivered = [r for r in server.of("/order/3") if True]
    succeeded: dict[str, list[int]] = {}
    failed_first: set[str] = set()
    seen: dict[str, int] = {}
    for request in delivered:
        seen[request.id] = seen.get(request.id, 0) + 1
    for request in delivered:
        body = request.json()
        succeeded.setdefault(body["customer"], [])
        if request.headers["interlock-attempt"] == "1" and seen[request.id] == 2:
            failed_first.add(request.id)
            continue
        succeeded[body["customer"]].append(body["total"])
    assert failed_first  # some were retried
    for customer, totals in succeeded.items():
        assert totals == sorted(totals), customer
    assert sum(len(t) for t in succeeded.values()) == 60
    assert dead(router) == []


def test_deliver_http_false_lets_python_handle_an_http_target(server: TargetServer) -> None:
    router = load(project(server.url("/ok")), deliver_http=False)
    seen: list[str] = []

    @router.handler("shop")
    async def shop(event: Event) -> None:
        seen.append(event.id)

    asyncio.run(run(router, [order(1)]))
    assert seen == ["e0"] and server.of("/ok") == []


def test_a_handler_for_an_http_target_is_refused(server: TargetServer) -> None:
    router = load(project(server.url("/ok")))
    with pytest.raises(DeliveryError, match="is an HTTP target"):
        router.handler("shop")


def test_http_targets_on_the_redis_store(server: TargetServer, redis_url: str) -> None:
    import redis as redis_client

    redis_client.Redis.from_url(redis_url).flushdb()
    router = load(project(server.url("/fail/1")), store=redis_url)
    asyncio.run(run(router, [order(n) for n in range(20)]))
    requests = server.of("/fail/1")
    assert len(requests) == 40  # each failed once, then delivered
    assert {r.id for r in requests} == {f"e{n}" for n in range(20)}
    assert dead(router) == []


# ---- found by review: secrets in every form, kinds of every failure, bounded output -----------


def test_no_secret_in_any_log_record_at_debug_even_echoed_or_rewritten(
        server: TargetServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # httpcore logs to child loggers (`httpcore.http11`), and httpx logs the URL as it rewrote
    # it (a host in lower case): both redacted, the reason phrase that echoes the token too.
    url = server.url("/echo-reason").replace("127.0.0.1", "LocalHost") + "?token=QQsecretQuery"
    monkeypatch.setenv("SHOP_URL", url)
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    router = load(secret_project())
    with caplog.at_level(logging.DEBUG):
        asyncio.run(run(router, [order(1)]))
    assert len(server.requests) == 2
    records = "\n".join(r.getMessage() for r in caplog.records)
    assert "QQsecretQuery" not in records and "s3cret-t0ken-value" not in records
    assert "httpcore.http11" in {r.name for r in caplog.records}  # the DEBUG records were there to redact
    [letter] = dead(router)
    assert "s3cret-t0ken-value" not in letter.attempts[0].message


@pytest.mark.parametrize("path", ["/echo-late", "/echo-json"])
def test_a_secret_echoed_across_the_excerpts_cut_or_json_escaped_is_redacted(
        server: TargetServer, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    monkeypatch.setenv("SHOP_URL", server.url(path))
    monkeypatch.setenv("SHOP_TOKEN", 'Bearer QQsec"ret\\tok-0123')
    router = load(secret_project())
    asyncio.run(run(router, [order(1)]))
    [letter] = dead(router)
    message = letter.attempts[0].message
    assert "QQsec" not in message and "ret" not in message.split("from POST")[1].replace("***", ""), message


def test_an_env_header_value_http_does_not_allow_stops_the_start_without_showing_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_URL", "http://127.0.0.1:9/x")
    monkeypatch.setenv("SHOP_TOKEN", "Bearer QQse\\cret-token ")
    router = load(secret_project())

    async def main() -> None:
        async with router:
            pass

    with pytest.raises(DeliveryError, match="header `Authorization` is not one HTTP allows") as raised:
        asyncio.run(main())
    assert "QQse" not in str(raised.value)


@pytest.mark.parametrize("url", ["http://[QQsecret3]/hook", "http://user:QQsecret2@ex\uff03ample.com/hook",
                                 "http://127.0.0.1:99999/x", "ftp://QQsecret4.example/x"])
def test_an_env_url_that_cannot_be_requested_stops_the_start_without_showing_it(
        monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("SHOP_URL", url)
    monkeypatch.setenv("SHOP_TOKEN", TOKEN)
    router = load(secret_project())

    async def main() -> None:
        async with router:
            pass

    with pytest.raises(DeliveryError, match=r"env\(SHOP_URL\) is not an absolute http\(s\) URL") as raised:
        asyncio.run(main())
    assert "QQsecret" not in str(raised.value)


def codes(text: str) -> list[str]:
    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text(text)
    return [d.code for d in interlock.check(str(folder / "p.route"))]


def test_the_checker_refuses_urls_and_header_values_that_could_never_be_sent() -> None:
    assert codes('target t { http POST "http://127.0.0.1:99999/x" }') == ["E0021"]
    assert codes('target t { http POST "http://\U0001f600.invalid/x" }') == ["E0021"]
    assert codes('target t { http POST "http://ok.example/\\u007f" }') == ["E0021"]
    assert codes('target t { http POST "http://ok.example/" headers { "X-A": "caf\u00e9" } }') == ["E0023"]
    assert codes('target t { http POST "http://ok.example/" headers { "X-A": "\\u0007" } }') == ["E0023"]
    assert codes('target t { http POST "http://ok.example/" headers { "Interlock-Attempt": "7" } }') == ["E0024"]


def test_check_output_stays_linear_in_a_long_line_of_errors(tmp_path: Path) -> None:
    import subprocess
    import sys

    headers = ", ".join(f'"A": "{n}"' for n in range(2000))
    path = tmp_path / "p.route"
    path.write_text(f'target t {{ http POST "http://x.example/" headers {{ {headers} }} }}\n')
    done = subprocess.run([sys.executable, "-m", "interlock.cli", "check", str(path)], capture_output=True,
                          timeout=120)
    assert done.returncode == 1
    assert done.stdout.count(b"E0019") + done.stderr.count(b"E0019") == 1999
    assert len(done.stdout) + len(done.stderr) < 2_000_000  # 25 KB in; was 154 MB


def test_an_async_targets_long_2xx_reply_is_a_delivery(server: TargetServer) -> None:
    router = load(project(server.url("/big")))
    asyncio.run(run(router, [order(1)]))
    assert len(server.of("/big")) == 1
    assert dead(router) == []


def test_an_event_time_that_is_not_rfc_3339_is_refused_at_publish(server: TargetServer) -> None:
    router = load(project(server.url("/ok")))
    event = {"specversion": "1.0", "id": "t1", "source": "s", "type": "order.created", "time": "now\r\nX-A: b",
             "data": order(1)}

    async def main() -> None:
        async with router:
            await router.publish(event)

    with pytest.raises(interlock.EventError, match="RFC 3339"):
        asyncio.run(main())


@pytest.mark.parametrize(("value", "ms"), [("\u00b2", None), ("9" * 5000, 24 * 3600 * 1000), ("2", 2000),
                                           ("-5", None), ("garbage", None)])
def test_retry_after_values(value: str, ms: int | None) -> None:
    from interlock.runtime.http_target import _retry_after_ms

    assert _retry_after_ms(value) == ms


def test_a_connect_that_times_out_is_http_connect_too() -> None:
    import socket

    # A listening socket that never accepts, its queue full: a connect waits in vain.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.2)
    try:
        router = load(project(f"http://127.0.0.1:{port}/x", policy="retry { attempts 1 }").replace(
            "timeout 500ms", "timeout 300ms"))
        asyncio.run(run(router, [order(1)]))
        [letter] = dead(router)
        assert letter.attempts[0].kind == "http.connect"
        assert "could not connect within" in letter.attempts[0].message
    finally:
        for sock in [*fillers, listener]:
            sock.close()


def test_publish_sync_outside_with_closes_the_connections_it_opened(server: TargetServer) -> None:
    import gc
    import warnings

    router = load(project(server.url("/ok"), mode="sync"))
    gc.collect()  # what earlier tests left is not this one's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(5):
            assert router.publish_sync("order.created", order(n), id=f"s{n}").replies["shop"]["ok"]
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_a_target_has_exactly_its_concurrency_in_requests_at_once(server: TargetServer) -> None:
    # 20 connections: pools of 8, 8 and 4; each request on the least busy one.
    router = load(project(server.url("/slow/300"), extra="concurrency 20").replace("timeout 500ms", "timeout 5s"))
    asyncio.run(run(router, [order(n) for n in range(60)]))
    assert len(server.of("/slow/300")) == 60
    assert server.most_inflight == 20


def test_extension_attributes_go_to_the_target_as_ce_headers(server: TargetServer) -> None:
    router = load(project(server.url("/ok")))

    async def main() -> None:
        async with router:
            await router.publish({"specversion": "1.0", "id": "x1", "source": "s", "type": "order.created",
                                  "subject": "o-1", "flag": True, "data": order(1)})
            await router.drain(10)

    asyncio.run(main())
    [request] = server.of("/ok")
    assert request.headers["ce-subject"] == "o-1" and request.headers["ce-flag"] == "true"
