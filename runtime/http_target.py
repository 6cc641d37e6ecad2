"""Delivery to an HTTP target: each attempt sends the event as a CloudEvent (binary content
mode by default: `ce-*` headers and the data as the body; structured: the whole CloudEvent
as the body) with httpx, over connections pooled per target, within the target's
`timeout`. A 2xx response is success (a sync target's reply is its body); anything else
raises `HttpError` with the kinds `retry_on` / `give_up_on` name:

- a response of status S: `http.S` and its family (`http.503`, `http.5xx`); a `Retry-After`
  on a 429 or 503 becomes the wait it asks for;
- no response within the timeout: `http.timeout` (a connect that timed out: also `http.connect`);
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
import ssl
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from .event import Event
from .outcomes import DeliveryError, HttpError

log = logging.getLogger(__name__)

#: The most of an error response's body kept in the attempt's message (and dead letter).
EXCERPT_BYTES = 512
#: The largest reply a sync HTTP target may send; a longer one fails the attempt (`http.protocol`).
REPLY_LIMIT = 4 * 1024 * 1024
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
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_REDACT)


class HttpTarget:
    """One HTTP target of a router: `await target(event)` is one attempt."""

    def __init__(self, name: str, target: dict[str, Any], environ: Mapping[str, str]) -> None:
        spec = target["http"]
        self.name = name
        self.method: str = spec["method"]
        self.structured = spec["format"] == "structured"
        self.timeout = target["timeout_ms"] / 1000
        self.concurrency = max(int(target.get("concurrency") or 1), 1)
        self.secrets: list[str] = []
        self.url = self._resolve(spec["url"], environ, "its URL")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DeliveryError(f"HTTP target `{name}`: {self._shown(spec['url'])} is not an absolute http(s) URL")
        self.shown_url = self._shown(spec["url"])
        self.headers: list[tuple[str, str]] = []
        for header, value in spec["headers"]:
            text = self._resolve(value, environ, f"header `{header}`")
            if any(ch in text for ch in "\r\n\0"):
                raise DeliveryError(f"HTTP target `{name}`: the value of header `{header}` holds a line break")
            self.headers.append((header, text))
        self.secrets.sort(key=len, reverse=True)
        if self.secrets:
            _REDACT.targets.add(self)
        self._client: httpx.AsyncClient | None = None
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
        if credential and len(credential) >= 4:
            self.secrets.append(credential)
        return text

    def _shown(self, url: dict[str, str]) -> str:
        """The URL as messages show it: an env URL by its variable's name, else without its query."""
        if "env" in url:
            return f"env({url['env']})"
        parts = urlsplit(url["value"])
        return parts._replace(query="", fragment="").geturl()

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return f"HttpTarget({self.name!r}, {self.method} {self.shown_url})"

    # ---- one attempt ---------------------------------------------------------------

    def client(self) -> httpx.AsyncClient:
        """This target's client on the running loop (a client is bound to the loop it was made on)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(
                http2=_HTTP2, timeout=httpx.Timeout(self.timeout), follow_redirects=False,
                limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency))
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()

    def request(self, event: Event) -> tuple[bytes, list[tuple[str, str]]]:
        """The body and headers of an attempt to deliver `event` (its data already transformed)."""
        headers = list(self.headers)
        headers.append(("Interlock-Attempt", str(event.attempt)))
        if self.structured:
            body = _json(event.to_cloudevent())
            headers.append(("Content-Type", "application/cloudevents+json; charset=utf-8"))
        else:
            body = _json(event.data)
            headers += [("ce-specversion", "1.0"), ("ce-id", _header_value(event.id)),
                        ("ce-source", _header_value(event.source)), ("ce-type", event.type),
                        ("ce-time", event.time), ("Content-Type", "application/json")]
        return body, headers

    async def __call__(self, event: Event) -> Any:
        body, headers = self.request(event)
        client = self.client()
        where = f"{self.method} {self.shown_url}"
        try:
            async with asyncio.timeout(self.timeout):
                async with client.stream(self.method, self.url, content=body, headers=headers) as response:
                    if response.is_success:
                        content = await _read(response, REPLY_LIMIT)
                        if content is None:
                            raise HttpError(("http.protocol",), f"{where}: the reply is over {REPLY_LIMIT} bytes",
                                            status=response.status_code)
                        return _reply(response, content)
                    excerpt = await _read(response, EXCERPT_BYTES, cut=True)
        except HttpError:
            raise
        except (TimeoutError, httpx.TimeoutException) as exc:
            kinds = ("http.timeout", "http.connect") if isinstance(exc, httpx.ConnectTimeout) else ("http.timeout",)
            raise HttpError(kinds, f"{where}: no response within the target's timeout of {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, where) from None
        raise self._status_error(response, excerpt or b"", where)

    def _transport_error(self, exc: httpx.HTTPError, where: str) -> HttpError:
        detail = self.redact(str(exc) or type(exc).__name__)
        if _is_tls(exc):
            return HttpError(("http.tls",), f"{where}: TLS failed: {detail}")
        if isinstance(exc, httpx.RemoteProtocolError):
            if "without sending a response" in str(exc):
                return HttpError(("http.connect",), f"{where}: the server closed the connection without a response")
        elif isinstance(exc, httpx.TransportError):  # refused, reset, unreachable, a proxy that failed
            return HttpError(("http.connect",), f"{where}: {detail}")
        return HttpError(("http.protocol",), f"{where}: {detail}")

    def _status_error(self, response: httpx.Response, excerpt: bytes, where: str) -> HttpError:
        status = response.status_code
        kinds = (f"http.{status}", f"http.{status // 100}xx") if 300 <= status < 600 else ("http.protocol",)
        retry_after = _retry_after_ms(response.headers.get("retry-after")) if status in (429, 503) else None
        text = excerpt.decode("utf-8", "replace")
        shown = f": {text}" if text.strip() else ""
        if len(excerpt) >= EXCERPT_BYTES:
            shown += "..."
        asked = f" (Retry-After: {retry_after} ms)" if retry_after is not None else ""
        message = f"HTTP {status} {response.reason_phrase} from {where}{asked}{shown}"
        return HttpError(kinds, self.redact(message), status=status, retry_after_ms=retry_after)


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
    if value.isdigit():
        return min(int(value) * 1000, RETRY_AFTER_LIMIT_MS)
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
