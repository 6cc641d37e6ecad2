"""The types of the command line's values, for argparse: each turns text into a value or
raises `argparse.ArgumentTypeError` saying what is wrong (argparse then exits 2)."""

from __future__ import annotations

import argparse

from interlock.dsl.files import InputError, check_root
from interlock.dsl.transform import parse_duration


def whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def positive(text: str) -> int:
    """A whole number, 0 or more."""
    value = whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def at_least_one(text: str) -> int:
    value = whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def port(text: str) -> int:
    value = positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, not {value}")
    return value


def duration_ms(text: str) -> int:
    """A duration as `.route` files write it (`500ms`, `30s`, `10m`, `2h`), in milliseconds."""
    ms, problem = parse_duration(text)
    if ms is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration ({problem})")
    return ms


def folder(text: str) -> str:
    """A path that names a folder (not a file, nor nothing)."""
    try:
        return check_root(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_root(parser: argparse.ArgumentParser) -> None:
    """`--root FOLDER`, on every command that reads a project."""
    parser.add_argument("--root", type=folder, metavar="FOLDER", help="the project's folder: imports read files "
                        "inside it (default: the folders given, or those of the files given)")
