"""Helpers shared by the test modules (import as ``from helpers import ...``).

tests/ has a conftest.py and no __init__.py, so pytest's default ``prepend`` import mode puts
tests/ on ``sys.path`` and this module imports as plain ``helpers``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import HTTPServer
from pathlib import Path

from mitmproxy import http
from mitmproxy.test import tflow

from proxy_addons.launcher import command

PROXY_MODES = ("replay", "record", "simulate")


def graph_flow(
    method: str, url: str, body: bytes | str | None = None, headers: dict[str, str] | None = None
) -> http.HTTPFlow:
    """A mitmproxy test flow whose request is exactly this: no headers but ``headers``
    (set in order, so a later name replaces an earlier one whatever its case), and no
    content at all when ``body`` is None."""
    flow = tflow.tflow()
    flow.request.method = method
    flow.request.url = url
    flow.request.headers.clear()
    for name, value in (headers or {}).items():
        flow.request.headers[name] = value
    flow.request.content = body.encode() if isinstance(body, str) else body
    return flow


@contextmanager
def serving(server: HTTPServer) -> Iterator[HTTPServer]:
    """Serve ``server`` on a thread while the block runs; then shut it down and close it."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def run_cli(
    *args: str, confdir: Path | None = None, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``graph-vcr-proxy ARGS...`` to completion with no stdin. Given ``confdir``, a proxy
    mode runs as the launcher starts it: a free 127.0.0.1 port and that mitmproxy confdir."""
    if confdir is not None and args and args[0] in PROXY_MODES:
        argv = command(args[0], *args[1:], confdir=confdir)
    else:
        argv = [sys.executable, "-m", "proxy_addons.cli", *args]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], starts: str) -> str:
    """Exit status 2 with exactly one stderr line starting with ``starts``, no traceback and
    no proxy started; returns that line for further checks."""
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(starts), lines[0]
    assert "Traceback" not in result.stderr
    assert "proxy listening on" not in result.stdout
    return lines[0]


@contextmanager
def documented_graph() -> Iterator[str]:
    """A plain-HTTP stand-in for Graph on 127.0.0.1 that answers every PUT with the
    documented 201 and every GET with 200 and the same object: what ``record --upstream``
    points at. Yields its base URL."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from proxy_addons import examples

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = examples.RESPONSE_BODY.encode()
            self.send_response(201 if self.command == "PUT" else 200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_PUT = do_GET = _answer

        def log_message(self, *args: object) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"
