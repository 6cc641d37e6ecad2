"""What the language knows of HTTP targets: methods, content modes, error kinds, and the
headers a `.route` file may not set or may not spell out.

The runtime classifies a failed HTTP attempt into these kinds on its own
(`runtime/http_target.py`: it may not import this package); `tests/test_http_language.py`
checks that both agree.
"""

from __future__ import annotations

import re

METHODS = ("POST", "PUT", "PATCH")
FORMATS = ("binary", "structured")  # the CloudEvents HTTP content modes

# Families and single kinds. A status code is its own kind too (`http.404`, any 300-599).
HTTP_KINDS = ("http.3xx", "http.4xx", "http.5xx", "http.timeout", "http.connect", "http.tls", "http.protocol")
_STATUS_KIND = re.compile(r"http\.([3-5][0-9][0-9])\Z")


def is_http_kind(name: str) -> bool:
    """Whether `name` is an error kind an HTTP target can fail with."""
    return name in HTTP_KINDS or _STATUS_KIND.match(name) is not None


# Headers interlock writes itself on every request: the body's type and length, the
# CloudEvents attributes (`ce-*` in binary mode), its own (`Interlock-Attempt`), the host,
# the framing.
_RESERVED = frozenset({"content-type", "content-length", "host", "transfer-encoding", "connection"})


def reserved_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in _RESERVED or lowered.startswith(("ce-", "interlock-"))


# Headers that carry credentials: their values come from the environment, never from
# the source (and so never from the artifact).
_CREDENTIAL = re.compile(r"authorization|cookie|token|secret|password|passwd|api[-_]?key|signature", re.IGNORECASE)


def credential_header(name: str) -> bool:
    return _CREDENTIAL.search(name) is not None


# RFC 9110 field names: `token` characters.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
# A header value as HTTP allows it (RFC 9110 field-value, ASCII only): no line breaks, no
# control characters, no whitespace at either end. The runtime checks `env(...)` values alike.
FIELD_VALUE = re.compile(r"(?:[\x21-\x7e](?:[ \t]*[\x21-\x7e])*)?\Z")
# An environment variable name as shells take it.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
