"""Traces and metrics through the OpenTelemetry API, when it is installed (`interlock[otel]`);
without it, every call here is a no-op (the API is looked for once, at import).

Traces (tracer `interlock`):
- a publish is a span `publish TYPE` (kind PRODUCER), a child of the span current where
  `publish` was called, or, when the event came with a `traceparent` (a CloudEvents
  extension attribute, kept with the event), of that: the trace goes on. The event is stored
  with the publish span's `traceparent` (and `tracestate`), so the context travels with it
  through the store to whichever process delivers it;
- each delivery attempt is a span `deliver TARGET` (kind CONSUMER), a child of the publish
  span, current while the handler runs (so a handler's own spans nest under it; an HTTP
  target's request carries it as the W3C `traceparent` header), with the target, attempt,
  routes, event id, and its outcome: `delivered`, `retry`, `dead_letter`, `dropped` or
  `failed` (a sync target's failure told to its publisher), and the error kind.

Metrics (meter `interlock`): counters of events published, unrouted, duplicate and refused;
of deliveries delivered, retried, dead-lettered and dropped per target; histograms of the
handler's duration and of the end-to-end latency (published to delivered) per target, in
milliseconds. docs/operations.md lists them with their attributes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import attrs

from .event import Event

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _PROPAGATOR: Any = TraceContextTextMapPropagator()
    INSTALLED = True
except ImportError:  # pragma: no cover - the API is a dev dependency; this is the no-op path
    INSTALLED = False

NAME = "interlock"


@attrs.define
class Delivery:
    """One delivery attempt's span, current while its handler runs; `end` says how it went."""

    span: Any
    token: Any
    started: float

    def end(self, telemetry: Telemetry, target: str, outcome: str, kind: str | None = None,
            latency_ms: float | None = None) -> None:
        if self.token is not None:
            otel_context.detach(self.token)
            self.token = None
        duration = (time.perf_counter() - self.started) * 1000
        attributes = {"interlock.target": target, "interlock.outcome": outcome}
        telemetry.handler_duration.record(duration, attributes)
        counter = telemetry.outcomes.get(outcome)
        if counter is not None:
            counter.add(1, {"interlock.target": target})
        if latency_ms is not None and outcome == "delivered":
            telemetry.latency.record(latency_ms, {"interlock.target": target})
        self.span.set_attribute("interlock.outcome", outcome)
        if kind is not None:
            self.span.set_attribute("error.type", kind)
            if outcome != "retry":
                self.span.set_status(Status(StatusCode.ERROR, kind))
        self.span.end()


class Telemetry:
    """The instruments of one engine; `enabled` is False without the OpenTelemetry API."""

    def __init__(self) -> None:
        self.enabled = INSTALLED
        if not self.enabled:
            return
        self.tracer = trace.get_tracer(NAME)
        meter = metrics.get_meter(NAME)
        self.published = meter.create_counter(
            "interlock.events.published", "{event}", "events accepted by a publish (duplicates not counted)")
        self.unrouted = meter.create_counter("interlock.events.unrouted", "{event}", "events no route matched")
        self.duplicates = meter.create_counter(
            "interlock.events.duplicate", "{event}", "publishes of an id already accepted: delivered to no one")
        self.refused = meter.create_counter(
            "interlock.events.refused", "{event}", "publishes refused: a bad event, or a store that refused it")
        self.outcomes = {
            "delivered": meter.create_counter("interlock.deliveries.delivered", "{delivery}",
                                              "deliveries a handler took"),
            "retry": meter.create_counter("interlock.deliveries.retried", "{delivery}",
                                          "failed attempts whose retry was scheduled"),
            "dead_letter": meter.create_counter("interlock.deliveries.dead_lettered", "{delivery}",
                                                "deliveries given up on, into a dead letter"),
            "dropped": meter.create_counter("interlock.deliveries.dropped", "{delivery}",
                                            "deliveries given up on without a dead letter (on_exhausted drop)"),
            "failed": meter.create_counter("interlock.deliveries.failed", "{delivery}",
                                           "sync deliveries that failed after their retries (told to the publisher)"),
        }
        self.handler_duration = meter.create_histogram(
            "interlock.handler.duration", "ms", "how long one attempt took, by target and outcome")
        self.latency = meter.create_histogram(
            "interlock.delivery.latency", "ms", "from the publish to the delivery that succeeded, by target")

    # ---- publishing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def publishing(self, ev: Event) -> Iterator[tuple[Any, Event]]:
        """The publish span, current inside; the event to store, with the span's context in it."""
        parent = _PROPAGATOR.extract(ev.extensions) if "traceparent" in ev.extensions else None
        with self.tracer.start_as_current_span(f"publish {ev.type}", context=parent, kind=SpanKind.PRODUCER,
                                               attributes={"messaging.system": NAME,
                                                           "messaging.message.id": ev.id,
                                                           "interlock.event.type": ev.type}) as span:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            extensions = {**ev.extensions, **carrier}
            yield span, attrs.evolve(ev, extensions=extensions) if extensions != ev.extensions else ev

    def published_as(self, span: Any, ev: Event, targets: frozenset[str], unrouted: bool, duplicate: bool) -> None:
        span.set_attribute("interlock.targets", sorted(targets))
        span.set_attribute("interlock.unrouted", unrouted)
        span.set_attribute("interlock.duplicate", duplicate)
        attributes = {"interlock.event.type": ev.type}
        if duplicate:
            self.duplicates.add(1, attributes)
            return
        self.published.add(1, attributes)
        if unrouted:
            self.unrouted.add(1, attributes)

    def refused_event(self, ev: Event | None, reason: str) -> None:
        self.refused.add(1, {"interlock.reason": reason, **({"interlock.event.type": ev.type} if ev else {})})

    # ---- delivering ------------------------------------------------------------------------

    def delivering(self, ev: Event, target: str, attempt: int, routes: list[str]) -> Delivery:
        """Start an attempt's span, current until `Delivery.end`: the event's publish span its parent."""
        parent = _PROPAGATOR.extract(ev.extensions) if "traceparent" in ev.extensions else None
        span = self.tracer.start_span(f"deliver {target}", context=parent, kind=SpanKind.CONSUMER, attributes={
            "messaging.system": NAME, "messaging.message.id": ev.id, "interlock.target": target,
            "interlock.attempt": attempt, "interlock.routes": routes, "interlock.event.type": ev.type})
        token = otel_context.attach(trace.set_span_in_context(span))
        return Delivery(span, token, time.perf_counter())

    @staticmethod
    def inject(headers: list[tuple[str, str]]) -> None:
        """The current span as W3C `traceparent` / `tracestate` headers (an HTTP target's request)."""
        if INSTALLED:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            headers.extend(carrier.items())
