"""Delivery to an HTTP target: each attempt sends the event as a CloudEvent (binary content
mode by default: `ce-*` headers and the data as the body; structured: the whole CloudEvent
as the body) with httpx, over connections pooled per target, within the target's
`timeout`. A 2xx response is success (a sync target's reply is its body); anything else
raises `HttpError` with the kinds `retry_on` / `give_up_on` name:

- a response of status S: `http.S` and its family (`http.503`, `http.5xx`); a `Retry-After`
  on a 429 or 503 becomes the wait it asks for;
- no response within the timeout: `http.timeout` (a connect that timed out: `http.connect`, then
  `http.timeout`);
- a TLS handshake or certificate that failed: `http.tls`;
- a connection refused, reset or closed before a response: `http.connect`;
- a response HTTP does not allow, or a sync reply over `REPLY_LIMIT`: `http.protocol`.

URL and header values written as `env("NAME")` are read from the environment when the
target is made (at router start); they are secrets: every message this module makes has
them replaced by `***`, and an env URL is shown as `env(NAME)`.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import json
import logging
import re
import ssl
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from .event import Event
from .outcomes import DeliveryError, HttpError
from .telemetry import Telemetry

log = logging.getLogger(__name__)

#: The most of an error response's body kept in the attempt's message (and dead letter).
EXCERPT_BYTES = 512
#: The largest reply a sync HTTP target may send; a longer one fails the attempt (`http.protocol`).
REPLY_LIMIT = 4 * 1024 * 1024
#: The most connections one httpx client of a target holds (see `HttpTarget.client`).
POOL_SIZE = 8
#: How much longer than the target's timeout an attempt may take in all (httpx's timeouts go first).
TIMEOUT_MARGIN = 0.05
#: The longest wait a `Retry-After` can ask for (a day); the policy's backoff `max` caps it further.
RETRY_AFTER_LIMIT_MS = 24 * 3600 * 1000

try:  # HTTP/2 where the server offers it (TLS and ALPN); httpx needs `h2` for it
    import h2  # noqa: F401

    _HTTP2 = True
except ImportError:  # pragma: no cover - `httpx[http2]` is a dependency
    _HTTP2 = False


class _Redact(logging.Filter):
    """On httpx's and httpcore's loggers: every secret of a live HTTP target replaced by `***`
    (httpx logs each request's URL at INFO, and an `env(...)` URL is a secret)."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: weakref.WeakSet[HttpTarget] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [s for target in list(self.targets) for s in target.secrets]
        if secrets:
            message = record.getMessage()
            redacted = message
            for secret in sorted(secrets, key=len, reverse=True):
                redacted = redacted.replace(secret, "***")
            if redacted != message:
                record.msg, record.args = redacted, ()
        return True


_REDACT = _Redact()
# A logger's filters see only the records logged to it, not its children's: each by name.
for _name in ("httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy",
              "httpcore.socks"):
    logging.getLogger(_name).addFilter(_REDACT)

#: A header value as HTTP allows it (RFC 9110 field-value, ASCII only): no line breaks, no
#: control characters, no whitespace at either end (the compiler's `dsl/http.py` has the same).
FIELD_VALUE = re.compile(r"(?:[\x21-\x7e](?:[ \t]*[\x21-\x7e])*)?\Z")
#: Secrets shorter than this are not looked for in messages (they would garble every number).
SHORTEST_SECRET = 4


class HttpTarget:
    """One HTTP target of a router: `await target(event)` is one attempt."""

    def __init__(self, name: str, target: dict[str, Any], environ: Mapping[str, str]) -> None:
        spec = target["http"]
        self.name = name
        self.method: str = spec["method"]
        self.structured = spec["format"] == "structured"
        self.timeout = target["timeout_ms"] / 1000
        self.concurrency = max(int(target.get("concurrency") or 1), 1)
        self.sync = target.get("mode") == "sync"
        self.secrets: list[str] = []
        self.url = self._resolve(spec["url"], environ, "its URL")
        self.shown_url = self._shown(spec["url"])
        if not _valid_url(self.url):
            raise DeliveryError(f"HTTP target `{name}`: {self.shown_url} is not an absolute http(s) URL that "
                                "can be requested")
        if "env" in spec["url"]:
            self._secret_url(self.url)
        self.headers: list[tuple[str, str]] = []
        for header, value in spec["headers"]:
            text = self._resolve(value, environ, f"header `{header}`")
            if not FIELD_VALUE.match(text):
                raise DeliveryError(f"HTTP target `{name}`: the value of header `{header}` is not one HTTP allows "
                                    "(printable ASCII, no line break, no space at either end)")
            self.headers.append((header, text))
        self.secrets = _forms(self.secrets)
        self.longest_secret = max((len(secret) for secret in self.secrets), default=0)
        if self.secrets:
            _REDACT.targets.add(self)
        self._clients: list[httpx.AsyncClient] = []
        self._room: list[int] = []  # per client, its connections not in use
        self._loop: asyncio.AbstractEventLoop | None = None

    def _resolve(self, value: dict[str, str], environ: Mapping[str, str], what: str) -> str:
        if "value" in value:
            return value["value"]
        text = environ.get(value["env"], "")
        if not text:
            raise DeliveryError(f"HTTP target `{self.name}`: {what} comes from the environment variable "
                                f"`{value['env']}`, which is not set")
        self.secrets.append(text)
        _, _, credential = text.partition(" ")  # `Bearer TOKEN`: the token alone is a secret too
        if credential:
            self.secrets.append(credential)
        return text

    def _secret_url(self, url: str) -> None:
        """An env URL's parts that carry secrets, and the URL as httpx writes it in its logs."""
        parts = urlsplit(url)
        self.secrets += [parts.query, parts.password or "", str(httpx.URL(url))]

    def _shown(self, url: dict[str, str]) -> str:
        """The URL as messages show it: an env URL by its variable's name, else without its query."""
        if "env" in url:
            return f"env({url['env']})"
        parts = urlsplit(url["value"])
        return parts._replace(query="", fragment="").geturl()

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return f"HttpTarget({self.name!r}, {self.method} {self.shown_url})"

    # ---- one attempt ---------------------------------------------------------------

    def client(self) -> int:
        """The index of this target's client with the most room on the running loop (a client
        is bound to the loop it was made on). The target's `concurrency` connections are spread
        over clients of at most POOL_SIZE: httpcore's pool does work per request that grows
        with its size; with at most `concurrency` requests in flight, one has room."""
        loop = asyncio.get_running_loop()
        if not self._clients or self._loop is not loop:
            sizes = [POOL_SIZE] * (self.concurrency // POOL_SIZE) + (
                [self.concurrency % POOL_SIZE] if self.concurrency % POOL_SIZE else [])
            self._clients = [httpx.AsyncClient(
                http2=_HTTP2, timeout=httpx.Timeout(self.timeout), follow_redirects=False,
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size)) for size in sizes]
            self._room = sizes
            self._loop = loop
        room = self._room
        return max(range(len(room)), key=room.__getitem__) if len(room) > 1 else 0

    async def aclose(self) -> None:
        clients, self._clients = self._clients, []
        if self._loop is asyncio.get_running_loop():
            for client in clients:
                await client.aclose()

    def request(self, event: Event) -> tuple[bytes, list[tuple[str, str]]]:
        """The body and headers of an attempt to deliver `event` (its data already transformed)."""
        headers = list(self.headers)
        headers.append(("Interlock-Attempt", str(event.attempt)))
        traced = Telemetry.inject(headers)  # the delivery's span, for the service's own tracing
        if self.structured:
            body = _json(event.to_cloudevent())
            headers.append(("Content-Type", "application/cloudevents+json; charset=utf-8"))
        else:
            body = _json(event.data)
            headers += [(f"ce-{name}", _header_value(_attribute(value))) for name, value in event.extensions.items()
                        if not traced or name not in ("traceparent", "tracestate")]  # (those: the W3C headers)
            headers += [("ce-specversion", "1.0"), ("ce-id", _header_value(event.id)),
                        ("ce-source", _header_value(event.source)), ("ce-type", event.type),
                        ("ce-time", _header_value(str(event.time))), ("Content-Type", "application/json")]
        return body, headers

    async def __call__(self, event: Event) -> Any:
        body, headers = self.request(event)
        index = self.client()
        client, room = self._clients[index], self._room
        room[index] -= 1
        where = f"{self.method} {self.shown_url}"
        try:
            # httpx keeps each phase to the timeout (a connect that times out is ConnectTimeout);
            # this keeps the whole attempt to it, with a margin that lets httpx's own go first.
            async with asyncio.timeout(self.timeout + TIMEOUT_MARGIN):
                async with client.stream(self.method, self.url, content=body, headers=headers) as response:
                    if response.is_success:
                        content = await _read(response, REPLY_LIMIT)
                        if not self.sync:
                            return None  # an async target's reply is not used, however long
                        if content is None:
                            raise HttpError(("http.protocol",), f"{where}: the reply is over {REPLY_LIMIT} bytes",
                                            status=response.status_code)
                        return _reply(response, content)
                    # Read past the excerpt by the longest secret, so that one across the cut is
                    # redacted before the cut.
                    excerpt = await _read(response, EXCERPT_BYTES + self.longest_secret, cut=True)
        except HttpError:
            raise
        except (TimeoutError, httpx.TimeoutException) as exc:
            if isinstance(exc, httpx.ConnectTimeout):  # the connection itself: more specific than a slow reply
                message = f"{where}: could not connect within the target's timeout of {self.timeout:g} s"
                raise HttpError(("http.connect", "http.timeout"), message) from None
            raise HttpError(("http.timeout",),
                            f"{where}: no response within the target's timeout of {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, where) from None
        except (httpx.InvalidURL, ValueError, UnicodeError, ExceptionGroup) as exc:  # a request HTTP cannot carry
            detail = self.redact(str(exc) or type(exc).__name__)
            raise HttpError(("http.protocol",), f"{where}: the request cannot be sent: {detail}") from None
        finally:
            if room is self._room:  # (not clients made since, on another loop)
                room[index] += 1
        raise self._status_error(response, excerpt or b"", where)

    def _transport_error(self, exc: httpx.HTTPError, where: str) -> HttpError:
        detail = self.redact(str(exc) or type(exc).__name__)
        if _is_tls(exc):
            return HttpError(("http.tls",), f"{where}: TLS failed: {detail}")
        if isinstance(exc, httpx.RemoteProtocolError):
            if "without sending a response" in str(exc):
                return HttpError(("http.connect",), f"{where}: the server closed the connection without a response")
        elif isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.LocalProtocolError):
            # refused, reset, unreachable, a proxy that failed
            return HttpError(("http.connect",), f"{where}: {detail}")
        return HttpError(("http.protocol",), f"{where}: {detail}")

    def _status_error(self, response: httpx.Response, excerpt: bytes, where: str) -> HttpError:
        status = response.status_code
        kinds = (f"http.{status}", f"http.{status // 100}xx") if 300 <= status < 600 else ("http.protocol",)
        retry_after = _retry_after_ms(response.headers.get("retry-after")) if status in (429, 503) else None
        text = self.redact(excerpt.decode("utf-8", "replace"))
        cut = len(text) > EXCERPT_BYTES or len(excerpt) >= EXCERPT_BYTES + self.longest_secret
        shown = f": {text[:EXCERPT_BYTES]}" if text.strip() else ""
        if cut:
            shown += "..."
        asked = f" (Retry-After: {retry_after} ms)" if retry_after is not None else ""
        message = f"HTTP {status} {response.reason_phrase} from {where}{asked}{shown}"
        return HttpError(kinds, self.redact(message), status=status, retry_after_ms=retry_after)


def _valid_url(url: str) -> bool:
    """Whether httpx can request `url`: absolute http(s), a host, a port in range, no control characters."""
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url) or len(url) > 32_768:
        return False
    try:
        parts = urlsplit(url)
        parsed = httpx.URL(url)
        _ = parts.port
    except (ValueError, httpx.InvalidURL):
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


def _forms(secrets: list[str]) -> list[str]:
    """Each secret as it may appear in a message: as it is, escaped in a `repr` of text or
    bytes, escaped in JSON; the longest first, so that one inside another is redacted whole."""
    forms = set()
    for secret in secrets:
        if len(secret) >= SHORTEST_SECRET:
            forms |= {secret, repr(secret)[1:-1], repr(secret.encode())[2:-1], json.dumps(secret)[1:-1]}
    return sorted(forms, key=len, reverse=True)


def _attribute(value: Any) -> str:
    """A CloudEvents attribute's value as its header text (a boolean: `true` / `false`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _header_value(text: str) -> str:
    """A CloudEvents attribute as an HTTP header value: outside printable ASCII, and `"`, `%`
    and space, percent-encoded as UTF-8 (the CloudEvents HTTP binding, 3.1.3.2)."""
    if text.isascii() and text.isprintable() and not any(ch in text for ch in ' "%'):
        return text
    return "".join(ch if ch.isascii() and ch.isprintable() and ch not in ' "%' else
                   "".join(f"%{b:02X}" for b in ch.encode("utf-8")) for ch in text)


async def _read(response: httpx.Response, limit: int, *, cut: bool = False) -> bytes | None:
    """At most `limit` bytes of the body: the first `limit` with `cut`, else None beyond it."""
    content = bytearray()
    async for chunk in response.aiter_bytes():
        content += chunk
        if len(content) > limit:
            return bytes(content[:limit]) if cut else None
    return bytes(content)


def _reply(response: httpx.Response, content: bytes) -> Any:
    """A sync target's reply: its body, parsed when it is JSON; None when there is none."""
    if not content:
        return None
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            return json.loads(content)
        except ValueError:
            pass
    return content.decode(response.encoding or "utf-8", "replace")


def _retry_after_ms(value: str | None) -> int | None:
    """A `Retry-After` header (seconds, or an HTTP date) as milliseconds from now; None if unreadable."""
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]+", value, re.ASCII):
        return RETRY_AFTER_LIMIT_MS if len(value) > 9 else min(int(value) * 1000, RETRY_AFTER_LIMIT_MS)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    wait = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
    return min(max(int(wait * 1000), 0), RETRY_AFTER_LIMIT_MS)


def _is_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
