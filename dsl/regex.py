"""Regular expressions of `matches regex`: RE2's syntax, run by RE2 (google-re2).

RE2 runs in time linear in the text, whatever the pattern: it has no backreferences and no
lookaround, and refuses them when compiling. A pattern is written between quotes exactly as
RE2 reads it (`"EU-\\d+"`); it matches the whole string. The runtime compiles patterns with
the same options (`runtime/regex.py`; it may not import this package).
"""

from __future__ import annotations

import re2

# The program size RE2 may build for one pattern: a pattern that needs more is refused at
# `check`, never at match time.
MAX_MEMORY = 8 << 20


def options() -> re2.Options:
    chosen = re2.Options()
    chosen.log_errors = False  # RE2 would print to stderr; the diagnostic says it
    chosen.never_capture = True  # groups only group
    chosen.max_mem = MAX_MEMORY
    return chosen


def compile_regex(pattern: str) -> re2._Regexp:
    return re2.compile(pattern, options())


def regex_problem(pattern: str) -> str | None:
    """Why RE2 refuses `pattern`, or None."""
    try:
        compile_regex(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    except UnicodeEncodeError:  # a lone surrogate from an escape
        return "a lone surrogate is not text"
    return None


def literal_prefix(pattern: str) -> str:
    """A prefix every string the pattern matches starts with ("" when there is none to say):
    the common start of the least and the greatest string it can match."""
    known, low, high = compile_regex(pattern)._regexp.PossibleMatchRange(64)
    if not known:
        return ""
    common = 0
    for a, b in zip(low, high, strict=False):
        if a != b:
            break
        common += 1
    return bytes(low[:common]).decode("utf-8", "ignore")
