"""Helpers shared by the test modules (import as ``from helpers import ...``).

tests/ has a conftest.py and no __init__.py, so pytest's default ``prepend`` import mode puts
tests/ on ``sys.path`` and this module imports as plain ``helpers``.
"""

from __future__ import annotations

import base64
import json
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
WORK_TENANT = "a796be92-0000-4000-8000-000000000001"


def _jwt_segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def jwt(**claims: object) -> str:
    """A JWT with these claims and a signature nobody checks: the proxy reads tokens without
    verifying them, so tests need no keys."""
    header = _jwt_segment({"typ": "JWT", "alg": "RS256"})
    return f"{header}.{_jwt_segment(claims)}.c2lnbmF0dXJl"


def kiota_url(
    template: str,
    *,
    base: str = "https://graph.microsoft.com/beta",
    user: str = "",
    meeting: str = "",
    join_web_url: str = "",
) -> str:
    """The URL Microsoft's generated SDKs send for a request builder's ``url_template``:
    expanded by Kiota's own RequestInformation (std-uritemplate), as the SDKs expand it."""
    from kiota_abstractions.method import Method
    from kiota_abstractions.request_information import RequestInformation

    parameters = {
        "baseurl": base,
        "user%2Did": user,
        "onlineMeeting%2Did": meeting,
        "joinWebUrl": join_web_url,
    }
    return RequestInformation(Method.GET, template, parameters).url


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
