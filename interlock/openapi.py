"""The OpenAPI 3.1 document of the HTTP ingest (`GET /openapi.json`), written by hand.

It describes what `interlock/ingest.py` does: keep the two together when either changes
(`tests/test_ingest.py` checks that every route of the app is in it).
"""

from __future__ import annotations

from typing import Any

import interlock
from interlock.ingest_request import BATCH, STRUCTURED
from interlock.problems import MEDIA_TYPE as PROBLEM

_REF = "#/components/schemas/"


def _problem(description: str, schema: str = "Problem", headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description,
                                "content": {PROBLEM: {"schema": {"$ref": _REF + schema}}}}
    if headers:
        response["headers"] = headers
    return response


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _REF + schema}}}}


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before posting again", "schema": {"type": "integer"}}}

_BINARY_HEADERS = [
    {"name": name, "in": "header", "required": False, "schema": {"type": "string"},
     "description": f"binary mode: the CloudEvent attribute `{name.removeprefix('ce-')}`"
                    + ("" if name == "ce-time" else " (required in binary mode)")}
    for name in ("ce-specversion", "ce-id", "ce-type", "ce-source", "ce-time")
]

_SCHEMAS: dict[str, Any] = {
    "CloudEvent": {
        "type": "object",
        "description": "A CloudEvents 1.0 event in the JSON format. `data` is a JSON object checked against "
                       "the schema declared for `type`, if any; `id` is what idempotency keys on.",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1},
            "source": {"type": "string", "minLength": 1},
            "type": {"type": "string", "minLength": 1, "examples": ["order.created"]},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"type": "string", "examples": ["application/json"]},
            "data": {"type": "object"},
        },
    },
    "Receipt": {
        "type": "object",
        "required": ["id", "targets", "unrouted", "duplicate", "replies", "errors", "failures"],
        "properties": {
            "id": {"type": "string", "description": "the event's id"},
            "targets": {"type": "array", "items": {"type": "string"},
                        "description": "every target the event was routed to, sorted"},
            "unrouted": {"type": "boolean", "description": "no route matched: kept in the unrouted dead letter"},
            "duplicate": {"type": "boolean",
                          "description": "an event with this id was accepted already: delivered to no one now"},
            "replies": {"type": "object", "additionalProperties": True,
                        "description": "per sync target, its reply (a reply that is not JSON: its text)"},
            "errors": {"type": "object", "additionalProperties": {"type": "string"},
                       "description": "per sync target that failed after its retries, the error"},
            "failures": {"type": "object", "description": "the same targets' last attempts",
                         "additionalProperties": {
                             "type": "object", "required": ["attempt", "kind", "message", "status"],
                             "properties": {"attempt": {"type": "integer"},
                                            "kind": {"type": "string", "description": "the error kind"},
                                            "message": {"type": "string"},
                                            "status": {"type": ["integer", "null"],
                                                       "description": "an HTTP target's response status"}}}},
        },
    },
    "Receipts": {
        "type": "object",
        "required": ["receipts"],
        "properties": {"receipts": {"type": "array", "items": {"$ref": _REF + "Receipt"},
                                    "description": "one per event of the batch, in order"}},
    },
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri", "examples": ["urn:interlock:problem:invalid-event"]},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string", "description": "what was wrong, naming the header, attribute or field"},
            "index": {"type": "integer", "description": "a batch: the index of the event concerned"},
        },
    },
    "BatchProblem": {
        "description": "A batch refused part way: the events before `index` were published (their receipts "
                       "are here); none from `index` on. Posting the batch again is safe (the published ones "
                       "are then duplicates).",
        "allOf": [
            {"$ref": _REF + "Problem"},
            {"type": "object", "properties": {"receipts": {"type": "array", "items": {"$ref": _REF + "Receipt"}}}},
        ],
    },
    "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
}


def openapi_document(*, token: bool, max_body_bytes: int, max_batch: int) -> dict[str, Any]:
    """The document for an ingest with these settings (`token`: whether a bearer token is required)."""
    events: dict[str, Any] = {
        "summary": "Publish one event or a batch",
        "description": "Structured (`application/cloudevents+json`), batched (`application/cloudevents-batch+"
                       "json`) or binary mode (`ce-*` headers, the body the data; any JSON content type). Every "
                       "event is checked before any is published; a batch is published in order.",
        "operationId": "publishEvents",
        "parameters": _BINARY_HEADERS,
        "requestBody": {"required": True, "content": {
            STRUCTURED: {"schema": {"$ref": _REF + "CloudEvent"}},
            BATCH: {"schema": {"type": "array", "items": {"$ref": _REF + "CloudEvent"}, "maxItems": max_batch}},
            "application/json": {"schema": {"type": "object", "description": "binary mode: the event's data"}},
        }},
        "responses": {
            "202": {"description": "accepted: one receipt, or `receipts` for a batch", "content": {
                "application/json": {"schema": {"oneOf": [{"$ref": _REF + "Receipt"}, {"$ref": _REF + "Receipts"}]}}}},
            "400": _problem("not a valid event (bad JSON, a missing or invalid attribute, data that breaks the "
                            "event's schema); `detail` names it, and `index` the event of a batch"),
            "413": _problem(f"the body is longer than {max_body_bytes} bytes, the batch has more than "
                            f"{max_batch} events, or an event is larger than the store takes (its "
                            "`max_event_bytes`); `detail` gives the size, and `index` the event of a batch"),
            "408": _problem("the body did not arrive within 30 s"),
            "415": _problem("a content type that is neither a CloudEvents JSON type nor JSON"),
            "500": _problem("an unexpected error (the server's log has the details)"),
            "503": _problem("the event store or delivery refuses events now: post again later (a batch: "
                            "`receipts` of the events published, `index` of the one refused)", "BatchProblem",
                            _RETRY_AFTER),
        },
    }
    if token:
        events["security"] = [{"bearer": []}]
        events["responses"]["401"] = _problem("no bearer token, or not the one configured")
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "interlock ingest", "version": interlock.__version__,
                 "description": "Publishes CloudEvents through an interlock router."},
        "paths": {
            "/events": {"post": events},
            "/healthz": {"get": {"summary": "The process runs", "operationId": "health",
                                 "responses": {"200": _json("it runs", "Status")}}},
            "/readyz": {"get": {"summary": "Delivery runs with every background task alive and the store answers",
                                "operationId": "ready",
                                "responses": {"200": _json("ready", "Status"), "503": _problem("not ready")}}},
            "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                      "responses": {"200": {"description": "the OpenAPI document",
                                                            "content": {"application/json": {}}}}}},
        },
        "components": {"schemas": _SCHEMAS},
    }
    if token:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return document
