"""The ops commands of `interlock`, against a live store: `status`, `dead-letters
list|show|redrive|purge` and `publish`. Each takes the project (files, a folder, or a
compiled artifact) first, then what it acts on, and `--store URL`:

    interlock status PROJECT --store URL
    interlock dead-letters list PROJECT NAME --store URL
    interlock publish PROJECT TYPE --data JSON --store URL

What the commands do lives in interlock/ops*.py; this module reads their options and turns
their outcomes into output and exit codes (0 done, 1 a project with errors, an event its
schema refuses or a sync target that failed, 2 the command used wrongly or a store that
cannot be used, as every `interlock` command).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console

from interlock.runtime.event import EventError
from interlock.runtime.outcomes import DeadLetter, DeliveryError
from interlock.runtime.router import Router
from interlock.runtime.schema import SchemaError
from interlock.runtime.store import StoreError

from . import arguments, ops
from . import ops_dead_letters as dead_letters
from .ops import OpsError, against_store, check_dead_letter, check_targets, confirm

Run = Callable[[argparse.Namespace, Console], int]
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_commands(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add the ops commands to the `interlock` parser's subcommands (`commands`, whose parsers
    are of `parser_class`)."""
    status = commands.add_parser("status", help="what delivery is doing on a live store, per target",
                                 description="Per target: backlog (not yet read), pending (read, not acknowledged), "
                                 "in retry, dead letters, the age of the oldest delivery not done, instances, and "
                                 "for ordered targets the holder of each partition; per dead letter, its depth. "
                                 "Reads only.")
    _project_and_store(status)
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.add_argument("--watch", nargs="?", type=_interval, const=2.0, default=None, metavar="SECONDS",
                        help="show a live view, read again every SECONDS (default 2) until Ctrl-C")
    status.set_defaults(run=_ops(_status))

    dead = commands.add_parser("dead-letters", help="list, show, redrive or purge the entries of a dead letter",
                               description="The entries of a dead letter on a live store: list them, show one's "
                               "attempts and event, deliver them again (redrive) or delete them (purge).")
    actions = dead.add_subparsers(dest="action", metavar="ACTION", parser_class=parser_class)
    actions.required = True
    listing = actions.add_parser("list", help="the entries that match the filters, oldest first")
    _project_and_store(listing, name=True)
    _filters(listing)
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.set_defaults(run=_ops(_list))
    show = actions.add_parser("show", help="entries with every attempt (kind, message, status, time) and the event")
    _project_and_store(show, name=True)
    show.add_argument("ids", nargs="+", metavar="ID", help="an entry id, as `list` shows it")
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.set_defaults(run=_ops(_show))
    for action, verb in (("redrive", "deliver the matching entries to their targets again, from a first attempt"),
                         ("purge", "delete the matching entries")):
        parser = actions.add_parser(action, help=verb, description=f"{verb[0].upper()}{verb[1:]}. Without "
                                    "filters: every entry. Asks first on a terminal; elsewhere needs --yes.")
        _project_and_store(parser, name=True)
        _filters(parser)
        parser.add_argument("--yes", action="store_true", help="do it without asking")
        parser.add_argument("--format", choices=("text", "json"), default="text")
        parser.set_defaults(run=_ops(_redrive if action == "redrive" else _purge))

    publish = commands.add_parser("publish", help="publish one event by hand into a live store",
                                  description="Publish one event as a service would: checked against its schema, "
                                  "routed, async deliveries stored for the running instances, HTTP sync targets "
                                  "called. An event reaching a Python sync target is refused (no handler here).")
    _project_and_store(publish)
    publish.add_argument("type", nargs="?", metavar="TYPE", help="the event type (with --data)")
    given = publish.add_mutually_exclusive_group(required=True)
    given.add_argument("--data", metavar="JSON", help="the event's data, a JSON object")
    given.add_argument("--event", metavar="FILE", help='{"type": ..., "data": {...}} or a CloudEvent; - for stdin')
    publish.add_argument("--id", metavar="ID", help="the event id (default: a new one)")
    publish.add_argument("--format", choices=("text", "json"), default="text")
    publish.set_defaults(run=_ops(_publish))


def _project_and_store(parser: argparse.ArgumentParser, *, name: bool = False) -> None:
    parser.add_argument("path", metavar="PROJECT", help="a project (file or folder) or a compiled artifact (.json)")
    arguments.add_root(parser)
    if name:
        parser.add_argument("name", metavar="NAME", help="the dead letter")
    parser.add_argument("--store", required=True, metavar="URL",
                        help="redis://HOST:PORT/DB (rediss:// for TLS), where the instances deliver from")
    parser.add_argument("--partitions", type=arguments.at_least_one, default=16, metavar="N",
                        help="partitions of ordered targets, as the instances use (default 16)")


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", action="append", default=[], metavar="T", help="entries of target T")
    parser.add_argument("--kind", action="append", default=[], metavar="K",
                        help="entries whose last attempt failed with error kind K (TimeoutError, http.503, ...)")
    parser.add_argument("--older-than", type=arguments.duration_ms, metavar="D",
                        help="dead-lettered at least D ago (10m, 2h)")
    parser.add_argument("--newer-than", type=arguments.duration_ms, metavar="D", help="dead-lettered less than D ago")
    parser.add_argument("--id", action="append", default=[], dest="ids", metavar="ID", help="the entry with this id")
    parser.add_argument("--limit", type=arguments.at_least_one, metavar="N", help="at most N entries, the oldest")


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.05 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"between 0.05 and 3600 seconds, not {text}")
    return value


# ---- running a command -------------------------------------------------------------------


def _ops(run: Callable[[argparse.Namespace, Console, Router], int]) -> Run:
    """The command with its router on the store, and its failures as messages and exit codes."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace, stderr: Console) -> int:
        from interlock.cli import _load_router
        from interlock.stores import StoreURLError, open_store

        try:
            router = _load_router(args.path, stderr, open_store(args.store), root=args.root,
                                  partitions=args.partitions)
            if router is None:
                return EXIT_FAILED
            return run(args, stderr, router)
        except (EventError, SchemaError) as exc:  # an event that cannot be published: nothing was stored
            stderr.print(f"interlock: error: {exc}", markup=False)
            return EXIT_FAILED
        except (OpsError, StoreURLError, StoreError, DeliveryError) as exc:
            stderr.print(f"interlock: error: {exc}", markup=False)
            return EXIT_USAGE

    return wrapper


def _console() -> Console:
    # Tables cannot wrap: when piped, draw them wide rather than fold every cell.
    # No markup: what is shown comes from the store (event ids, handlers' messages), and a
    # message such as "[/items/0]" is text, not a style to apply.
    return Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 200)


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


def _status(args: argparse.Namespace, stderr: Console, router: Router) -> int:
    from .ops_status import collect, status_json
    from .ops_status_view import render, watch

    if args.watch is not None:
        if args.format == "json":
            raise OpsError("--watch is a live view for people; for JSON, run `interlock status --format json` "
                           "as often as needed")
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: how a watch ends
            asyncio.run(against_store(router, lambda: watch(router, args.watch, _console()), checked=True))
        return EXIT_OK
    status = asyncio.run(against_store(router, lambda: collect(router), checked=True))
    if args.format == "json":
        _print_json(status_json(status))
    else:
        _console().print(render(status))
    return EXIT_OK


def _chosen(args: argparse.Namespace, router: Router) -> tuple[str, dead_letters.Filters]:
    name = check_dead_letter(router, args.name)
    filters = dead_letters.Filters(
        targets=check_targets(router, args.target), kinds=frozenset(args.kind), older_than_ms=args.older_than,
        newer_than_ms=args.newer_than, ids=frozenset(dead_letters.entry_ids(args.ids)), limit=args.limit)
    return name, filters


def _list(args: argparse.Namespace, stderr: Console, router: Router) -> int:
    from .ops_dead_letters_view import entries_table

    name, filters = _chosen(args, router)
    entries, matched, total = asyncio.run(against_store(router, lambda: dead_letters.select(router, name, filters)))
    if args.format == "json":
        _print_json({"dead_letter": name, "total": total, "matched": matched,
                     "entries": [dead_letters.entry_json(e) for e in entries]})
    else:
        _console().print(entries_table(name, entries, matched, total, router.store.now_ms()))
    return EXIT_OK


def _show(args: argparse.Namespace, stderr: Console, router: Router) -> int:
    from .ops_dead_letters_view import show_entry

    name = check_dead_letter(router, args.name)
    entries = asyncio.run(against_store(router, lambda: dead_letters.find(router, name, args.ids)))
    if args.format == "json":
        _print_json({"dead_letter": name, "entries": [dead_letters.entry_json(e, full=True) for e in entries]})
        return EXIT_OK
    console = _console()
    for number, entry in enumerate(entries):
        if number:
            console.print()
        show_entry(console, entry, router.store.now_ms())
    return EXIT_OK


def _redrive(args: argparse.Namespace, stderr: Console, router: Router) -> int:
    return _change(args, stderr, router, "redrive", "redriven", dead_letters.redrive)


def _purge(args: argparse.Namespace, stderr: Console, router: Router) -> int:
    return _change(args, stderr, router, "purge", "purged", dead_letters.purge)


def _change(args: argparse.Namespace, stderr: Console, router: Router, verb: str, done: str,
            act: Callable[[Router, str, list[DeadLetter]], Awaitable[int]]) -> int:
    """Redrive or purge: choose the entries, check, ask, act, say how many."""
    name, filters = _chosen(args, router)
    # A redrive stores deliveries: into the partitions the instances read.
    entries, _, total = asyncio.run(against_store(router, lambda: dead_letters.select(router, name, filters),
                                                  checked=verb == "redrive"))
    if verb == "redrive":
        dead_letters.check_redrivable(router, entries)
    if entries:
        which = (("the only entry" if total == 1 else f"all {total} entries") if len(entries) == total
                 else f"{len(entries)} of the {total} entries")
        confirm(f"{verb} {which} of dead letter `{name}`", args.yes, stderr)
        count = asyncio.run(against_store(router, lambda: act(router, name, entries)))
    else:
        count = 0
    if args.format == "json":
        _print_json({"dead_letter": name, done: count, "ids": [e.id for e in entries]})
    else:
        print(f"{done} {ops.n_entries(count)} of dead letter `{name}`" if entries else
              f"nothing to {verb}: no entry of dead letter `{name}` matches ({ops.n_entries(total)})")
    return EXIT_OK


def _publish(args: argparse.Namespace, stderr: Console, router: Router) -> int:
    from .ops_publish import check, read_event, receipt_lines
    from .receipts import receipt_json

    ev = check(router, read_event(args.type, args.data, args.event, args.id))
    stored = [t for t in router.match(ev.type, ev.data) if router.targets[t]["mode"] == "async"]
    if stored and not router.store.shared:
        stderr.print(f"interlock: warning: {router.store!r} lives in this process: the deliveries to "
                     f"{', '.join(sorted(stored))} are gone when it exits", markup=False)
    receipt = asyncio.run(against_store(router, lambda: router.publish(ev), checked=True))
    if args.format == "json":
        _print_json(receipt_json(receipt))
    else:
        print("\n".join(receipt_lines(router, receipt)))
    return EXIT_FAILED if receipt.errors else EXIT_OK
