"""A small pretty-printing engine (after Wadler's "prettier printer"): documents made of
text, line breaks that a group may take or not, nesting and comments, laid out within a width.

Owns: the document parts, which groups must break (`settle`), and the layout itself (`render`).
Knows nothing of `.route` files: `printer.py` builds the documents.

A `Group` is printed flat (each `Line` a space, each `Soft` nothing) when the whole of it,
and what follows it up to the next possible break, fits in the width; otherwise each of its
own lines breaks (groups inside it decide for themselves). A `Hard` line always breaks and
breaks every group around it. A `Trailing` comment is printed at the end of its output line
(with two spaces before it, aligned with the trailing comments of the lines next to it), and
the first line that may break after it does: the comment ends that line, never hides code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeAlias

Doc: TypeAlias = "str | Space | Line | Hard | Fresh | Group | Fill | Nest | IfBreak | Trailing | list[Doc]"


class Space:
    """A space (`text`; nothing between glued tokens), or a line break when a trailing comment
    waits on the line (so that the comment stays right after the token it followed)."""

    __slots__ = ("text",)

    def __init__(self, text: str = " ") -> None:
        self.text = text


class Line:
    """A space in a flat group, a line break in a broken one (`soft`: nothing when flat)."""

    __slots__ = ("soft",)

    def __init__(self, soft: bool = False) -> None:
        self.soft = soft


class Hard:
    """A line break, always; `blank` leaves one empty line before the next."""

    __slots__ = ("blank",)

    def __init__(self, blank: bool = False) -> None:
        self.blank = blank


class Fresh:
    """A line break unless the output line holds nothing yet (before an own-line comment)."""

    __slots__ = ()


class Group:
    __slots__ = ("broken", "parts")

    def __init__(self, *parts: Doc) -> None:
        self.parts: list[Doc] = list(parts)
        self.broken = False


class Fill:
    """Items with a separator (text, then a `Line`) between two: in a broken group, as many
    items on a line as fit, then a line break. Items are flat text, without comments."""

    __slots__ = ("items", "separator")

    def __init__(self, items: list[Doc], separator: str) -> None:
        self.items = items
        self.separator = separator

    def flat(self) -> list[Doc]:
        return join([self.separator, LINE], self.items)


class Nest:
    """Its line breaks indent `by` more columns."""

    __slots__ = ("by", "parts")

    def __init__(self, by: int, *parts: Doc) -> None:
        self.by = by
        self.parts: list[Doc] = list(parts)


class IfBreak:
    """`broken` when the innermost group around it breaks, `flat` otherwise (text only)."""

    __slots__ = ("broken", "flat")

    def __init__(self, broken: str, flat: str) -> None:
        self.broken = broken
        self.flat = flat


class Trailing:
    """A comment that ends the output line it is printed on."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


HARD = Hard()
LINE = Line()
SOFT = Line(soft=True)
FRESH = Fresh()
SPACE = Space()
GLUE = Space("")


def join(separator: Doc, docs: Iterable[Doc]) -> list[Doc]:
    out: list[Doc] = []
    for doc in docs:
        if out:
            out.append(separator)
        out.append(doc)
    return out


# ---- which groups must break ----------------------------------------------------------


def settle(doc: Doc) -> None:
    """Mark the groups that cannot be flat: those holding a hard line, and the innermost
    group holding the first possible break after a trailing comment."""
    _settle(doc, [], False)


def _settle(doc: Doc, groups: list[Group], pending: bool) -> bool:
    """Walk `doc` inside `groups`; `pending` when a trailing comment waits for a break.
    Returns whether one still waits after `doc`."""
    # Iterative over lists and nests; a group is on `groups` while its parts are walked.
    work: list[Doc | tuple[str, Group]] = [doc]
    while work:
        item = work.pop()
        if isinstance(item, tuple):  # the end of a group
            groups.pop()
            continue
        if isinstance(item, str | IfBreak):
            continue
        if isinstance(item, list):
            work.extend(reversed(item))
        elif isinstance(item, Nest):
            work.extend(reversed(item.parts))
        elif isinstance(item, Fill):
            work.extend(reversed(item.flat()))
        elif isinstance(item, Group):
            groups.append(item)
            work.append(("end", item))
            work.extend(reversed(item.parts))
        elif isinstance(item, Line):
            if pending and groups:
                groups[-1].broken = True
            pending = False
        elif isinstance(item, Space):
            pending = False
        elif isinstance(item, Hard | Fresh):
            for group in groups:
                group.broken = True
            pending = False
        elif isinstance(item, Trailing):
            pending = True
    return pending


# ---- layout ----------------------------------------------------------------------------

_FLAT, _BREAK = 0, 1


def _fits(item: Doc, indent: int, rest: Sequence[tuple[int, int, Doc]], width: int) -> bool:
    """Whether `item` laid out flat, then `rest` up to its first break, fits in `width`."""
    work: list[tuple[int, Doc]] = [(_FLAT, item)]
    rest_index = len(rest)
    while width >= 0:
        if not work:
            if rest_index == 0:
                return True
            rest_index -= 1
            _, mode, doc = rest[rest_index]
            work.append((mode, doc))
            continue
        mode, doc = work.pop()
        if isinstance(doc, str):
            width -= len(doc)
        elif isinstance(doc, Space):
            width -= len(doc.text)
        elif isinstance(doc, list):
            work.extend((mode, part) for part in reversed(doc))
        elif isinstance(doc, Nest):
            work.extend((mode, part) for part in reversed(doc.parts))
        elif isinstance(doc, Fill):
            work.extend((mode, part) for part in reversed(doc.flat()))
        elif isinstance(doc, Group):
            inner = _BREAK if doc.broken else mode
            work.extend((inner, part) for part in reversed(doc.parts))
        elif isinstance(doc, Line):
            if mode == _BREAK:
                return True
            width -= 0 if doc.soft else 1
        elif isinstance(doc, IfBreak):
            width -= len(doc.broken if mode == _BREAK else doc.flat)
        elif isinstance(doc, Hard | Fresh):
            return True
    return False


def _width(doc: Doc) -> int:
    """The width of `doc` printed flat."""
    if isinstance(doc, str):
        return len(doc)
    if isinstance(doc, list):
        return sum(_width(part) for part in doc)
    if isinstance(doc, Space):
        return len(doc.text)
    if isinstance(doc, Line):
        return 0 if doc.soft else 1
    if isinstance(doc, IfBreak):
        return len(doc.flat)
    if isinstance(doc, Nest | Group):
        return sum(_width(part) for part in doc.parts)
    if isinstance(doc, Fill):
        return _width(doc.flat())
    return 0


def _filled(fill: Fill, indent: int, mode: int, column: int, width: int) -> list[tuple[int, int, Doc]]:
    """The work of a `Fill`: each separator's line broken only where the next item does not fit."""
    work: list[tuple[int, int, Doc]] = []
    separator = len(fill.separator)
    for index, item in enumerate(fill.items):
        size = _width(item)
        if index:
            # (the separator after the item, or the closing comma, must fit too)
            flat = mode == _FLAT or column + separator + 1 + size + separator <= width
            work.append((indent, _FLAT if flat else _BREAK, [fill.separator, LINE]))
            column = column + separator + 1 if flat else indent
        work.append((indent, _FLAT, item))
        column += size
    return work


class _Output:
    def __init__(self) -> None:
        self.lines: list[tuple[str, list[str]]] = []  # (code, trailing comments)
        self.current: list[str] = []
        self.comments: list[str] = []
        self.column = 0

    def text(self, text: str) -> None:
        self.current.append(text)
        self.column += len(text)

    def newline(self, indent: int, blank: bool = False) -> None:
        self.lines.append(("".join(self.current).rstrip(), self.comments))
        if blank:
            self.lines.append(("", []))
        self.current = [" " * indent]
        self.comments = []
        self.column = indent

    def at_line_start(self) -> bool:
        return not "".join(self.current).strip()

    def finish(self) -> list[tuple[str, list[str]]]:
        code = "".join(self.current).rstrip()
        if code or self.comments:
            self.lines.append((code, self.comments))
        return self.lines


def render(doc: Doc, width: int) -> str:
    """Lay `doc` out within `width` columns (comments and unbreakable text may pass it)."""
    settle(doc)
    out = _Output()
    work: list[tuple[int, int, Doc]] = [(0, _BREAK, doc)]
    while work:
        indent, mode, item = work.pop()
        if isinstance(item, str):
            out.text(item)
        elif isinstance(item, Space):
            if out.comments:
                out.newline(indent)
            else:
                out.text(item.text)
        elif isinstance(item, list):
            work.extend((indent, mode, part) for part in reversed(item))
        elif isinstance(item, Nest):
            work.extend((indent + item.by, mode, part) for part in reversed(item.parts))
        elif isinstance(item, Fill):
            work.extend(reversed(_filled(item, indent, mode, out.column, width)))
        elif isinstance(item, Group):
            flat = not item.broken and _fits(item, indent, work, width - out.column)
            inner = _FLAT if flat else _BREAK
            work.extend((indent, inner, part) for part in reversed(item.parts))
        elif isinstance(item, Line):
            if mode == _FLAT:
                out.text("" if item.soft else " ")
            else:
                out.newline(indent)
        elif isinstance(item, IfBreak):
            out.text(item.broken if mode == _BREAK else item.flat)
        elif isinstance(item, Hard):
            out.newline(indent, item.blank)
        elif isinstance(item, Fresh):
            if not out.at_line_start():
                out.newline(indent)
        elif isinstance(item, Trailing):
            out.comments.append(item.text)
    return _aligned(out.finish())


def _aligned(lines: list[tuple[str, list[str]]]) -> str:
    """The lines, each trailing comment two spaces after the longest code of its run (lines
    next to each other that all have one)."""
    text: list[str] = []
    index = 0
    while index < len(lines):
        code, comments = lines[index]
        if not comments or not code:
            text.append(" ".join([code, *comments]) if code else " ".join(comments))
            index += 1
            continue
        end = index
        while end < len(lines) and lines[end][1] and lines[end][0]:
            end += 1
        column = max(len(lines[i][0]) for i in range(index, end)) + 2
        for i in range(index, end):
            code, comments = lines[i]
            text.append(code.ljust(column) + " ".join(comments))
        index = end
    return "\n".join(text) + "\n"
