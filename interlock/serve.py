"""`interlock serve`: the HTTP ingest (interlock/ingest.py) and delivery of one router, in one
process or several sharing a port.

Every process (a worker) loads the router on the store, registers the `--handlers`, starts
delivery (`async with router:`) and then serves the ingest with uvicorn on a socket that the
command bound once; with `--workers N`, N processes share it (interlock/serve_workers.py), each
with a router of its own on the same (shared) store.

On SIGTERM or SIGINT a worker stops accepting connections, finishes the requests under way
(up to `GRACE` seconds), then leaves `async with router:`. On Redis, deliveries in flight stay
pending in the store and are delivered again later (by another instance, or this service when
it comes back): nothing a publish accepted is lost. On memory://, which ends with the process,
the worker first delivers what it accepted (up to `GRACE` seconds; what is left is lost, and
logged as such).
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import os
import signal
import socket
import sys
from types import FrameType
from typing import Any

import attrs
import uvicorn
from starlette.applications import Starlette

import interlock
from interlock.handler_spec import install_handlers
from interlock.ingest import create_app
from interlock.runtime.outcomes import DeliveryError
from interlock.runtime.router import Router
from interlock.runtime.store import StoreError
from interlock.serve_workers import die_with_parent, run_workers
from interlock.stores import open_store

log = logging.getLogger("interlock.serve")

GRACE = 10  # seconds the requests under way may take to finish at shutdown
MAX_HEAD = 64 * 1024  # bytes of a request's line and headers
MAX_CONNECTIONS = 1024  # connections and requests at once, per process
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
    # httpx logs every request of an HTTP target at INFO: one line per delivery is noise here.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}


@attrs.frozen
class ServeSettings:
    """What `interlock serve` was asked; a worker process rebuilds its router from it (the
    token is read from the environment variable `token_env` in each process, never passed)."""

    project: str
    store: str
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    handlers: str | None = None
    token_env: str | None = None
    max_body: int = 1_048_576
    access_log: bool = False
    claim_idle_ms: int | None = None
    tls_cert: str | None = None  # a PEM certificate chain: serve HTTPS
    tls_key: str | None = None
    loop: str = "asyncio"  # or "uvloop" (`interlock[fast]`)
    root: str | None = None  # the project's folder (its imports read files inside it)


class ServeError(Exception):
    """The command was used wrongly (exit 2): a missing token variable, a port in use."""


def configure_logging() -> None:
    """INFO and above to stderr, one line each; uvicorn's loggers included."""
    logging.config.dictConfig(LOGGING)


def read_token(variable: str | None) -> str | None:
    """The bearer token from the environment variable `variable` (None: no token)."""
    if variable is None:
        return None
    token = os.environ.get(variable)
    if token is None:
        raise ServeError(f"--token-env {variable}: the environment variable `{variable}` is not set")
    token = token.strip()  # (a token read from a file keeps its newline; a client's is stripped too)
    if not token:
        raise ServeError(f"--token-env {variable}: the environment variable `{variable}` is empty")
    return token


def router_options(settings: ServeSettings) -> dict[str, Any]:
    """The options of delivery that the command sets (the router's defaults otherwise)."""
    options: dict[str, Any] = {"root": settings.root}
    if settings.claim_idle_ms is not None:
        options["claim_idle_ms"] = settings.claim_idle_ms
    return options


def load_router(settings: ServeSettings) -> Router:
    """The router of the project on the store; CompileError or ArtifactError if there is none."""
    return interlock.load(settings.project, store=open_store(settings.store), **router_options(settings))


def prepare(router: Router, settings: ServeSettings) -> Starlette:
    """Register the handlers on the router and make its ingest app (HandlerSpecError, ServeError)."""
    if settings.handlers is not None:
        install_handlers(router, settings.handlers)
    return create_app(router, token=read_token(settings.token_env), max_body_bytes=settings.max_body,
                      lifespan_starts_router=False)


def serve(settings: ServeSettings, router: Router, app: Starlette) -> int:
    """Bind the port and serve until SIGTERM or SIGINT; the exit code. The router and app
    serve this process when there is one worker; each worker process makes its own else."""
    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    scheme = "https" if settings.tls_cert else "http"
    url = f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
    log.info("serving %s on %s (store %r, %d worker%s)", settings.project, url, router.store, settings.workers,
             "" if settings.workers == 1 else "s")
    if settings.workers == 1:
        return serve_here(router, app, sock, settings)
    return run_workers(settings.workers, _worker, (settings, sock), grace=GRACE + 20)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket that worker processes can share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # (IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so; without it a
    # response written in two parts waits for the client's delayed ACK, 40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _worker(parent: int, settings: ServeSettings, sock: socket.socket) -> None:
    """A worker process of `--workers N`: its own router and app, then `serve_here`."""
    die_with_parent(parent)
    configure_logging()
    try:
        router = load_router(settings)
        app = prepare(router, settings)
    except Exception as exc:  # checked by the command before it started workers: a change since
        log.error("worker %d cannot start: %s: %s", os.getpid(), type(exc).__name__, exc)
        sys.exit(EXIT_FAILED)
    sys.exit(serve_here(router, app, sock, settings))


class _Stop:
    """SIGTERM and SIGINT: ask the server to shut down (uvicorn installs its own handlers
    while it serves and calls this one again afterwards: the process then just ends)."""

    def __init__(self) -> None:
        self.requested = False
        self.server: uvicorn.Server | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self.server is not None:
            self.server.should_exit = True


def serve_here(router: Router, app: Starlette, sock: socket.socket, settings: ServeSettings) -> int:
    """Deliver and serve in this process until SIGTERM or SIGINT; the exit code."""
    stop = _Stop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    if settings.loop == "uvloop":
        import uvloop

        return uvloop.run(_serve(router, app, sock, settings, stop))
    return asyncio.run(_serve(router, app, sock, settings, stop))


def check_tls(settings: ServeSettings) -> None:
    """That the certificate and key load (ServeError saying why not), before anything starts."""
    if settings.tls_cert is None and settings.tls_key is None:
        return
    if settings.tls_cert is None or settings.tls_key is None:
        raise ServeError("--tls-cert and --tls-key go together")
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ServeError(f"cannot load --tls-cert {settings.tls_cert} / --tls-key {settings.tls_key}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None


async def _serve(router: Router, app: Starlette, sock: socket.socket, settings: ServeSettings, stop: _Stop) -> int:
    # h11: it bounds a request's head (httptools reads any size); at most MAX_CONNECTIONS at
    # once (503 beyond), so memory stays below MAX_CONNECTIONS x (--max-body + the head).
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=settings.access_log,
                            timeout_graceful_shutdown=GRACE, server_header=False, http="h11",
                            h11_max_incomplete_event_size=MAX_HEAD, limit_concurrency=MAX_CONNECTIONS,
                            ssl_certfile=settings.tls_cert, ssl_keyfile=settings.tls_key)
    server = stop.server = uvicorn.Server(config)
    try:
        async with router:
            if not stop.requested:
                await server.serve(sockets=[sock])
            if not router.store.shared:
                await _finish(router)
    except (StoreError, DeliveryError) as exc:
        log.error("cannot deliver: %s: %s", type(exc).__name__, exc)
        return EXIT_FAILED
    finally:
        await router.store.close()
    return EXIT_OK


async def _finish(router: Router) -> None:
    """On a store in this process's memory, what was accepted is lost when the process ends:
    deliver it first, for up to GRACE seconds."""
    try:
        await router.drain(GRACE)
    except TimeoutError:
        log.warning("deliveries not finished within %d s are lost: memory:// keeps them in this process only "
                    "(use redis:// to keep them)", GRACE)
