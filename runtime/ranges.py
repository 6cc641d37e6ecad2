"""The numeric range anchors of one field: which rules' ranges hold a number, in one bisect.

The boundaries b0 < b1 < ... of every range cut the number line into slots: slot 2i is the
open gap below bi, slot 2i+1 the point bi, and the last slot everything above the last
boundary. A number falls in one slot (`slot`), and each range is a run of slots.

Built in O(n log n) for n ranges, whatever their overlap (filling each range's run of slots
was quadratic: 8,000 `amount > N` routes took 16 s and 1.1 GiB to load):

- `rules_at(slot)`: a segment tree over the slots, each range stored at the O(log n) nodes
  that cover its run; a slot's rules are those on its path to the root.
- `masks(bits)`: per slot, the OR of `bits(rule)` over the ranges that hold it, by one sweep
  over the slots (a count per bit of the ranges open), so the generated matching code reads
  the answer of every range without a check in one list lookup.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable
from typing import Any


class RangeIndex:
    def __init__(self, ranges: Iterable[list[Any]]) -> None:
        """`ranges`: [low, low_inclusive, high, high_inclusive, rule] (None for an open end)."""
        ranges = list(ranges)
        self.bounds: list[Any] = sorted({v for low, _, high, _, _ in ranges for v in (low, high) if v is not None})
        position = {bound: i for i, bound in enumerate(self.bounds)}  # (1 and 1.0 are one key, as one bound)
        self.count = 2 * len(self.bounds) + 1  # slots
        self.runs: list[tuple[int, int, int]] = []  # (first slot, last slot, rule)
        for low, low_inclusive, high, high_inclusive, rule in ranges:
            first = 0 if low is None else 2 * position[low] + (1 if low_inclusive else 2)
            last = self.count - 1 if high is None else 2 * position[high] + (1 if high_inclusive else 0)
            if first <= last:
                self.runs.append((first, last, rule))
        self.size = 1 << max(self.count - 1, 1).bit_length()  # leaves of the tree
        self.tree = self.spread((first, last, rule) for first, last, rule in self.runs)

    def spread(self, runs: Iterable[tuple[int, int, Any]]) -> list[tuple[Any, ...]]:
        """A segment tree (node 1 the root, leaves from `size`) holding each item at the nodes
        that cover its run of slots exactly."""
        nodes: dict[int, list[Any]] = {}
        for first, last, item in runs:
            low, high = first + self.size, last + self.size + 1
            while low < high:
                if low & 1:
                    nodes.setdefault(low, []).append(item)
                    low += 1
                if high & 1:
                    high -= 1
                    nodes.setdefault(high, []).append(item)
                low >>= 1
                high >>= 1
        tree: list[tuple[Any, ...]] = [()] * (2 * self.size)
        for node, items in nodes.items():
            tree[node] = tuple(items)
        return tree

    def slot(self, value: Any) -> int | None:
        """The slot of a number (not a bool; NaN is in no range), else None."""
        t = type(value)
        if not (t is int or t is float) or value != value:
            return None
        i = bisect.bisect_left(self.bounds, value)
        return 2 * i + 1 if i < len(self.bounds) and self.bounds[i] == value else 2 * i

    def rules_at(self, slot: int) -> tuple[int, ...]:
        found: tuple[int, ...] = ()
        node = slot + self.size
        while node:
            if self.tree[node]:
                found += self.tree[node]
            node >>= 1
        return found

    def masks(self, bits: Callable[[int], int]) -> list[int]:
        """Per slot, the OR of `bits(rule)` over the ranges that hold it (rules whose bits are 0
        left out): one sweep, a count per bit of the ranges open at the slot."""
        opening: dict[int, list[int]] = {}
        closing: dict[int, list[int]] = {}
        for first, last, rule in self.runs:
            value = bits(rule)
            if value:
                opening.setdefault(first, []).append(value)
                closing.setdefault(last + 1, []).append(value)
        open_count: dict[int, int] = {}
        mask = 0
        out: list[int] = []
        for slot in range(self.count):
            for value in closing.get(slot, ()):
                for bit in _bits(value):
                    open_count[bit] -= 1
                    if not open_count[bit]:
                        mask &= ~bit
            for value in opening.get(slot, ()):
                for bit in _bits(value):
                    open_count[bit] = open_count.get(bit, 0) + 1
                    mask |= bit
            out.append(mask)
        return out


def _bits(value: int) -> Iterable[int]:
    while value:
        bit = value & -value
        yield bit
        value ^= bit


_EXACT = 2.0 ** 53  # every integer up to this is a float, and a float's neighbours are 1 or less apart


def half_open(ranges: Iterable[list[Any]], bits: Callable[[int], int]) -> tuple[list[float], list[int]] | None:
    """The ranges as `bounds` and `masks` such that the OR of `bits(rule)` over the ranges that
    hold a number x (an int or a float, not NaN) is `masks[bisect_right(bounds, x)]`: one
    bisect and no test of equality at a boundary. None when a bound is not a number below 2**53
    in size, where this would not be exact.

    Each range becomes [low, high) over floats: an open low end `x > b` is `x >= next(b)`, the
    float just above b, and a closed high end `x <= b` is `x < next(b)`. No float lies between b
    and next(b), and no integer either while |b| < 2**53 (the gap is at most 1 and next(b) is
    then an integer when it is 1), so the test is the same for every int and float. A range
    that starts at a bound and stops before one holds the bound's point and the gap above it
    alike: the slots of `RangeIndex` two by two, the gaps' masks are all there is to keep.
    """
    converted = []
    for low, low_inclusive, high, high_inclusive, rule in ranges:
        for bound in (low, high):
            if bound is not None and (type(bound) not in (int, float) or not -_EXACT < bound < _EXACT):
                return None
        start = None if low is None else float(low) if low_inclusive else math.nextafter(float(low), math.inf)
        stop = None if high is None else math.nextafter(float(high), math.inf) if high_inclusive else float(high)
        converted.append([start, True, stop, False, rule])
    index = RangeIndex(converted)
    return index.bounds, index.masks(bits)[::2]
