"""The `interlock` command.

Conventions (see docs and `cli.md`): silent on success, diagnostics on stderr,
`--format json` on stdout for machines, exit codes 0 (ok), 1 (the input has errors,
or warnings under `--strict`), 2 (the command was used wrongly). Nothing a user can
type or feed it ends in a Python traceback: an unexpected failure inside interlock
is reported in one line as a bug, with exit code 3.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console

import interlock
from interlock import arguments, ops_cli, report
from interlock.compiler.flow_graph import flow_graph
from interlock.compiler.pipeline import check
from interlock.compiler.route_tests import run_tests
from interlock.dsl.project import InputError, load_project, paused_gc
from interlock.event_input import EventInputError, event_of, parse
from interlock.graph_render import FORMATS, render
from interlock.runtime.event import Event, EventError
from interlock.runtime.event_data import encode_data
from interlock.runtime.store import DEFAULT_MAX_EVENT_BYTES

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="interlock", description="Declarative event routing: check and compile `.route` files.")
    parser.add_argument("--version", action="version", version=f"interlock {interlock.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    check = commands.add_parser("check", help="parse and validate `.route` files or folders",
                                description="Parse and validate `.route` files; folders are searched recursively. "
                                "Silent when there is nothing to report.")
    check.add_argument("paths", nargs="+", metavar="PATH", help="a `.route` file or a folder of them")
    arguments.add_root(check)
    check.add_argument("--format", choices=("text", "json"), default="text",
                       help="text for people (stderr), json for machines (stdout)")
    check.add_argument("--strict", action="store_true", help="fail (exit 1) on warnings too")
    check.add_argument("--max-errors", type=arguments.positive, default=0, metavar="N",
                       help="show at most N errors (0, the default: all); the count stays exact")
    check.set_defaults(run=_check)

    test = commands.add_parser("test", help="run the `test` blocks of a project",
                               description="Run every `test` block: each step's event (a `send`, or what a "
                               "`then TARGET emits` says a target publishes) must reach exactly the targets its "
                               "`expect` names, and each target named `with { ... }` must receive those fields. "
                               "Failures show expected and actual targets side by side, and the fields that differ.")
    test.add_argument("paths", nargs="+", metavar="PATH", help="a `.route` file or a folder of them")
    arguments.add_root(test)
    test.add_argument("--format", choices=("text", "json"), default="text",
                      help="text for people, json for machines (stdout)")
    test.set_defaults(run=_test)

    graph = commands.add_parser("graph", help="draw the event-flow graph (dot, mermaid or html)",
                                description="Draw the event-flow graph: events, routes and chooses, targets, dead "
                                "letters, and the events targets emit. A project with errors exits 1; the graph is "
                                "still drawn when every name resolves, so that an `emits` cycle can be seen.")
    graph.add_argument("paths", nargs="+", metavar="PATH", help="a `.route` file or a folder of them")
    arguments.add_root(graph)
    graph.add_argument("--format", choices=FORMATS, default="dot",
                       help="dot (Graphviz), mermaid, or html (one self-contained page)")
    graph.add_argument("-o", "--output", metavar="FILE", help="write the graph to FILE instead of stdout")
    graph.set_defaults(run=_graph)

    compile_ = commands.add_parser("compile", help="compile a project into a router artifact (JSON)",
                                   description="Check a project and, when it has no errors, write its compiled "
                                   "router: dispatch tables, every target's resolved policy, hashes.")
    compile_.add_argument("paths", nargs="+", metavar="PATH", help="a `.route` file or a folder of them")
    arguments.add_root(compile_)
    compile_.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the artifact")
    compile_.set_defaults(run=_compile)

    explain = commands.add_parser("explain", help="which routes match one event, and why",
                                  description="Show, for one event, whether `publish` would take it (every "
                                  "field that breaks its schema), then every route whose `on` takes its type, each "
                                  "predicate's verdict and the value it saw, and the targets reached. Exits 1 when "
                                  "`publish` would refuse the event.")
    explain.add_argument("path", metavar="PATH", help="a project (file or folder) or a compiled artifact (.json)")
    arguments.add_root(explain)
    explain.add_argument("--event", required=True, metavar="EVENT.json",
                         help='the event: {"type": ..., "data": {...}} or a CloudEvents JSON object')
    explain.add_argument("--format", choices=("text", "json"), default="text")
    explain.set_defaults(run=_explain)

    simulate = commands.add_parser("simulate", help="run events through the real runtime with injected failures",
                                   description="Publish the events of a JSON-lines file through the real runtime, "
                                   "with a synthetic handler per target, and report per target: delivered, retried, "
                                   "dead-lettered, latency percentiles.")
    simulate.add_argument("path", metavar="PATH", help="a project (file or folder) or a compiled artifact (.json)")
    arguments.add_root(simulate)
    simulate.add_argument("--events", required=True, metavar="EVENTS.jsonl",
                          help='one event per line: {"type": ..., "data": {...}} or a CloudEvent')
    simulate.add_argument("--fail", action="append", default=[], metavar="TARGET=RATE",
                          help="make TARGET's handler fail with this probability (0 to 1)")
    simulate.add_argument("--slow", action="append", default=[], metavar="TARGET=MS",
                          help="make TARGET's handler take this many milliseconds")
    simulate.add_argument("--seed", type=int, default=0, help="of the random failures and jitter (default 0)")
    simulate.set_defaults(run=_simulate)

    fmt = commands.add_parser("fmt", help="write `.route` files in the canonical layout",
                              description="Rewrite `.route` files in the one canonical layout (docs/compiler.md); "
                              "folders are searched recursively. Comments are kept; a file with syntax errors is "
                              "reported and left as it is. Silent when there is nothing to report.")
    fmt.add_argument("paths", nargs="+", metavar="PATH", help="a `.route` file or a folder of them")
    fmt.add_argument("--check", action="store_true",
                     help="write nothing; exit 1 when a file is not in the canonical layout (and name it)")
    fmt.add_argument("--diff", action="store_true", help="write nothing; print what would change as a unified diff")
    fmt.set_defaults(run=_fmt)

    serve = commands.add_parser("serve", help="serve the HTTP ingest of a project and deliver its events",
                                description="Take CloudEvents over HTTP (POST /events) and deliver them through the "
                                "router of PROJECT on an event store, in one or more worker processes, until SIGTERM "
                                "or SIGINT. Logs go to stderr.")
    serve.add_argument("path", metavar="PROJECT", help="a project (file or folder) or a compiled artifact (.json)")
    arguments.add_root(serve)
    serve.add_argument("--store", required=True, metavar="URL",
                       help="memory:// (one process) or redis://HOST:PORT/DB (rediss:// for TLS)")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=arguments.port, default=8080, help="the port to listen on (default 8080)")
    serve.add_argument("--workers", type=arguments.at_least_one, default=1, metavar="N",
                       help="processes sharing the port, each with its router (more than 1 needs redis://)")
    serve.add_argument("--handlers", metavar="MODULE:OBJECT",
                       help="the handlers: a mapping {target: function}, or a function taking the router; MODULE "
                       "is imported with the current directory on the path")
    serve.add_argument("--token-env", metavar="NAME",
                       help="require `Authorization: Bearer TOKEN` on POST /events, TOKEN read from this "
                       "environment variable")
    serve.add_argument("--max-body", type=arguments.at_least_one, default=1_048_576, metavar="BYTES",
                       help="the largest request body taken (default 1 MiB; 413 beyond)")
    serve.add_argument("--access-log", action="store_true", help="log every request (off by default)")
    serve.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this PEM certificate (chain)")
    serve.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    serve.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                       help="the event loop: asyncio's own (default), or uvloop, faster (pip install "
                       "'interlock[fast]')")
    serve.add_argument("--claim-idle", type=arguments.duration_ms, default=None, metavar="DURATION",
                       help="on a shared store, how long a delivery read by a process that died waits before "
                       "another takes it over (default 30s; never less than twice the target's timeout)")
    serve.set_defaults(run=_serve)

    lsp = commands.add_parser("lsp", help="the language server of `.route` files, for editors (stdio)",
                              description="Speak the Language Server Protocol on stdin and stdout: diagnostics as "
                              "you type, hover, go to definition, references, completion, rename, symbols and "
                              "formatting (docs/editors.md). An editor starts it; logs go to stderr.")
    lsp.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="warning",
                     help="what the server logs to stderr (default warning)")
    lsp.set_defaults(run=_lsp)
    ops_cli.add_commands(commands, _Parser)  # status, dead-letters, publish: against a live store
    return parser


def _check(args: argparse.Namespace, stderr: Console) -> int:
    project = load_project(args.paths, args.root)
    diagnostics = check(project)
    if args.format == "json":
        print(report.json_report(diagnostics, len(project.files), args.max_errors))
    else:
        report.print_text(stderr, diagnostics, project.sources, len(project.files), args.max_errors)
    failed = any(d.is_error for d in diagnostics) or (args.strict and bool(diagnostics))
    return EXIT_FAILED if failed else EXIT_OK


def _test(args: argparse.Namespace, stderr: Console) -> int:
    project = load_project(args.paths, args.root)
    diagnostics = check(project)
    if any(d.is_error for d in diagnostics):
        report.print_text(stderr, diagnostics, project.sources, len(project.files))
        return EXIT_FAILED
    results = run_tests(project)
    failed = [r for r in results if not r.passed]
    if args.format == "json":
        print(report.test_json(results))
    else:
        report.print_test_results(Console(highlight=False, soft_wrap=True), results)
    return EXIT_FAILED if failed else EXIT_OK


def _load_router(path: str, stderr: Console, store: str | interlock.EventStore = "memory://",
                 root: str | None = None, **options: Any) -> interlock.Router | None:
    try:
        return interlock.load(path, store=store, root=root, **options)
    except interlock.CompileError as exc:
        project = load_project([path], root)
        report.print_text(stderr, exc.diagnostics, project.sources, len(project.files))
    except interlock.ArtifactError as exc:
        stderr.print(f"interlock: error: {exc}", markup=False)
    return None


def _compile(args: argparse.Namespace, stderr: Console) -> int:
    with paused_gc():  # (one pause for all of it, as `interlock.compile`: see interlock._compiled)
        artifact = _artifact_text(args, stderr)
    if artifact is None:
        return EXIT_FAILED
    try:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(artifact)
    except OSError as exc:
        stderr.print(f"interlock: error: cannot write `{args.output}`: {exc.strerror or exc}", markup=False)
        return EXIT_USAGE
    return EXIT_OK


def _artifact_text(args: argparse.Namespace, stderr: Console) -> str | None:
    """The artifact of the project, as `interlock compile` writes it; None when the project
    has errors (reported)."""
    project = load_project(args.paths, args.root)
    diagnostics = check(project)
    if any(d.is_error for d in diagnostics):
        report.print_text(stderr, diagnostics, project.sources, len(project.files))
        return None
    from interlock.compiler.artifact import build_artifact, dumps

    return dumps(build_artifact(project))


def _read_event(path: str) -> Event:
    """The event of `explain --event`, taken as `publish` would take it (its schema aside):
    an object, its data an object within the nesting and size limits of a publish."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise InputError(f"cannot read `{path}`: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"`{path}` is not UTF-8 text") from None
    try:
        event = event_of(parse(text, f"`{path}`"))
        encode_data(event, DEFAULT_MAX_EVENT_BYTES)
    except EventInputError as exc:
        raise InputError(str(exc)) from None
    except EventError as exc:
        raise InputError(f"`{path}`: {exc}") from None
    return event


def _explain(args: argparse.Namespace, stderr: Console) -> int:
    event = _read_event(args.event)
    event_type, data = event.type, event.data
    router = _load_router(args.path, stderr, root=args.root)
    if router is None:
        return EXIT_FAILED
    problems = router.problems(event_type, data)
    closed = router.artifact["events"].get(event_type) is not None
    explanations = router.explain(event_type, data)
    targets = router.match(event_type, data)
    if args.format == "json":
        print(report.explain_json(event_type, targets, explanations, problems, closed))
    else:
        # A tree cannot wrap: when piped, draw it wide rather than cut its lines.
        width = None if sys.stdout.isatty() else 240
        Console(highlight=False, width=width).print(
            report.explain_tree(event_type, targets, explanations, problems, closed))
    return EXIT_FAILED if problems else EXIT_OK


def _graph(args: argparse.Namespace, stderr: Console) -> int:
    project = load_project(args.paths, args.root)
    diagnostics = check(project)
    failed = any(d.is_error for d in diagnostics)
    if failed:
        report.print_text(stderr, diagnostics, project.sources, len(project.files))
    if not project.ok:  # names that do not resolve: there is no graph to draw
        return EXIT_FAILED
    text = render(flow_graph(project), args.format, title=f"interlock: {' '.join(args.paths)}")
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            stderr.print(f"interlock: error: cannot write `{args.output}`: {exc.strerror or exc}", markup=False)
            return EXIT_USAGE
    return EXIT_FAILED if failed else EXIT_OK


def _fmt(args: argparse.Namespace, stderr: Console) -> int:
    from interlock.fmt import FmtOptions, run_fmt

    return run_fmt(FmtOptions(tuple(args.paths), check=args.check, diff=args.diff), stderr)


def _simulate(args: argparse.Namespace, stderr: Console) -> int:
    from interlock.simulate import SimulationInputError, run

    # (every target gets a synthetic handler)
    router = _load_router(args.path, stderr, root=args.root, deliver_http=False)
    if router is None:
        return EXIT_FAILED
    try:
        # The table says what became of each delivery: the runtime's own warnings would repeat it.
        logging.getLogger("interlock.runtime").setLevel(logging.ERROR)
        width = None if sys.stdout.isatty() else 160  # piped: a table too wide for 80 columns stays whole
        result = run(router, args.events, args.fail, args.slow, args.seed, Console(highlight=False, width=width))
    except SimulationInputError as exc:
        stderr.print(f"interlock: error: {exc}", markup=False)
        return EXIT_USAGE
    return EXIT_FAILED if result.refused else EXIT_OK


def _serve(args: argparse.Namespace, stderr: Console) -> int:
    try:
        from interlock import serve
    except ModuleNotFoundError as exc:
        if exc.name not in ("starlette", "uvicorn"):
            raise
        stderr.print("interlock: error: `interlock serve` needs starlette and uvicorn: pip install "
                     "'interlock[serve]'", markup=False)
        return EXIT_USAGE
    from interlock.handler_spec import HandlerSpecError
    from interlock.stores import StoreURLError, open_store

    settings = serve.ServeSettings(
        project=args.path, store=args.store, host=args.host, port=args.port, workers=args.workers,
        handlers=args.handlers, token_env=args.token_env, max_body=args.max_body, access_log=args.access_log,
        claim_idle_ms=args.claim_idle, tls_cert=args.tls_cert, tls_key=args.tls_key, loop=args.loop,
        root=args.root)
    if args.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        stderr.print("interlock: error: --loop uvloop needs uvloop: pip install 'interlock[fast]'", markup=False)
        return EXIT_USAGE
    try:
        store = open_store(args.store)
        if args.workers > 1 and not store.shared:
            raise serve.ServeError(f"--workers {args.workers} needs a shared store such as redis://: "
                                   f"{args.store} lives in one process")
        serve.read_token(args.token_env)
        serve.check_tls(settings)
        router = _load_router(args.path, stderr, store, **serve.router_options(settings))
        if router is None:
            return EXIT_FAILED
        app = serve.prepare(router, settings)
        serve.configure_logging()
        return serve.serve(settings, router, app)
    except (StoreURLError, serve.ServeError, HandlerSpecError) as exc:
        stderr.print(f"interlock: error: {exc}", markup=False)
        return EXIT_USAGE


def _lsp(args: argparse.Namespace, stderr: Console) -> int:
    try:
        from interlock.lsp.server import serve as serve_lsp
    except ModuleNotFoundError as exc:
        if exc.name not in ("pygls", "lsprotocol") and not (exc.name or "").startswith(("pygls.", "lsprotocol.")):
            raise
        stderr.print("interlock: error: `interlock lsp` needs pygls: pip install 'interlock[lsp]'", markup=False)
        return EXIT_USAGE
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve_lsp()
    return EXIT_OK


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises nothing more."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stderr = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        code: int = args.run(args, stderr)
    except InputError as exc:
        stderr.print(f"interlock: error: {report.visible(str(exc))}", markup=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `interlock test ... | head`: the reader left, as Unix tools take it
        _quiet_stdout()
        return EXIT_OK
    except Exception as exc:  # the promise: never a traceback for anything a user can feed us
        stderr.print(f"interlock: internal error: {type(exc).__name__}: {exc}", markup=False)
        stderr.print("this is a bug in interlock; please report it with the input that caused it", markup=False)
        return EXIT_INTERNAL
    return code


if __name__ == "__main__":
    sys.exit(main())
