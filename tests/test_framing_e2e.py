"""HTTP/1 framing errors below our addons: what mitmproxy answers itself, pinned.

mitmproxy (11) decides the framing of a request before any addon hook can answer it: a
request with conflicting Content-Length headers, or with both Content-Length and
Transfer-Encoding, gets mitmproxy's own HTML ``400`` and a closed connection, and a body
with broken chunked encoding closes the connection without an answer. No addon can put
Graph's error in their place (docs/replay.md, *Framing errors*). What these tests hold: such a
request is never forwarded nor recorded, the client is told no lie, and the proxy goes on
serving the next connection.
"""

from __future__ import annotations

import socket
import ssl

import pytest
import yaml
from helpers import documented_graph

from proxy_addons.cassette import examples

pytestmark = pytest.mark.e2e

PATH = examples.ME_URL.removeprefix("https://graph.microsoft.com")
BODY = examples.REQUEST_BODY.encode()
HEAD = f"PUT {PATH} HTTP/1.1\r\nHost: graph.microsoft.com\r\nContent-Type: application/json\r\n"

FRAMING_ERRORS = {
    "conflicting Content-Length": (
        HEAD.encode() + b"Content-Length: %d\r\nContent-Length: 5\r\n\r\n" % len(BODY) + BODY,
        b"400",
    ),
    "Content-Length and Transfer-Encoding": (
        HEAD.encode()
        + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(BODY)
        + BODY
        + b"\r\n0\r\n\r\n",
        b"400",
    ),
    "broken chunked encoding": (
        HEAD.encode() + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + BODY + b"\r\n0\r\n\r\n",
        None,  # the connection is closed without an answer
    ),
}


def exchange_until_closed(port: int, ca: str, request: bytes) -> bytes:
    """``request`` as these bytes in a CONNECT tunnel over TLS; everything received until
    the proxy closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"CONNECT graph.microsoft.com:443 HTTP/1.1\r\nHost: graph.microsoft.com\r\n\r\n"
        )
        established = b""
        while b"\r\n\r\n" not in established:
            chunk = sock.recv(4096)
            assert chunk, "CONNECT refused"
            established += chunk
        context = ssl.create_default_context(cafile=ca)
        with context.wrap_socket(sock, server_hostname="graph.microsoft.com") as tls:
            tls.sendall(request)
            received = b""
            try:
                while chunk := tls.recv(65536):
                    received += chunk
            except (ssl.SSLError, ConnectionResetError):
                pass
            return received


def test_framing_errors_are_refused_by_mitmproxy_never_forwarded_and_the_proxy_goes_on(
    start_proxy, client_for, tmp_path
):
    path = tmp_path / "framing.yaml"
    with documented_graph() as upstream:
        proxy = start_proxy("record", "--cassette", str(path), "--upstream", upstream)
        for name, (request, status) in FRAMING_ERRORS.items():
            answer = exchange_until_closed(proxy.port, str(proxy.ca), request)
            if status is None:
                assert answer == b"", name
            else:
                assert answer.split(b" ", 2)[1] == status, name
                assert b"text/html" in answer.split(b"\r\n\r\n")[0].lower(), name
        headers = {**examples.REQUEST_HEADERS, "Authorization": "Bearer t"}
        created = client_for(proxy).put(examples.ME_URL, content=BODY, headers=headers)
    assert created.status_code == 201
    assert len(yaml.safe_load(path.read_text())["interactions"]) == 1  # only the good one
