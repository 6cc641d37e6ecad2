"""Traces and metrics through the OpenTelemetry API, read back with the SDK's in-memory
exporter and reader: the spans' parentage (a handler's own span under its delivery, the
delivery under the publish, a publish under the caller's span or the event's
`traceparent`, across the store), and the counters' and histograms' values."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_server import TargetServer
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import interlock

EXPORTER = InMemorySpanExporter()
READER = InMemoryMetricReader()


class _Breakable(SimpleSpanProcessor):
    """A span processor of the service's own that raises while `broken` is set."""

    broken = False

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.broken:
            raise RuntimeError("processor on_start broke")

    def on_end(self, span: ReadableSpan) -> None:
        if self.broken:
            raise RuntimeError("processor on_end broke")


BREAKABLE = _Breakable(InMemorySpanExporter())
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
_provider.add_span_processor(BREAKABLE)
trace.set_tracer_provider(_provider)  # (once per process: the API keeps the first)
metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))
TRACER = trace.get_tracer("tests")

PROJECT = """
event order.created { id: string, amount: int }
dead_letter failed
target billing { mode async, retry { attempts 3, backoff fixed 5ms }, dead_letter failed }
target fraud { mode sync, timeout 1s }
target doomed { mode async, retry { attempts 1 }, dead_letter failed }
route bill { on order.created when amount > 0 to billing, fraud }
route doom { on order.created when amount < 0 to doomed }
"""


BASELINE: dict[tuple[str, tuple[tuple[str, Any], ...]], float] = {}


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    EXPORTER.clear()
    BASELINE.clear()
    BASELINE.update(_points())  # (the metrics are cumulative over the process: each test counts its own)
    yield


def load(text: str = PROJECT, **options: Any) -> interlock.Router:
    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text(text)
    return interlock.load(str(folder / "p.route"), **options)


def spans() -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in EXPORTER.get_finished_spans():
        out.setdefault(span.name, []).append(span)
    return out


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def counters() -> dict[tuple[str, tuple[tuple[str, Any], ...]], float]:
    """What this test added to every data point, by metric name and attributes: to a sum's
    value, to a histogram's count."""
    return {key: value - BASELINE.get(key, 0) for key, value in _points().items()}


def _points() -> dict[tuple[str, tuple[tuple[str, Any], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, Any], ...]], float] = {}
    data = READER.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    out[(metric.name, tuple(sorted(point.attributes.items())))] = (
                        value if value is not None else point.count)
    return out


def wire(router: interlock.Router, fail_first: bool = False) -> None:
    seen: set[str] = set()

    @router.handler("billing")
    async def billing(event: interlock.Event) -> None:
        with TRACER.start_as_current_span("charge the card"):
            if fail_first and event.id not in seen:
                seen.add(event.id)
                raise ConnectionError("card service down")

    @router.handler("fraud")
    def fraud(event: interlock.Event) -> dict[str, float]:
        with TRACER.start_as_current_span("score"):
            return {"score": 0.1}

    @router.handler("doomed")
    async def doomed(event: interlock.Event) -> None:
        raise ValueError("never")


def test_a_handlers_span_nests_under_its_delivery_under_the_publish_under_the_caller() -> None:
    router = load()
    wire(router)

    async def main() -> None:
        async with router:
            with TRACER.start_as_current_span("checkout"):
                await router.publish("order.created", {"id": "o1", "amount": 5}, id="e1")
            await router.drain(10)

    asyncio.run(main())
    got = spans()
    [checkout], [publish] = got["checkout"], got["publish order.created"]
    [billing], [fraud] = got["deliver billing"], got["deliver fraud"]
    [charge], [score] = got["charge the card"], got["score"]
    assert parent_of(publish) == checkout.context.span_id
    assert parent_of(billing) == publish.context.span_id  # through the store, in the event
    assert parent_of(fraud) == publish.context.span_id  # called inside the publish
    assert parent_of(charge) == billing.context.span_id
    assert parent_of(score) == fraud.context.span_id  # a `def` handler, in a thread: nested too
    assert len({s.context.trace_id for s in (checkout, publish, billing, fraud, charge, score)}) == 1
    assert billing.attributes is not None and billing.attributes["interlock.outcome"] == "delivered"
    assert billing.attributes["interlock.target"] == "billing" and billing.attributes["interlock.attempt"] == 1
    assert publish.kind == trace.SpanKind.PRODUCER and billing.kind == trace.SpanKind.CONSUMER


def test_an_event_with_a_traceparent_continues_its_trace_and_its_dead_letter_keeps_it() -> None:
    router = load()
    wire(router)
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    event = {"specversion": "1.0", "id": "t1", "source": "checkout", "type": "order.created",
             "traceparent": f"00-{trace_id}-{parent_id}-01", "data": {"id": "o1", "amount": -1}}

    async def main() -> None:
        async with router:
            await router.publish(event)
            await router.drain(10)

    asyncio.run(main())
    got = spans()
    [publish], [doomed] = got["publish order.created"], got["deliver doomed"]
    assert f"{publish.context.trace_id:032x}" == trace_id
    assert f"{parent_of(publish):016x}" == parent_id
    assert doomed.attributes is not None and doomed.attributes["interlock.outcome"] == "dead_letter"
    assert doomed.attributes["error.type"] == "ValueError"
    assert doomed.status.status_code == trace.StatusCode.ERROR
    [letter] = router.dead_letters("failed")
    assert trace_id in letter.event.extensions["traceparent"]


def test_retries_and_outcomes_are_counted_per_target() -> None:
    router = load()
    wire(router, fail_first=True)

    async def main() -> None:
        async with router:
            for n in range(3):
                await router.publish("order.created", {"id": f"o{n}", "amount": 5}, id=f"r{n}")
            await router.publish("order.created", {"id": "d", "amount": -1}, id="d1")
            await router.publish("order.created", {"id": "d", "amount": -1}, id="d1")  # a duplicate
            await router.publish("other.thing", {}, id="u1")  # unrouted
            with pytest.raises(interlock.SchemaError):
                await router.publish("order.created", {"id": 1, "amount": 5})
            await router.drain(10)

    asyncio.run(main())
    got = counters()
    billing = (("interlock.target", "billing"),)
    by_route = (("interlock.route", "bill"), ("interlock.target", "billing"))
    assert got[("interlock.deliveries.delivered", by_route)] == 3
    assert got[("interlock.deliveries.retried", by_route)] == 3
    doomed = (("interlock.route", "doom"), ("interlock.target", "doomed"))
    assert got[("interlock.deliveries.dead_lettered", doomed)] == 1
    assert got[("interlock.deliveries.delivered", (("interlock.route", "bill"), ("interlock.target", "fraud")))] == 3
    assert got[("interlock.events.published", (("interlock.event.type", "order.created"),))] == 4
    assert got[("interlock.events.duplicate", (("interlock.event.type", "order.created"),))] == 1
    assert got[("interlock.events.unrouted", (("interlock.event.type", "(other)"),))] == 1  # undeclared: one series
    assert got[("interlock.events.refused", (("interlock.reason", "invalid"),))] == 1
    assert got[("interlock.delivery.latency", billing)] == 3  # a histogram: its count
    outcomes = {key[1]: value for key, value in got.items() if key[0] == "interlock.handler.duration"}
    assert outcomes[(("interlock.outcome", "retry"), ("interlock.target", "billing"))] == 3
    assert outcomes[(("interlock.outcome", "delivered"), ("interlock.target", "billing"))] == 3


def test_the_context_travels_through_redis_to_another_router(redis_url: str) -> None:
    import redis

    url = f"{redis_url.rsplit('/', 1)[0]}/7"
    redis.Redis.from_url(url).flushdb()
    publisher = load(store=url)  # no handlers: it only publishes (others deliver on a shared store)
    worker = load(store=url)
    wire(worker)

    async def main() -> None:
        async with worker:
            with TRACER.start_as_current_span("checkout"):
                await publisher.publish("order.created", {"id": "o1", "amount": -5}, id="x1")
            await worker.drain(10)

    asyncio.run(main())
    got = spans()
    [checkout], [publish], [doomed] = got["checkout"], got["publish order.created"], got["deliver doomed"]
    assert parent_of(doomed) == publish.context.span_id and parent_of(publish) == checkout.context.span_id


def test_an_http_target_gets_the_delivery_as_its_traceparent() -> None:
    with TargetServer() as server:
        router = load(f"""
event order.created {{ id: string, amount: int }}
dead_letter failed
target shop {{ http POST "{server.url('/ok')}", dead_letter failed }}
route r {{ on order.created to shop }}
""")

        async def main() -> None:
            async with router:
                await router.publish("order.created", {"id": "o1", "amount": 1}, id="h1")
                await router.drain(10)

        asyncio.run(main())
        [request] = server.of("/ok")
    [deliver] = spans()["deliver shop"]
    assert request.headers["traceparent"].startswith(
        f"00-{deliver.context.trace_id:032x}-{deliver.context.span_id:016x}-")


def test_without_the_opentelemetry_api_delivery_runs_and_records_nothing(tmp_path: Path) -> None:
    (tmp_path / "p.route").write_text(PROJECT)
    script = f"""
import sys, asyncio
sys.modules["opentelemetry"] = None  # as if it were not installed
import interlock
from interlock.runtime import telemetry
assert not telemetry.INSTALLED
router = interlock.load({str(tmp_path / "p.route")!r})
seen = []
router.handler("billing")(lambda event: seen.append(event.id))
router.handler("fraud")(lambda event: None)
router.handler("doomed")(lambda event: None)
async def main():
    async with router:
        await router.publish("order.created", {{"id": "o1", "amount": 5}}, id="n1")
        await router.drain(10)
asyncio.run(main())
assert seen == ["n1"], seen
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


# ---- found by review ---------------------------------------------------------------------------


def test_an_event_with_every_extension_it_may_have_is_still_delivered_and_dead_lettered() -> None:
    # 32 extension attributes, then the publish adds its trace context: stored with 33 or
    # 34, it used to fail every delivery and make its dead letter unreadable.
    router = load()
    wire(router)
    extensions = {f"x{n}": "v" for n in range(32)}
    seen: list[str] = []
    router.engine.handlers.functions["doomed"] = lambda event: seen.append(event.id) or 1 / 0

    async def main() -> None:
        async with router:
            await router.publish({"specversion": "1.0", "id": "x1", "source": "s", "type": "order.created",
                                  **extensions, "data": {"id": "o", "amount": -1}})
            await router.drain(10)

    asyncio.run(main())
    assert seen == ["x1"]
    [letter] = router.dead_letters("failed")
    assert letter.event.extensions["x31"] == "v" and "traceparent" in letter.event.extensions


@pytest.mark.parametrize("extensions", [{"Bad Name": "x"}, {"nested": {"a": 1}}, {"n": 0.5}, {"data_base64": "AA=="},
                                        {f"x{n}": "v" for n in range(40)}, {"long": "v" * 5000},
                                        {"traceparent": 5}, {"tracestate": True}, {"time": "x"}])
def test_bad_extensions_on_an_event_object_are_refused_at_publish(extensions: dict[str, Any]) -> None:
    router = load()
    wire(router)

    async def main() -> None:
        async with router:
            await router.publish(interlock.Event("order.created", {"id": "o", "amount": 1}, extensions=extensions))

    with pytest.raises(interlock.EventError):
        asyncio.run(main())
    assert router.engine.outstanding.count == 0


def test_a_malformed_traceparent_leaves_the_publish_under_the_callers_span() -> None:
    router = load()
    wire(router)

    async def main() -> None:
        async with router:
            with TRACER.start_as_current_span("checkout"):
                await router.publish({"specversion": "1.0", "id": "m1", "source": "s", "type": "order.created",
                                      "traceparent": "ff-0000-bad", "tracestate": "not a tracestate",
                                      "data": {"id": "o", "amount": -1}})
            await router.drain(10)

    asyncio.run(main())
    got = spans()
    [checkout], [publish] = got["checkout"], got["publish order.created"]
    assert parent_of(publish) == checkout.context.span_id
    [letter] = router.dead_letters("failed")
    assert "tracestate" not in letter.event.extensions  # not kept beside a trace it does not belong to


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_telemetry_that_raises_does_not_break_delivery(mode: str) -> None:
    router = load(f"""
event e {{ n: int }}
dead_letter failed
target t {{ mode {mode}, dead_letter failed }}
route r {{ on e to t }}
""")
    seen: list[str] = []
    router.handler("t")(lambda event: seen.append(event.id))

    async def main() -> interlock.Receipt:
        async with router:
            BREAKABLE.broken = True
            try:
                receipt = await router.publish("e", {"n": 1}, id="b1")
                await router.drain(10)
            finally:
                BREAKABLE.broken = False
            return receipt

    receipt = asyncio.run(main())
    assert seen == ["b1"] and receipt.errors == {}
    assert router.dead_letters("failed") == []


def test_refusals_are_counted_when_an_event_is_only_validated() -> None:
    router = load()
    with pytest.raises(interlock.SchemaError):
        router.validate("order.created", {"id": 1, "amount": 5})  # as the ingest checks a request
    assert counters()[("interlock.events.refused", (("interlock.reason", "invalid"),))] == 1


def test_publish_sync_called_from_async_code_keeps_the_callers_span() -> None:
    router = load()
    wire(router)

    async def main() -> None:
        with TRACER.start_as_current_span("caller"):
            router.publish_sync("order.created", {"id": "o", "amount": 0}, id="p1")  # (unrouted: no handler needed)
    asyncio.run(main())
    got = spans()
    [caller], [publish] = got["caller"], got["publish order.created"]
    assert parent_of(publish) == caller.context.span_id


def test_redriving_an_unrouted_event_keeps_its_trace_and_attributes() -> None:
    router = load()
    wire(router)

    async def main() -> None:
        async with router:
            await router.publish({"specversion": "1.0", "id": "u1", "source": "checkout", "type": "order.created",
                                  "subject": "o-9", "data": {"id": "o", "amount": 0}})
            await router.redrive("unrouted")
            await router.drain(10)

    asyncio.run(main())
    first, again = spans()["publish order.created"]
    assert again.context.trace_id == first.context.trace_id
    [letter] = router.dead_letters("unrouted")  # unrouted again
    assert letter.event.source == "checkout" and letter.event.extensions["subject"] == "o-9"


def test_gauges_read_what_the_store_holds() -> None:
    router = load(housekeeping_ms=50)  # (gauges read every 50 ms)
    wire(router)
    release = asyncio.Event()

    async def billing(event: interlock.Event) -> None:
        await release.wait()

    router.engine.handlers.functions["billing"] = billing

    async def main() -> dict[tuple[str, tuple[tuple[str, Any], ...]], float]:
        async with router:
            for n in range(40):  # billing takes 16 at once (its concurrency): the rest wait in the store
                await router.publish("order.created", {"id": f"o{n}", "amount": 5}, id=f"g{n}")
            await router.publish("order.created", {"id": "d", "amount": -1}, id="gd")  # dead-lettered
            await asyncio.sleep(0.5)
            points = _points()
            release.set()
            await router.drain(10)
            return points

    points = asyncio.run(main())
    billing_target = (("interlock.target", "billing"),)
    assert points[("interlock.pending", billing_target)] + points[("interlock.backlog", billing_target)] == 40
    assert points[("interlock.pending", billing_target)] >= 16
    assert points[("interlock.oldest.age", billing_target)] >= 300
    assert points[("interlock.dead_letters.depth", (("interlock.dead_letter", "failed"),))] == 1
