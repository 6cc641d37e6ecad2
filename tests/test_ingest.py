"""The HTTP ingest (interlock/ingest.py), served by a real uvicorn server on a loopback port.

A small project (an event with a schema, an async and a sync target) with Python handlers;
requests in each CloudEvents mode, and every way a request can be refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from served import Served, raw_exchange

import interlock
from interlock.ingest import create_app
from interlock.runtime.store import StoreFull

PROJECT = """
event order.created { id: string, amount: float }
dead_letter dlq
target billing { mode async, dead_letter dlq, retry { attempts 2 backoff fixed 10ms } }
target quote { mode sync, timeout 1s }
route orders { on order.created to billing }
route quotes { on quote.requested to quote }
"""
STRUCTURED = {"content-type": "application/cloudevents+json"}
BATCH = {"content-type": "application/cloudevents-batch+json"}


def cloudevent(event_id: str, event_type: str = "order.created", data: Any = None, **attributes: Any) -> dict[str, Any]:
    data = {"id": event_id, "amount": 10} if data is None else data
    return {"specversion": "1.0", "id": event_id, "source": "tests", "type": event_type, "data": data, **attributes}


def binary_headers(event_id: str, event_type: str = "order.created", **extra: str) -> dict[str, str]:
    return {"content-type": "application/json", "ce-specversion": "1.0", "ce-id": event_id, "ce-type": event_type,
            "ce-source": "tests", **extra}


class Ingest:
    """The router, what its handlers saw, and the server."""

    def __init__(self, router: interlock.Router, served: Served, seen: list[interlock.Event]) -> None:
        self.router = router
        self.served = served
        self.seen = seen
        self.url = served.url

    def post(self, body: Any = None, headers: dict[str, str] | None = None, content: bytes | None = None,
             **options: Any) -> httpx.Response:
        if content is None:
            content = json.dumps(body).encode()
        return httpx.post(f"{self.url}/events", content=content, headers=headers or STRUCTURED, timeout=10, **options)

    def drain(self) -> None:
        self.served.call(self.router.drain(5))

    def handled(self) -> list[str]:
        self.drain()
        return [event.id for event in self.seen]


def quote(event: interlock.Event) -> Any:
    if event.data.get("odd"):
        return {1, 2}  # not JSON: the receipt shows its text
    return {"price": 2 * event.data.get("n", 0)}


def make_router(tmp_path: Path, store: str | interlock.EventStore = "memory://", quote: Any = quote
                ) -> tuple[interlock.Router, list[interlock.Event]]:
    """The project's router, its handlers registered: `billing` records the events it gets."""
    project = tmp_path / "shop.route"
    project.write_text(PROJECT)
    router = interlock.load(str(project), store=store)
    seen: list[interlock.Event] = []

    @router.handler("billing")
    async def billing(event: interlock.Event) -> None:
        seen.append(event)

    router.handler("quote")(quote)
    return router, seen


@pytest.fixture
def ingest(tmp_path: Path) -> Iterator[Ingest]:
    router, seen = make_router(tmp_path)
    with Served(create_app(router, max_body_bytes=4096, max_batch=10)) as served:
        yield Ingest(router, served, seen)


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["type"].startswith("urn:interlock:problem:") and problem["title"]
    for fragment in fragments:
        assert fragment in problem["detail"], problem
    assert "Traceback" not in response.text
    return problem


# ---- accepted ------------------------------------------------------------------------


def test_a_structured_event_is_published_and_delivered(ingest: Ingest) -> None:
    response = ingest.post(cloudevent("s-1"))
    assert response.status_code == 202
    assert response.json() == {"id": "s-1", "targets": ["billing"], "unrouted": False, "duplicate": False,
                               "replies": {}, "errors": {}, "failures": {}}
    assert ingest.handled() == ["s-1"]
    assert ingest.seen[0].data == {"id": "s-1", "amount": 10} and ingest.seen[0].source == "tests"
    with_charset = ingest.post(cloudevent("s-2"), {"content-type": "application/cloudevents+json; charset=utf-8"})
    assert with_charset.status_code == 202 and with_charset.json()["id"] == "s-2"


def test_a_binary_event_takes_its_attributes_from_headers(ingest: Ingest) -> None:
    headers = binary_headers("b-1", **{"ce-time": "2024-05-02T09:14:00Z", "ce-source": "shop%2Fcheckout"})
    response = ingest.post({"id": "o-1", "amount": 5.5}, headers)
    assert response.status_code == 202 and response.json()["targets"] == ["billing"]
    assert ingest.handled() == ["b-1"]
    event = ingest.seen[0]
    assert (event.type, event.data, event.time, event.source) == (
        "order.created", {"id": "o-1", "amount": 5.5}, "2024-05-02T09:14:00Z", "shop/checkout")
    untyped = binary_headers("b-2")
    del untyped["content-type"]  # none at all: binary mode too
    assert ingest.post({"id": "o-2", "amount": 1}, untyped).status_code == 202
    vendor = binary_headers("b-3", **{"content-type": "application/vnd.shop+json"})
    assert ingest.post({"id": "o-3", "amount": 1}, vendor).status_code == 202
    assert ingest.handled() == ["b-1", "b-2", "b-3"]


def test_a_sync_target_replies_in_the_receipt(ingest: Ingest) -> None:
    response = ingest.post({"n": 21}, binary_headers("q-1", "quote.requested"))
    assert response.status_code == 202
    assert response.json()["replies"] == {"quote": {"price": 42}}
    odd = ingest.post(cloudevent("q-2", "quote.requested", {"odd": True}))
    assert odd.json()["replies"] == {"quote": "{1, 2}"}


def test_a_batch_is_published_in_order(ingest: Ingest) -> None:
    batch = [cloudevent("a-1"), cloudevent("a-2", "quote.requested", {"n": 1}), cloudevent("a-3", "misc.noise", {}),
             cloudevent("a-4")]
    response = ingest.post(batch, BATCH)
    assert response.status_code == 202
    receipts = response.json()["receipts"]
    assert [r["id"] for r in receipts] == ["a-1", "a-2", "a-3", "a-4"]
    assert [r["targets"] for r in receipts] == [["billing"], ["quote"], [], ["billing"]]
    assert receipts[1]["replies"] == {"quote": {"price": 2}} and receipts[2]["unrouted"] is True
    assert ingest.handled() == ["a-1", "a-4"]


def test_an_id_posted_again_is_a_duplicate(ingest: Ingest) -> None:
    assert ingest.post(cloudevent("d-1")).json()["duplicate"] is False
    again = ingest.post(cloudevent("d-1"))
    assert again.status_code == 202
    assert again.json() == {"id": "d-1", "targets": [], "unrouted": False, "duplicate": True, "replies": {},
                            "errors": {}, "failures": {}}
    assert ingest.handled() == ["d-1"]


def test_an_event_no_route_takes_is_unrouted(ingest: Ingest) -> None:
    response = ingest.post(cloudevent("u-1", "inventory.recount", {"sku": "x"}))
    assert response.status_code == 202
    assert response.json()["unrouted"] is True and response.json()["targets"] == []
    assert [d.event.id for d in ingest.router.dead_letters("unrouted")] == ["u-1"]


# ---- refused: 400 --------------------------------------------------------------------


def test_data_that_breaks_the_schema_is_400_naming_the_field(ingest: Ingest) -> None:
    response = ingest.post(cloudevent("x-1", data={"id": "o", "amount": "lots"}))
    assert_problem(response, 400, "field `amount` must be a float")
    assert ingest.handled() == []


@pytest.mark.parametrize(("missing", "detail"), [("ce-id", "`ce-id` header is missing"),
                                                 ("ce-source", "`ce-source` header is missing"),
                                                 ("ce-specversion", "`ce-specversion` header is missing")])
def test_a_binary_event_without_a_required_header_is_400(ingest: Ingest, missing: str, detail: str) -> None:
    headers = binary_headers("h-1")
    del headers[missing]
    assert_problem(ingest.post({"id": "o", "amount": 1}, headers), 400, detail)


def test_invalid_attributes_are_400_naming_them(ingest: Ingest) -> None:
    assert_problem(ingest.post({}, binary_headers("h-2", **{"ce-specversion": "0.3"})), 400, "`ce-specversion`")
    assert_problem(ingest.post({}, binary_headers("h-3", **{"ce-time": "yesterday"})), 400, "`ce-time`")
    assert_problem(ingest.post([1], binary_headers("h-4")), 400, "JSON object, not an array")
    no_id = cloudevent("h-5")
    del no_id["id"]
    assert_problem(ingest.post(no_id), 400, "`id`")
    assert_problem(ingest.post(cloudevent("h-6", time="soon")), 400, "`time`")
    assert_problem(ingest.post(cloudevent("h-7", data_base64="AAAA")), 400, "`data_base64`")
    assert_problem(ingest.post(cloudevent("h-8", "not a type!")), 400, "event type")
    assert_problem(ingest.post({}, {"content-type": "application/json"}), 400, "`ce-specversion` header is missing",
                   "application/cloudevents+json")
    assert ingest.handled() == []


def test_a_body_that_is_not_json_is_400(ingest: Ingest) -> None:
    assert_problem(ingest.post(content=b'{"specversion": "1.0", ', headers=STRUCTURED), 400, "not valid JSON")
    assert_problem(ingest.post(content=b"[NaN]", headers=BATCH), 400, "not valid JSON", "NaN")
    assert_problem(ingest.post(content=b"\xff\xfe{", headers=binary_headers("j-1")), 400, "not valid JSON")
    assert_problem(ingest.post({"not": "a list"}, BATCH), 400, "a batch is a JSON array")


def test_a_batch_with_a_bad_event_names_its_index_and_publishes_nothing(ingest: Ingest) -> None:
    batch = [cloudevent("c-1"), cloudevent("c-2"), cloudevent("c-3", data={"id": "o"}), "not an event"]
    problem = assert_problem(ingest.post(batch, BATCH), 400, "event [2]", "field `amount` is required")
    assert problem["index"] == 2
    assert_problem(ingest.post([cloudevent("c-1"), 7], BATCH), 400, "event [1]", "JSON object")
    assert ingest.handled() == []
    assert ingest.post(cloudevent("c-1")).json()["duplicate"] is False  # never published


# ---- refused: 413, 415 -----------------------------------------------------------------


def test_a_content_length_over_the_limit_is_413_before_the_body_is_read(ingest: Ingest) -> None:
    head = (b"POST /events HTTP/1.1\r\nHost: test\r\nContent-Type: application/cloudevents+json\r\n"
            b"Content-Length: 100000000\r\n\r\n")
    status, response = raw_exchange(ingest.served.port, head)  # no body sent at all
    assert status == 413 and b"at most 4096" in response and b"connection: close" in response.lower()


def test_a_chunked_body_is_413_as_soon_as_it_passes_the_limit(ingest: Ingest) -> None:
    head = (b"POST /events HTTP/1.1\r\nHost: test\r\nContent-Type: application/cloudevents+json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"800\r\n" + b" " * 0x800 + b"\r\n"  # 2048 bytes a chunk; the body never ends
    status, response = raw_exchange(ingest.served.port, head, [chunk, chunk, chunk])
    assert status == 413 and b"longer than 4096 bytes" in response


def test_an_ordinary_client_gets_413_too(ingest: Ingest) -> None:
    assert_problem(ingest.post(content=b" " * 5000, headers=STRUCTURED), 413, "4096")
    assert_problem(ingest.post([cloudevent(f"m-{n}") for n in range(11)], BATCH), 413, "at most 10")
    assert ingest.handled() == []


def test_an_event_larger_than_the_store_takes_is_413_and_publishes_nothing(tmp_path: Path) -> None:
    """Within the body's limit, an event over the store's `max_event_bytes` is a 413 that gives
    its size and the limit, in every mode, before its sync target is called."""
    called: list[str] = []

    def counted(event: interlock.Event) -> Any:
        called.append(event.id)
        return quote(event)

    router, seen = make_router(tmp_path, store="memory://?max_event_bytes=1000", quote=counted)
    with Served(create_app(router, max_body_bytes=4096, max_batch=10)) as served:
        ingest = Ingest(router, served, seen)
        large = {"n": 1, "pad": "x" * 1000}
        problem = assert_problem(ingest.post(cloudevent("l-1", "quote.requested", large)), 413, "the event is 1,",
                                 "bytes (its data as JSON, with its attributes)", "at most 1,000", "max_event_bytes")
        assert problem["type"] == "urn:interlock:problem:too-large"
        assert_problem(ingest.post(large, binary_headers("l-2", "quote.requested")), 413, "at most 1,000")
        batch = [cloudevent("l-3"), cloudevent("l-4", "quote.requested", large)]
        assert assert_problem(ingest.post(batch, BATCH), 413, "event [1]: the event is")["index"] == 1
        assert ingest.post(cloudevent("l-5", "quote.requested", {"n": 1})).status_code == 202
        assert ingest.handled() == [] and called == ["l-5"]


def test_data_nested_too_deep_is_400_naming_the_limit(ingest: Ingest) -> None:
    """Past 64 levels the event is refused naming the place; past what Python's JSON decoder
    reads (its recursion), the body is, with no traceback either way."""
    within = b'{"d":' + b"[" * 63 + b"]" * 63 + b"}"  # the data and 63 lists: 64 levels
    assert ingest.post(content=within, headers=binary_headers("n-1", "note.added")).status_code == 202
    past = b'{"d":' + b"[" * 64 + b"]" * 64 + b"}"
    assert_problem(ingest.post(content=past, headers=binary_headers("n-2", "note.added")), 400,
                   "field `d" + "[0]" * 63 + "` is nested deeper than 64 levels")
    far = b'{"d":' + b"[" * 2000 + b"]" * 2000 + b"}"
    assert_problem(ingest.post(content=far, headers=binary_headers("n-3", "note.added")), 400,
                   "the body is nested too deep to read (event data is nested at most 64 levels)")


def test_a_content_type_that_is_not_json_is_415(ingest: Ingest) -> None:
    assert_problem(ingest.post(content=b"id=1", headers={"content-type": "text/plain"}), 415, "text/plain")
    assert_problem(ingest.post(content=b"<e/>", headers={"content-type": "application/cloudevents+xml"}), 415,
                   "JSON event format")


# ---- a token -------------------------------------------------------------------------


def test_a_token_is_required_when_set(tmp_path: Path) -> None:
    router, seen = make_router(tmp_path)
    token = "s3cret-t0ken"
    with Served(create_app(router, token=token)) as served:
        url = f"{served.url}/events"
        body = json.dumps(cloudevent("t-1")).encode()
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {token}"}):
            response = httpx.post(url, content=body, headers={**STRUCTURED, **headers})
            assert_problem(response, 401)
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert token not in response.text
        ok = httpx.post(url, content=body, headers={**STRUCTURED, "authorization": f"Bearer {token}"})
        assert ok.status_code == 202
        assert httpx.get(f"{served.url}/healthz").status_code == 200  # probes need no token
        assert httpx.get(f"{served.url}/openapi.json").json()["paths"]["/events"]["post"]["security"] == [
            {"bearer": []}]
        served.call(router.drain(5))
    assert [e.id for e in seen] == ["t-1"]


# ---- the store refuses: 503 ---------------------------------------------------------------


def test_a_stopped_redis_is_503_with_retry_after(tmp_path: Path, make_redis_server: Any) -> None:
    server = make_redis_server(password="pa55word")
    router, _ = make_router(tmp_path, server.url)
    with Served(create_app(router)) as served:
        assert httpx.post(f"{served.url}/events", content=json.dumps(cloudevent("r-1")), headers=STRUCTURED,
                          timeout=10).status_code == 202
        served.call(router.drain(5))
        server.kill()
        response = httpx.post(f"{served.url}/events", content=json.dumps(cloudevent("r-2")), headers=STRUCTURED,
                              timeout=10)
        assert_problem(response, 503, "StoreUnavailable", "cannot reach Redis at redis://:***@127.0.0.1")
        assert response.headers["retry-after"] == "1"
        assert "pa55word" not in response.text
        # Not ready while the store does not answer (a balancer sends elsewhere), ready again after.
        readyz = httpx.get(f"{served.url}/readyz", timeout=10)
        assert_problem(readyz, 503, "the store does not answer")
        assert "pa55word" not in readyz.text
        server.start()
        deadline = time.monotonic() + 15
        while httpx.get(f"{served.url}/readyz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "not ready again after the store came back"
            time.sleep(0.2)


class FlakyStore(interlock.MemoryStore):
    """A memory store whose publishes fail while `full` is set."""

    full = False

    async def append_all(self, *args: Any, **kwargs: Any) -> Any:
        if self.full:
            raise StoreFull("deliveries.billing is full")
        return await super().append_all(*args, **kwargs)


def test_a_batch_refused_part_way_says_what_was_published(tmp_path: Path) -> None:
    store = FlakyStore()
    calls = 0

    def filling(event: interlock.Event) -> Any:
        nonlocal calls
        calls += 1
        store.full = calls == 1  # the store fills up during the first publish of f-2
        return {}

    router, seen = make_router(tmp_path, store, filling)
    with Served(create_app(router)) as served:
        batch = [cloudevent("f-1"), cloudevent("f-2", "quote.requested", {}), cloudevent("f-3")]
        response = httpx.post(f"{served.url}/events", content=json.dumps(batch), headers=BATCH)
        problem = assert_problem(response, 503, "event [1]", "StoreFull", "deliveries.billing is full")
        assert response.headers["retry-after"] == "1"
        assert problem["index"] == 1 and [r["id"] for r in problem["receipts"]] == ["f-1"]
        store.full = False
        again = httpx.post(f"{served.url}/events", content=json.dumps(batch), headers=BATCH)
        assert again.status_code == 202
        assert [r["duplicate"] for r in again.json()["receipts"]] == [True, False, False]
        served.call(router.drain(5))
    assert [e.id for e in seen] == ["f-1", "f-3"]


# ---- probes and the API document --------------------------------------------------------


def test_health_and_readiness(ingest: Ingest) -> None:
    assert httpx.get(f"{ingest.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{ingest.url}/readyz").status_code == 200
    ingest.served.call(ingest.router.__aexit__(None, None, None))  # delivery stops; the server runs on
    assert_problem(httpx.get(f"{ingest.url}/readyz"), 503, "delivery is not running")
    assert httpx.get(f"{ingest.url}/healthz").status_code == 200


def test_the_openapi_document_lists_every_route(tmp_path: Path) -> None:
    router, _ = make_router(tmp_path)
    app = create_app(router, max_batch=7)
    with Served(app) as served:
        response = httpx.get(f"{served.url}/openapi.json")
        unknown = httpx.get(f"{served.url}/nowhere")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    for route in app.routes:
        methods = {m.lower() for m in getattr(route, "methods", ())} - {"head"}
        assert methods and methods <= set(document["paths"][getattr(route, "path", "")]), route
    post = document["paths"]["/events"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/cloudevents+json",
                                                   "application/cloudevents-batch+json", "application/json"}
    assert post["requestBody"]["content"]["application/cloudevents-batch+json"]["schema"]["maxItems"] == 7
    assert {"202", "400", "413", "415", "503"} <= set(post["responses"]) and "401" not in post["responses"]
    assert {"CloudEvent", "Receipt", "Problem"} <= set(document["components"]["schemas"])
    assert "securitySchemes" not in document["components"] and "security" not in post
    assert_problem(unknown, 404)


# ---- found by review ---------------------------------------------------------------------


def test_a_lone_surrogate_or_an_infinite_number_is_a_400_and_a_batch_with_one_stores_nothing(
        ingest: Ingest) -> None:
    # Raw JSON text: json.dumps would escape what the test means to send as it is.
    head = b'{"specversion":"1.0","source":"t","type":"order.created",'
    surrogate = head + b'"id":"s1","data":{"id":"a\\ud800","amount":1}}'
    assert_problem(ingest.post(content=surrogate), 400, "field `id` holds a lone surrogate")
    infinite = head + b'"id":"s2","data":{"id":"a","amount":1e999}}'
    assert_problem(ingest.post(content=infinite), 400, "field `amount` is inf")
    key = head + b'"id":"s3","data":{"id":"a","amount":1,"\\ud800":1}}'
    assert_problem(ingest.post(content=key), 400, "lone surrogate")
    batch = b"[" + json.dumps(cloudevent("ok-0")).encode() + b"," + surrogate + b"]"
    assert_problem(ingest.post(content=batch, headers=BATCH), 400, "event [1]")
    assert ingest.handled() == []


def test_a_sync_reply_that_is_not_unicode_or_too_deep_still_gets_its_receipt(tmp_path: Path) -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]

    def odd_quote(event: interlock.Event) -> Any:
        return "caf\udce9" if event.data.get("n") == 1 else deep

    router, _seen = make_router(tmp_path, quote=odd_quote)
    with Served(create_app(router)) as served:
        for n in (1, 2):
            response = httpx.post(f"{served.url}/events", headers=STRUCTURED, timeout=10,
                                  content=json.dumps(cloudevent(f"q{n}", "quote.requested", {"n": n})))
            assert response.status_code == 202, response.text
            reply = response.json()["replies"]["quote"]
            assert reply == "caf\udce9" if n == 1 else "nested too deep" in reply


def test_data_that_is_not_an_object_is_refused_not_emptied(ingest: Ingest) -> None:
    for data in ([], 0, "", False):
        event = {**cloudevent("d1"), "data": data}
        assert_problem(ingest.post(event), 400, "data must be a JSON object")
    assert ingest.handled() == []


def test_a_json_datacontenttype_with_parameters_or_capitals_is_json(ingest: Ingest) -> None:
    for n, content_type in enumerate(("application/json; charset=utf-8", "Application/JSON", None)):
        response = ingest.post(cloudevent(f"c{n}", datacontenttype=content_type))
        assert response.status_code == 202, response.text


def test_a_trailing_slash_is_not_redirected_to_the_host_a_client_names(ingest: Ingest) -> None:
    response = httpx.post(f"{ingest.url}/events/", content=json.dumps(cloudevent("t1")), timeout=10,
                          headers={**STRUCTURED, "host": "evil.example"})
    assert_problem(response, 404)
    assert "location" not in response.headers


def test_a_ce_header_given_twice_is_refused(ingest: Ingest) -> None:
    headers = [*binary_headers("x1").items(), ("ce-id", "x2")]
    response = httpx.post(f"{ingest.url}/events", content=b'{"id":"a","amount":1}', headers=headers, timeout=10)
    assert_problem(response, 400, "`ce-id` header is given more than once")


def test_a_body_that_trickles_past_the_timeout_is_a_408(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import time

    from interlock import ingest_request

    monkeypatch.setattr(ingest_request, "BODY_TIMEOUT", 0.5)
    head = (b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/cloudevents+json\r\n"
            b"Content-Length: 100\r\n\r\n")
    with socket.create_connection(("127.0.0.1", ingest.served.port), timeout=5) as sock:
        sock.sendall(head + b"{")
        time.sleep(1.0)
        response = sock.recv(65536)
    assert response.split(b" ", 2)[1] == b"408", response


def test_a_handler_that_calls_sys_exit_fails_its_delivery_not_the_server(tmp_path: Path) -> None:
    import sys

    def leaving(event: interlock.Event) -> Any:
        sys.exit(4)

    router, _seen = make_router(tmp_path, quote=leaving)
    with Served(create_app(router)) as served:
        response = httpx.post(f"{served.url}/events", headers=STRUCTURED, timeout=10,
                              content=json.dumps(cloudevent("x1", "quote.requested", {"n": 1})))
        assert response.status_code == 202, response.text
        assert "SystemExit" in response.json()["errors"]["quote"]
        assert httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200
