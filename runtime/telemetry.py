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
milliseconds; gauges of what the store holds (backlog, pending, scheduled retries, the
oldest delivery's age per target, each dead letter's depth), read by a task of each
delivering engine. docs/operations.md lists them with their attributes.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

import attrs

from .event import Event
from .outcomes import Receipt
from .store import StoreError

log = logging.getLogger(__name__)

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _PROPAGATOR: Any = TraceContextTextMapPropagator()
    INSTALLED = True
    import os

    from opentelemetry.environment_variables import OTEL_PYTHON_METER_PROVIDER, OTEL_PYTHON_TRACER_PROVIDER
    from opentelemetry.metrics import _internal as _metrics_internal

    # A provider named by the environment is made by the first getter's call: asked every time.
    _FROM_ENVIRONMENT = OTEL_PYTHON_TRACER_PROVIDER in os.environ or OTEL_PYTHON_METER_PROVIDER in os.environ
except ImportError:  # pragma: no cover - the API is a dev dependency; this is the no-op path
    INSTALLED = False

NAME = "interlock"


_TRACE = ("traceparent", "tracestate")


def _broken(exc: BaseException, seen: set[str]) -> None:
    """Telemetry that raised (a span processor or an exporter of the service's): said once
    per kind of failure, and delivery goes on without it."""
    what = f"{type(exc).__name__}: {exc}"
    if what not in seen and len(seen) < 100:
        seen.add(what)
        log.warning("telemetry failed (%s); delivery goes on", what, exc_info=exc)


@attrs.define
class Span:
    """A publish's or a delivery attempt's span, current until `end`."""

    telemetry: Telemetry
    span: Any
    token: Any
    started: float

    def _close(self, outcome: str | None = None, kind: str | None = None, error: bool = False) -> None:
        try:
            if self.token is not None:
                otel_context.detach(self.token)
                self.token = None
            if outcome is not None:
                self.span.set_attribute("interlock.outcome", outcome)
            if kind is not None:
                self.span.set_attribute("error.type", kind)
                if error:
                    self.span.set_status(Status(StatusCode.ERROR, kind))
            self.span.end()
        except Exception as exc:
            _broken(exc, self.telemetry.broken)


@attrs.define
class Delivery(Span):
    """One delivery attempt's span, current while its handler runs; `end` says how it went."""

    route: str = ""  # the route that delivered it (the first, when several matched)

    def end(self, target: str, outcome: str, kind: str | None = None, latency_ms: float | None = None) -> None:
        telemetry = self.telemetry
        try:
            duration = (time.perf_counter() - self.started) * 1000
            telemetry.handler_duration.record(duration, {"interlock.target": target, "interlock.outcome": outcome})
            counter = telemetry.outcomes.get(outcome)
            if counter is not None:
                counter.add(1, {"interlock.target": target, "interlock.route": self.route})
            if latency_ms is not None and outcome == "delivered":
                telemetry.latency.record(latency_ms, {"interlock.target": target})
        except Exception as exc:
            _broken(exc, telemetry.broken)
        self._close(outcome, kind, error=kind is not None and outcome not in ("retry", "cancelled"))


@attrs.define
class Publish(Span):
    """A publish's span, current while it runs; `event` is what to store (its trace context in it)."""

    event: Event = attrs.field(default=None)

    def end(self, receipt: Receipt | None, error: BaseException | None = None) -> None:
        telemetry = self.telemetry
        try:
            if receipt is not None:
                self.span.set_attribute("interlock.targets", sorted(receipt.targets))
                self.span.set_attribute("interlock.unrouted", receipt.unrouted)
                self.span.set_attribute("interlock.duplicate", receipt.duplicate)
                telemetry.count_publish(self.event, receipt)
            elif error is not None:
                self.span.record_exception(error)
                if isinstance(error, StoreError):
                    telemetry.refused_event(self.event, "store")
        except Exception as exc:
            _broken(exc, telemetry.broken)
        self._close(kind=type(error).__name__ if error is not None else None, error=error is not None)


class Telemetry:
    """The instruments of one engine; `enabled` is False without the OpenTelemetry API.
    `active()`: whether a tracer or meter provider is set to record anything (while none is,
    the API's no-op objects would cost a quarter of delivery's time for nothing)."""

    def __init__(self, event_types: frozenset[str] = frozenset()) -> None:
        self.enabled = INSTALLED
        self.event_types = event_types  # the declared types: any other is counted as `(other)`
        self.broken: set[str] = set()
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

    def active(self) -> bool:
        return self.enabled and (_ACTIVE or _providers_set())

    def _type(self, event_type: str) -> str:
        """An event type as a metric attribute: a publisher can send any type, and each
        attribute value is a series of its own: undeclared ones are one value."""
        return event_type if event_type in self.event_types else "(other)"

    def _parent(self, ev: Event) -> Any:
        """The event's own trace context when it carries a valid one; else None (the current)."""
        if "traceparent" not in ev.extensions:
            return None
        context = _PROPAGATOR.extract(ev.extensions)
        return context if trace.get_current_span(context).get_span_context().is_valid else None

    # ---- publishing ------------------------------------------------------------------------

    def publishing(self, ev: Event) -> Publish | None:
        """Start the publish span, current until `Publish.end`; None if telemetry failed."""
        try:
            span = self.tracer.start_span(f"publish {ev.type}", context=self._parent(ev), kind=SpanKind.PRODUCER,
                                          attributes={"messaging.system": NAME, "messaging.message.id": ev.id,
                                                      "interlock.event.type": ev.type})
            token = otel_context.attach(trace.set_span_in_context(span))
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
        except Exception as exc:
            _broken(exc, self.broken)
            return None
        # The event's own trace context is replaced by the publish span's (the child of it).
        extensions = {name: value for name, value in ev.extensions.items() if name not in _TRACE}
        extensions.update(carrier)
        stored = attrs.evolve(ev, extensions=extensions) if extensions != ev.extensions else ev
        return Publish(self, span, token, time.perf_counter(), stored)

    def count_publish(self, ev: Event, receipt: Receipt) -> None:
        attributes = {"interlock.event.type": self._type(ev.type)}
        if receipt.duplicate:
            self.duplicates.add(1, attributes)
            return
        self.published.add(1, attributes)
        if receipt.unrouted:
            self.unrouted.add(1, attributes)

    def refused_event(self, ev: Event | None, reason: str) -> None:
        try:
            attributes = {"interlock.reason": reason}
            if ev is not None:
                attributes["interlock.event.type"] = self._type(ev.type)
            self.refused.add(1, attributes)
        except Exception as exc:
            _broken(exc, self.broken)

    # ---- delivering ------------------------------------------------------------------------

    def delivering(self, ev: Event, target: str, attempt: int, routes: list[str]) -> Delivery | None:
        """Start an attempt's span, current until `Delivery.end`: the event's publish span its
        parent; None if telemetry failed."""
        try:
            span = self.tracer.start_span(f"deliver {target}", context=self._parent(ev), kind=SpanKind.CONSUMER,
                                          attributes={"messaging.system": NAME, "messaging.message.id": ev.id,
                                                      "interlock.target": target, "interlock.attempt": attempt,
                                                      "interlock.routes": routes, "interlock.event.type": ev.type})
            token = otel_context.attach(trace.set_span_in_context(span))
        except Exception as exc:
            _broken(exc, self.broken)
            return None
        return Delivery(self, span, token, time.perf_counter(), routes[0] if routes else "")

    @staticmethod
    def inject(headers: list[tuple[str, str]]) -> bool:
        """The current span as W3C `traceparent` / `tracestate` headers (an HTTP target's
        request); whether the API is there to do it."""
        if not INSTALLED:
            return False
        carrier: dict[str, str] = {}
        try:
            _PROPAGATOR.inject(carrier)
        except Exception:  # (a broken propagator: the request goes without)
            return True
        headers.extend(carrier.items())
        return True


_NO_TRACING = ("ProxyTracerProvider", "NoOpTracerProvider")
_NO_METRICS = ("_ProxyMeterProvider", "NoOpMeterProvider")
_ACTIVE = False  # a provider was found set: the API lets one be set only once, so it stays


def _providers_set() -> bool:
    """Whether a tracer or meter provider that records is set. On the hot path while none is:
    the API's own globals are read when they are where they have been for years (the public
    getters read the environment on every call), else the getters are asked."""
    global _ACTIVE
    tracer = getattr(trace, "_TRACER_PROVIDER", trace)
    meter = getattr(_metrics_internal, "_METER_PROVIDER", trace)
    if tracer is None and meter is None and not _FROM_ENVIRONMENT:
        return False
    _ACTIVE = (type(trace.get_tracer_provider()).__name__ not in _NO_TRACING
               or type(metrics.get_meter_provider()).__name__ not in _NO_METRICS)
    return _ACTIVE


# ---- gauges: what the store holds, refreshed by a task of each delivering engine -----------


class Gauges:
    """The last reading of one engine's store: per (gauge, attribute value), a number."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], float] = {}


_SOURCES: weakref.WeakSet[Gauges] = weakref.WeakSet()
_REGISTERED = False

#: name: (attribute, unit, description)
GAUGES = {
    "interlock.backlog": ("interlock.target", "{delivery}", "deliveries stored and not yet read, per target"),
    "interlock.pending": ("interlock.target", "{delivery}", "deliveries read and not yet acknowledged, per target"),
    "interlock.retries.scheduled": ("interlock.target", "{delivery}", "retries waiting for their time, per target"),
    "interlock.oldest.age": ("interlock.target", "ms", "age of the oldest delivery not yet done, per target"),
    "interlock.dead_letters.depth": ("interlock.dead_letter", "{event}", "entries in each dead letter"),
}


def watch(gauges: Gauges) -> None:
    """Report `gauges` through the meter `interlock` (the observable gauges made once a process)."""
    global _REGISTERED
    _SOURCES.add(gauges)
    if _REGISTERED or not INSTALLED:
        return
    _REGISTERED = True
    meter = metrics.get_meter(NAME)
    for name, (attribute, unit, description) in GAUGES.items():
        meter.create_observable_gauge(name, [_observer(name, attribute)], unit, description)


def _observer(name: str, attribute: str) -> Any:
    def observe(_options: Any) -> list[Any]:
        return [metrics.Observation(value, {attribute: key}) for source in list(_SOURCES)
                for (gauge, key), value in list(source.values.items()) if gauge == name]

    return observe
