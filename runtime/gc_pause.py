"""Pausing the cyclic garbage collector for a burst of allocation (the runtime's copy of
`dsl.project.paused_gc`, which it may not import).

Loading an artifact builds a closure per predicate and a few objects per rule, none of them
in cycles; the collector, triggered by the allocation count alone, scans the growing heap
again and again and finds nothing: on 40,000 routes that was half of the load time.
Reference counting still frees everything as usual.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
