"""Cassettes that vcrpy itself records from a compressing server, replayed through the proxy.

Recording: vcrpy's own ``use_cassette`` around real httpx, requests and aiohttp calls to
``https://graph.microsoft.com/...``. A local HTTPS server on 127.0.0.1 answers them as that
host: the test's resolver sends that one name to it (like an /etc/hosts line; every other
name but loopback fails to resolve), and the clients trust a certificate trustme issued for
it. So the cassettes hold real Graph URIs, recorded by vcrpy, unedited. The server compresses
each answer with the coding named at the end of the meeting id (gzip, deflate, br, zstd), and
the clients send their create bodies gzip-compressed, as Kiota's compression handler does.

vcrpy keeps what each library hands it: httpx the compressed bytes, requests (urllib3 2) and
aiohttp the decoded bytes, both with ``Content-Encoding`` still in the headers. Replay: one
real ``graph-vcr-proxy replay`` of the three cassettes, driven by each of the three clients.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import brotli
import httpx
import pytest
import requests
import trustme
import vcr
import zstandard
from helpers import run_cli, serving

from proxy_addons.cassette import cassette
from proxy_addons.cli.launcher import RunningProxy, running_proxy

pytestmark = pytest.mark.e2e

GRAPH = "graph.microsoft.com"
CLIENTS = ("httpx", "requests", "aiohttp")
# Each coding as the usual libraries apply and undo it, independent of the proxy's code.
ENCODE: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}
DECODE: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
    "br": brotli.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
}
CODINGS = tuple(ENCODE)
CREATE = {
    "externalAppointmentId": "compressed-create",
    "appointmentClients": [{"displayName": "Grady", "emailAddress": "grady@contoso.com"}],
    "settings": {"allowClientToJoinUsingBrowser": True},
}
JSON_GZIP = {"Content-Type": "application/json", "Content-Encoding": "gzip"}


def url(meeting: str) -> str:
    return f"https://{GRAPH}/beta/me/onlineMeetings/{meeting}/virtualAppointment"


def appointment(meeting: str) -> dict[str, Any]:
    """The origin's answer to a GET: big enough that every coding really compresses it."""
    clients = [
        {"displayName": f"Client {n}", "emailAddress": f"c{n}@contoso.com"} for n in range(20)
    ]
    return {"id": f"id-{meeting}", "externalAppointmentId": meeting, "appointmentClients": clients}


def created(body: dict[str, Any], meeting: str) -> dict[str, Any]:
    return {**body, "id": f"id-{meeting}"}


# --- the three clients, each as its users call it -----------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lowercase names
    body: bytes  # as the client decoded it, or with ``raw`` the bytes as they came


@dataclass(frozen=True)
class Client:
    """One HTTP library, trusting ``cafile``, through ``proxy`` if given."""

    library: str
    cafile: Path
    proxy: str | None = None

    def send(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        raw: bool = False,
    ) -> Answer:
        if self.library == "httpx":
            return self._httpx(method, target, body, headers or {}, raw)
        if self.library == "requests":
            return self._requests(method, target, body, headers or {}, raw)
        return asyncio.run(self._aiohttp(method, target, body, headers or {}, raw))

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cafile))

    def _httpx(self, method: str, target: str, body: Any, headers: Any, raw: bool) -> Answer:
        with (
            httpx.Client(proxy=self.proxy, verify=self._context(), timeout=30) as client,
            client.stream(method, target, content=body, headers=headers) as response,
        ):
            data = b"".join(response.iter_raw()) if raw else response.read()
            return Answer(response.status_code, _lower(response.headers.items()), data)

    def _requests(self, method: str, target: str, body: Any, headers: Any, raw: bool) -> Answer:
        with requests.Session() as session:
            session.trust_env = False
            response = session.request(
                method,
                target,
                data=body,
                headers=headers,
                proxies={"https": self.proxy} if self.proxy else {},
                verify=str(self.cafile),
                stream=True,
                timeout=30,
            )
            data = response.raw.read(decode_content=False) if raw else response.content
            return Answer(response.status_code, _lower(response.headers.items()), data)

    async def _aiohttp(
        self, method: str, target: str, body: Any, headers: Any, raw: bool
    ) -> Answer:
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            aiohttp.ClientSession(auto_decompress=not raw, timeout=timeout) as session,
            session.request(
                method, target, data=body, headers=headers, proxy=self.proxy, ssl=self._context()
            ) as response,
        ):
            return Answer(response.status, _lower(response.headers.items()), await response.read())


def _lower(items: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


# --- the origin: graph.microsoft.com on 127.0.0.1, compressing ----------------------------


class GraphOrigin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, payload: dict[str, Any], coding: str) -> None:
        body = ENCODE[coding](json.dumps(payload).encode())
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", coding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        meeting = self.path.split("/")[4]
        self._send(200, appointment(meeting), meeting.rsplit("-", 1)[1])

    def do_PUT(self) -> None:
        sent = self.rfile.read(int(self.headers["Content-Length"]))
        body = gzip.decompress(sent) if self.headers["Content-Encoding"] == "gzip" else sent
        self._send(201, created(json.loads(body), self.path.split("/")[4]), "gzip")


def graph_resolves_to(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    """graph.microsoft.com resolves to the origin; any other name but loopback to nothing,
    so a mistake fails here instead of reaching the internet."""
    real = socket.getaddrinfo

    def resolve(host: Any, service: Any, *args: Any, **kwargs: Any) -> Any:
        if host == GRAPH:
            return real("127.0.0.1", port, *args, **kwargs)
        if host in ("127.0.0.1", "localhost", "::1"):
            return real(host, service, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"{host} does not resolve in this test")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def record_with_vcrpy(client: Client, path: Path) -> None:
    """The session each library records: a GET per coding, and a gzip-compressed create."""
    with vcr.use_cassette(str(path)):
        for coding in CODINGS:
            assert client.send("GET", url(f"{client.library}-{coding}")).status == 200
        create = gzip.compress(json.dumps(CREATE).encode())
        assert client.send("PUT", url(f"{client.library}-put"), create, JSON_GZIP).status == 201


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three cassettes, one vcrpy recorded under each client."""
    folder = tmp_path_factory.mktemp("recorded-by-vcrpy")
    ca = trustme.CA()
    cafile = tmp_path_factory.mktemp("origin-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    server = ThreadingHTTPServer(("127.0.0.1", 0), GraphOrigin)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(GRAPH).configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with serving(server), pytest.MonkeyPatch.context() as monkeypatch:
        graph_resolves_to(monkeypatch, server.server_address[1])
        for library in CLIENTS:
            record_with_vcrpy(Client(library, cafile), folder / f"{library}.yaml")
    return folder


@pytest.fixture(scope="module")
def replaying(recorded: Path, confdir: Path) -> Iterator[RunningProxy]:
    repeats = "--allow-playback-repeats"  # every test here replays the same recordings
    with running_proxy("replay", "--cassette", str(recorded), repeats, confdir=confdir) as proxy:
        yield proxy


def through(proxy: RunningProxy, library: str) -> Client:
    return Client(library, proxy.ca, proxy.url)


# --- the cassettes as vcrpy wrote them ----------------------------------------------------


def test_vcrpy_stores_compressed_bodies_the_way_each_client_library_hands_them_over(recorded):
    for library in CLIENTS:
        interactions = cassette.load(recorded / f"{library}.yaml")
        gets, (put,) = interactions[:-1], interactions[-1:]
        for coding, interaction in zip(CODINGS, gets, strict=True):
            headers = _lower((k, v[0]) for k, v in interaction.response["headers"].items())
            body = interaction.response["body"]["string"]
            assert headers["content-encoding"] == coding
            stored = DECODE[coding](body) if library == "httpx" else body  # decoded already
            assert json.loads(stored) == appointment(f"{library}-{coding}")
        assert put.request.headers["Content-Encoding"] == "gzip"
        assert json.loads(gzip.decompress(put.request.body)) == CREATE  # stored as sent


# --- replayed through the proxy -----------------------------------------------------------


@pytest.mark.parametrize("library", CLIENTS)
@pytest.mark.parametrize("recorded_by", CLIENTS)
def test_every_client_reads_the_json_of_every_coding_whoever_recorded_it(
    replaying, recorded_by, library
):
    client = through(replaying, library)
    for coding in CODINGS:
        meeting = f"{recorded_by}-{coding}"
        answer = client.send("GET", url(meeting))
        assert answer.status == 200
        assert json.loads(answer.body) == appointment(meeting)


@pytest.mark.parametrize("library", CLIENTS)
@pytest.mark.parametrize("recorded_by", CLIENTS)
def test_raw_bytes_carry_exactly_one_encoding_and_a_true_content_length(
    replaying, recorded_by, library
):
    """A body stored compressed goes out as stored; one stored decoded goes out without the
    Content-Encoding that no longer describes it."""
    client = through(replaying, library)
    for coding in CODINGS:
        meeting = f"{recorded_by}-{coding}"
        answer = client.send("GET", url(meeting), raw=True)
        assert int(answer.headers["content-length"]) == len(answer.body)
        sent_coding = answer.headers.get("content-encoding")
        if recorded_by == "httpx":
            assert sent_coding == coding
            assert json.loads(DECODE[coding](answer.body)) == appointment(meeting)
        else:
            assert sent_coding is None
            assert json.loads(answer.body) == appointment(meeting)


@pytest.mark.parametrize("library", CLIENTS)
@pytest.mark.parametrize("recorded_by", CLIENTS)
def test_a_compressed_recorded_body_matches_the_same_json_sent_compressed_or_plain(
    replaying, recorded_by, library
):
    client = through(replaying, library)
    meeting = f"{recorded_by}-put"
    plain = json.dumps(CREATE, indent=2).encode()  # other whitespace, same JSON
    for body, headers in (
        (gzip.compress(json.dumps(CREATE).encode()), JSON_GZIP),
        (plain, {"Content-Type": "application/json"}),
    ):
        answer = client.send("PUT", url(meeting), body, headers)
        assert answer.status == 201
        assert json.loads(answer.body) == created(CREATE, meeting)


@pytest.mark.parametrize("library", CLIENTS)
def test_a_different_compressed_body_misses_naming_the_json_path(replaying, library):
    changed = {**CREATE, "externalAppointmentId": "another"}
    body = gzip.compress(json.dumps(changed).encode())
    answer = through(replaying, library).send("PUT", url("httpx-put"), body, JSON_GZIP)
    assert answer.status == 501
    message = json.loads(answer.body)["error"]["message"]
    assert message.endswith("differs in body at $.externalAppointmentId.")
    assert "\\x" not in message and "b'" not in message


def test_validate_reads_the_compressed_bodies_decoded(recorded):
    done = run_cli("validate", str(recorded))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "15 interactions checked, 0 invalid" in " ".join(done.stdout.split())


def test_a_malformed_fault_cuts_the_decoded_json_of_a_compressed_recording(recorded, start_proxy):
    proxy = start_proxy("replay", "--cassette", str(recorded), "--fault", "malformed:route=get")
    answer = through(proxy, "httpx").send("GET", url("httpx-br"), raw=True)
    whole = json.dumps(appointment("httpx-br")).encode()
    assert answer.status == 200
    assert "content-encoding" not in answer.headers
    assert answer.body == whole[: len(whole) // 2]
    assert int(answer.headers["content-length"]) == len(answer.body)
