"""The words of the language's grammar (`import`, `route`, `to`, `mode`, ...), read from it."""

from __future__ import annotations

from lark.lexer import PatternStr

from interlock.dsl.parser import parser


def _keywords() -> frozenset[str]:
    return frozenset(str(t.pattern.value) for t in parser().terminals
                     if isinstance(t.pattern, PatternStr) and t.pattern.value.isidentifier())


KEYWORDS = _keywords()

DECLARATIONS = ("import", "event", "retry", "dead_letter", "target", "defaults", "unrouted", "route", "choose", "test")
TARGET_OPTIONS = ("mode", "retry", "dead_letter", "timeout", "concurrency", "order by", "emits", "on_exhausted",
                  "http", "headers", "format", "retry_on", "give_up_on")
RETRY_OPTIONS = ("attempts", "backoff", "jitter", "retry_on", "give_up_on", "deadline")
