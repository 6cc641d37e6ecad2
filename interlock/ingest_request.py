"""What a `POST /events` carries: its body, read up to a limit, and the CloudEvents in it.

The CloudEvents HTTP binding has three modes, told apart by the request's Content-Type:

- **structured**, `application/cloudevents+json`: the body is one CloudEvent JSON object;
- **batched**, `application/cloudevents-batch+json`: the body is a JSON array of them;
- **binary**, any other JSON type (`application/json`, `application/vnd.x+json`) or none:
  the attributes are `ce-*` headers (`ce-specversion`, `ce-id`, `ce-type`, `ce-source`,
  optionally `ce-time`, and any other attribute or extension: `ce-subject`,
  `ce-traceparent`) and the body is the event's data, a JSON object.

Whatever the mode, the result is a list of CloudEvent JSON objects (dicts), for
`Router.validate`. Anything unreadable is a `Problem` (400, 413 or 415) naming what is wrong.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, NamedTuple
from urllib.parse import unquote

from starlette.datastructures import Headers
from starlette.requests import Request

from interlock.problems import Problem
from interlock.runtime.event_data import TOO_DEEP
from interlock.runtime.predicates import instant

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
BINARY_REQUIRED = ("ce-specversion", "ce-id", "ce-type", "ce-source")
#: Seconds a request's body may take to arrive (a client that trickles it holds memory).
BODY_TIMEOUT = 30
# A 413 answered before the whole body was read closes the connection: the rest of the body
# is not worth reading, and the connection cannot serve another request without reading it.
CLOSE = {"Connection": "close"}


class Incoming(NamedTuple):
    events: list[Any]  # CloudEvent JSON objects as sent (a batch's elements are not checked yet)
    batch: bool


def media_type(headers: Headers) -> str | None:
    """The request's media type, lower case and without parameters; None when it has none."""
    value = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return value or None


def check_media_type(media: str | None) -> None:
    """Refuse (415) a content type no mode reads, before the body is read."""
    if media in (STRUCTURED, BATCH) or media is None or _is_json(media):
        return
    if media.startswith("application/cloudevents"):
        raise Problem(415, "unsupported-media-type", f"only the JSON event format is read: {STRUCTURED} or "
                      f"{BATCH}, not {media}")
    raise Problem(415, "unsupported-media-type", f"a binary-mode event's data is JSON: Content-Type "
                  f"application/json (or another +json type), not {media}")


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read as it arrives and refused (413) as soon as it is longer than `limit`
    bytes, whatever Content-Length says (or if it says nothing)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Problem(413, "too-large", f"the body is {int(declared)} bytes; at most {limit} are taken",
                      headers=CLOSE)
    body = bytearray()
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise Problem(413, "too-large", f"the body is longer than {limit} bytes, the most taken",
                                  headers=CLOSE)
    except TimeoutError:
        raise Problem(408, "timeout", f"the body did not arrive within {BODY_TIMEOUT} s", headers=CLOSE) from None
    return bytes(body)


def decode(media: str | None, headers: Headers, body: bytes, max_batch: int) -> Incoming:
    """The CloudEvents of a request whose content type passed `check_media_type`."""
    if media == STRUCTURED:
        return Incoming([_json(body)], batch=False)
    if media == BATCH:
        events = _json(body)
        if not isinstance(events, list):
            raise Problem(400, "invalid-event", f"a batch is a JSON array of CloudEvents, not {_kind(events)}")
        if len(events) > max_batch:
            raise Problem(413, "too-large", f"the batch has {len(events)} events; at most {max_batch} are taken")
        return Incoming(events, batch=True)
    return Incoming([_binary(headers, body)], batch=False)


def _binary(headers: Headers, body: bytes) -> dict[str, Any]:
    """A binary-mode event: attributes from the `ce-*` headers (percent-decoded, as the
    binding says), data from the body."""
    attributes: dict[str, str] = {}
    # The required ones, `ce-time`, and any other `ce-*` header: an optional attribute or an
    # extension (`ce-subject`, `ce-traceparent`), kept with the event.
    others = sorted({name.lower() for name in headers if name.lower().startswith("ce-")} -
                    {*BINARY_REQUIRED, "ce-time"})
    for header in (*BINARY_REQUIRED, "ce-time", *others):
        if len(headers.getlist(header)) > 1:
            raise Problem(400, "invalid-event", f"the `{header}` header is given more than once")
        raw = headers.get(header)
        if raw is None:
            if header not in BINARY_REQUIRED:
                continue
            raise Problem(400, "invalid-event", f"`{header}` header is missing{_hint(headers)}")
        try:
            value = unquote(raw.strip(), errors="strict")
        except UnicodeDecodeError:
            raise Problem(400, "invalid-event", f"`{header}` header is not percent-encoded UTF-8") from None
        if not value:
            raise Problem(400, "invalid-event", f"`{header}` header is empty")
        attributes[header.removeprefix("ce-")] = value
    if attributes["specversion"] != "1.0":
        raise Problem(400, "invalid-event", f"`ce-specversion` header must be 1.0, not {attributes['specversion']!r}")
    if "time" in attributes and instant(attributes["time"]) is None:
        raise Problem(400, "invalid-event", f"`ce-time` header must be an RFC 3339 timestamp, not "
                      f"{attributes['time']!r:.60}")
    data = _json(body) if body.strip() else {}
    if not isinstance(data, dict):
        raise Problem(400, "invalid-event", f"the body of a binary-mode event is its data, a JSON object, not "
                      f"{_kind(data)}")
    return {**attributes, "data": data}


def _hint(headers: Headers) -> str:
    """For a request with no `ce-*` header at all: what the modes are."""
    if any(name.startswith("ce-") for name in headers):
        return ""
    return (f": a binary-mode event carries its attributes in ce-* headers (or send one with Content-Type "
            f"{STRUCTURED}, or a batch with {BATCH})")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_no_constant)
    except ValueError as exc:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        raise Problem(400, "invalid-event", f"the body is not valid JSON: {exc}") from None
    except RecursionError:  # (the decoder's recursion: hundreds of levels, many more than event data may have)
        raise Problem(400, "invalid-event", f"the body is {TOO_DEEP}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
