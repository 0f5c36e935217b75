"""Helpers shared by the test modules (import as ``from helpers import ...``).

tests/ has a conftest.py and no __init__.py, so pytest's default ``prepend`` import mode puts
tests/ on ``sys.path`` and this module imports as plain ``helpers``.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import httpx
from kiota_abstractions.authentication import AccessTokenProvider, AllowedHostsValidator
from mitmproxy import http
from mitmproxy.test import tflow

from proxy_addons.cli.launcher import RunningProxy, command

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


def recorder_over_emulator(start_proxy: Any, cassette: Path, *args: str) -> RunningProxy:
    """A ``record`` proxy into ``cassette`` whose upstream is ``simulate --reverse`` (the
    emulator as Graph itself), started with the ``start_proxy`` fixture; ``args`` its own."""
    upstream = start_proxy("simulate", "--reverse")
    return start_proxy("record", "--cassette", str(cassette), "--upstream", upstream.url, *args)


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


class StaticToken(AccessTokenProvider):
    """Kiota's bearer-token contract with one fixed token: no identity platform involved."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] | None = None
    ) -> str:
        return self.token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator([])


def proxied(proxy: RunningProxy) -> httpx.AsyncClient:
    """An async httpx client that goes through the proxy and trusts only its CA."""
    verify = ssl.create_default_context(cafile=str(proxy.ca))
    return httpx.AsyncClient(proxy=proxy.url, verify=verify, timeout=30)


@asynccontextmanager
async def graph_sdk(proxy: RunningProxy, base_url: str, token: str) -> AsyncIterator[Any]:
    """msgraph-sdk's ``GraphServiceClient`` as an application builds it, its HTTP client
    going through the proxy: the SDK's own middleware options (the /me URL replacement,
    telemetry), request adapter and bearer-token provider, with ``token``."""
    from kiota_abstractions.authentication import BaseBearerTokenAuthenticationProvider
    from msgraph import GraphServiceClient
    from msgraph.graph_request_adapter import GraphRequestAdapter, options
    from msgraph_core import GraphClientFactory

    http_client = GraphClientFactory.create_with_default_middleware(
        client=proxied(proxy), options=options
    )
    adapter = GraphRequestAdapter(
        BaseBearerTokenAuthenticationProvider(StaticToken(token)), client=http_client
    )
    adapter.base_url = base_url
    try:
        yield GraphServiceClient(request_adapter=adapter)
    finally:
        await http_client.aclose()


@contextmanager
def documented_graph() -> Iterator[str]:
    """A plain-HTTP stand-in for Graph on 127.0.0.1 that answers every PUT with the
    documented 201 and every GET with 200 and the same object: what ``record --upstream``
    points at. Yields its base URL."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from proxy_addons.cassette import examples

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


def pre_commit_whitespace_problems(data: bytes) -> list[str]:
    """What pre-commit's ``trailing-whitespace`` and ``end-of-file-fixer`` hooks would
    rewrite, by their own rules: a line ending in whitespace before its line break
    (``trailing-whitespace`` strips what ``bytes.rstrip()`` strips; a blank-only line is such
    a line), and a file that does not end in exactly one newline (``end-of-file-fixer``; an
    empty file is left alone)."""
    lines = [line.removesuffix(b"\r") for line in data.split(b"\n")]
    problems = [
        f"line {n}: trailing whitespace" for n, line in enumerate(lines, 1) if line != line.rstrip()
    ]
    if data and (not data.endswith(b"\n") or data.endswith(b"\n\n")):
        problems.append("end of file: not exactly one newline")
    return problems
