"""The two ways a compiled table is matched, for tests that check both agree with the reference."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from interlock.runtime import matching


@contextlib.contextmanager
def anchors_only() -> Iterator[None]:
    """Tables loaded meanwhile are matched by their anchors (matching.py), neither rule by rule
    nor as bit masks (bitmap.py), as every table of more than MAX_RULES rules is."""
    kept = matching.SMALL_RULES, matching.MAX_RULES
    matching.SMALL_RULES = matching.MAX_RULES = -1
    try:
        yield
    finally:
        matching.SMALL_RULES, matching.MAX_RULES = kept
