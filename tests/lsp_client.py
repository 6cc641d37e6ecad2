"""A minimal Language Server Protocol client for the tests: JSON-RPC with Content-Length
framing over a server process's stdin and stdout (the real `interlock lsp`).

A reader thread takes every message off the server's stdout; responses are matched to
requests by id, notifications (`textDocument/publishDiagnostics`, ...) queued for `wait`.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

TIMEOUT_S = 20.0


class LspError(Exception):
    """An error response from the server: `code` and `message` as it sent them."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def uri(path: Path) -> str:
    return path.resolve().as_uri()


def read_message(stream: BinaryIO) -> dict[str, Any] | None:
    """One framed message, or None at the end of the stream."""
    length = None
    while True:
        line = stream.readline()
        if not line:
            return None
        line = line.strip()
        if not line:
            break
        name, _, value = line.decode("ascii").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    assert length is not None, "a message without Content-Length"
    body = stream.read(length)
    return json.loads(body)  # type: ignore[no-any-return]


class LspClient:
    def __init__(self, command: list[str] | None = None, cwd: Path | None = None) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in `stop`) the server's stderr: a pipe nobody reads could fill and block it
        self.process = subprocess.Popen(command or [sys.executable, "-m", "interlock.cli", "lsp"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, cwd=cwd)
        self.next_id = 0
        self.responses: dict[int, dict[str, Any]] = {}
        self.notifications: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []  # notifications taken off the queue by `wait`, kept for `latest`
        self.arrived = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        while (message := read_message(self.process.stdout)) is not None:
            if "id" in message and "method" not in message:
                with self.arrived:
                    self.responses[message["id"]] = message
                    self.arrived.notify_all()
            elif "id" in message:  # a request from the server (e.g. workspace/configuration): no support
                self._send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            else:
                self.notifications.put(message)

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode("utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        number = self.next_id
        self._send({"jsonrpc": "2.0", "id": number, "method": method, "params": params})
        deadline = time.monotonic() + TIMEOUT_S
        with self.arrived:
            while number not in self.responses:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no response to {method} in {TIMEOUT_S}s")
                self.arrived.wait(left)
            response = self.responses.pop(number)
        if "error" in response:
            raise LspError(response["error"]["code"], response["error"]["message"])
        return response.get("result")

    def wait(self, method: str, match: Any = lambda params: True, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        """The params of the next notification `method` whose params `match`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {method} notification in {timeout}s")
            try:
                message = self.notifications.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(message)
            if message.get("method") == method and match(message.get("params")):
                return message["params"]  # type: ignore[no-any-return]

    def diagnostics(self, file: Path, timeout: float = TIMEOUT_S) -> list[dict[str, Any]]:
        """The next diagnostics published for `file`."""
        params = self.wait("textDocument/publishDiagnostics", lambda p: p["uri"] == uri(file), timeout)
        return params["diagnostics"]  # type: ignore[no-any-return]

    def settle(self, file: Path) -> None:
        """Forget every notification sent so far: the server handles messages in order, so once
        it has answered a request (the symbols of `file`), what it published before is here."""
        self.request("textDocument/documentSymbol", {"textDocument": {"uri": uri(file)}})
        self.drain()

    def drain(self) -> None:
        """Forget the notifications received so far."""
        while True:
            try:
                self.seen.append(self.notifications.get_nowait())
            except queue.Empty:
                return

    def initialize(self, folder: Path) -> dict[str, Any]:
        result = self.request("initialize", {
            "processId": None, "rootUri": uri(folder),
            "workspaceFolders": [{"uri": uri(folder), "name": folder.name}],
            "capabilities": {"textDocument": {"hover": {"contentFormat": ["markdown"]},
                                              "rename": {"prepareSupport": True},
                                              "documentSymbol": {"hierarchicalDocumentSymbolSupport": True}}},
        })
        self.notify("initialized", {})
        return result  # type: ignore[no-any-return]

    def open(self, file: Path, text: str | None = None, version: int = 1) -> None:
        self.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri(file), "languageId": "route", "version": version,
            "text": file.read_text(encoding="utf-8") if text is None else text}})

    def change(self, file: Path, text: str, version: int) -> None:
        self.notify("textDocument/didChange", {"textDocument": {"uri": uri(file), "version": version},
                                               "contentChanges": [{"text": text}]})

    def close(self, file: Path) -> None:
        self.notify("textDocument/didClose", {"textDocument": {"uri": uri(file)}})

    def at(self, method: str, file: Path, line: int, character: int, **extra: Any) -> Any:
        return self.request(method, {"textDocument": {"uri": uri(file)},
                                     "position": {"line": line, "character": character}, **extra})

    def stop(self) -> int:
        """shutdown, exit, and the process's exit code."""
        try:
            self.request("shutdown", None)
            self.notify("exit", None)
        except (BrokenPipeError, TimeoutError):
            pass
        try:
            return self.process.wait(timeout=TIMEOUT_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    stream.close()

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")
