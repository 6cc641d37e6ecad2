"""An artifact's canonical JSON and its sha256: what its `integrity` and `source_hash` are.

The definition: the UTF-8 bytes of `json.dumps(content, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`, hashed with sha256 and written `sha256:<hex>`. `canonical_hash` is
exactly that, for any value, with json's exceptions for what JSON cannot hold.

`quick_hash` is the same digest from msgspec's encoder, three to four times faster (on 10,000
routes, 0.04 s against 0.12-0.18 s), or None where msgspec's text may not be json's:

- msgspec refuses the value: a key that is not a string, a subclass of `str`, an integer of
  more than 4,300 digits, a lone surrogate, nesting deeper than it takes (then json's own
  answer, or exception, is the one that counts);
- it writes a float in exponent form, or below 1e-4 in fixed form: `1e16` and `0.00001`
  where Python writes `1e+16` and `1e-05`. Found by a scan of its output for a token
  `De...` or `0.0000...` (D a digit) that ends where a number ends. Text that only looks
  like one (`"r1e5]"` in a condition's text) costs the slow way, never a wrong digest.

Outside that, the two texts are the same byte for byte (tests/test_canonical.py, a property
test over random JSON values, every code point, and floats of every magnitude) for values
made of `dict` with `str` keys, `list`, `tuple`, `str`, `int`, `float`, `bool` and `None`,
with no NaN or infinity. Those two are its precondition, unchecked (checking would cost a
walk of the whole value, as long as json's): msgspec writes NaN and infinities as `null`,
and sets, bytes, dates, enums and dataclasses as JSON, where json refuses them. The
compiler's artifacts meet it (numbers the language takes are finite, E0012), and the
runtime trusts `quick_hash` only when its digest is the one claimed, and, where the
artifact is then refused, says what `canonical_hash` says (runtime/artifact.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import msgspec

_ENCODER = msgspec.json.Encoder(order="sorted")
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
# A number in exponent form (`1.5e16`, `5e-324`), digits as `0` (searched for in one pass,
# `0e`, where `[0-9]e` would try every byte), ending where a number ends: before `,`, `]`,
# `}`, or at the end.
_EXPONENT = re.compile(rb"0e-?0+(?:[,\]}]|\Z)")
# A number in fixed form below 1e-4 (`0.000015`), not preceded by a digit (`10.00001` is
# Python's too): the preceding byte is looked at for each match (a look-behind would search
# byte by byte).
_SMALL = re.compile(rb"0\.0000[0-9]*(?:[,\]}]|\Z)")
_DIGITS = frozenset(b"0123456789")


def canonical_hash(content: Any) -> str:
    """sha256 over the canonical JSON of `content` (the definition: json.dumps)."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _digest(text.encode())


def quick_hash(content: Any) -> str | None:
    """`canonical_hash(content)`, computed faster, for content of JSON types without NaN or
    infinity (see the module docstring); None where it may differ: use `canonical_hash`."""
    try:
        encoded = _ENCODER.encode(content)
    except Exception:  # (TypeError, ValueError, RecursionError...: json's answer is the one that counts)
        return None
    if _EXPONENT.search(encoded.translate(_DIGITS_AS_ZERO)) or any(
            m.start() == 0 or encoded[m.start() - 1] not in _DIGITS for m in _SMALL.finditer(encoded)):
        return None
    return _digest(encoded)


def _digest(encoded: bytes) -> str:
    return "sha256:" + hashlib.sha256(encoded).hexdigest()
