"""What delivery hands back: a publish's receipt, a dead letter and its attempts, and the
error of a router that cannot deliver as asked."""

from __future__ import annotations

from typing import Any

import attrs

from .event import Event


class DeliveryError(Exception):
    """A router that cannot start or deliver as asked; the message names the target."""


class HttpError(Exception):
    """A failed attempt of an HTTP target. `kinds`: its error kinds, the most specific first
    (`("http.503", "http.5xx")`, `("http.timeout",)`), as `retry_on` / `give_up_on` name them;
    `status`: the response's status code, if there was a response; `retry_after_ms`: how long
    the server asked to wait (`Retry-After` on a 429 or 503)."""

    def __init__(self, kinds: tuple[str, ...], message: str, *, status: int | None = None,
                 retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.kinds = kinds
        self.status = status
        self.retry_after_ms = retry_after_ms


@attrs.frozen
class Attempt:
    attempt: int
    kind: str
    message: str
    at_ms: int
    status: int | None = None  # an HTTP target's response status, if there was a response


@attrs.frozen
class Receipt:
    id: str
    targets: frozenset[str]
    replies: dict[str, Any] = attrs.Factory(dict)
    unrouted: bool = False
    duplicate: bool = False
    errors: dict[str, str] = attrs.Factory(dict)  # sync targets that failed after their retries, in words
    failures: dict[str, Attempt] = attrs.Factory(dict)  # the same: each one's last attempt (kind, message, status)


@attrs.frozen
class DeadLetter:
    """An event that a target could not take, with its whole history."""

    id: str  # the entry's id in the dead-letter stream
    dead_letter: str
    event: Event
    target: str | None  # None for an unrouted event
    routes: tuple[str, ...]
    attempts: tuple[Attempt, ...]
    reason: str
    at_ms: int
