"""Recording through a real proxy over HTTPS, then replaying the cassette two ways.

The upstream is a plain local HTTP server (gzip, binary, Graph-like JSON; it also echoes
the caller's bearer token once, the way a careless server might) and the emulator as
``simulate --reverse``. Every recording is replayed by our
replay proxy and by plain vcrpy, and grepped for the secrets it must not hold.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import requests
import vcr
from helpers import assert_one_line_error, pre_commit_whitespace_problems, run_cli, serving
from vcr.cassette import Cassette

from proxy_addons.cassette import cassette, examples
from proxy_addons.cassette.writer import CassetteWriter

pytestmark = pytest.mark.e2e

TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.secret-token-4242.signature"
COOKIE = "session=cookie-secret-9876"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Cookie": COOKIE}
BASE = "https://graph.microsoft.com/beta/me/onlineMeetings"
BINARY = bytes(range(256)) * 4 + b"\xff\xfe not utf-8 \x80"


def url(meeting: str, resource: str = "virtualAppointment") -> str:
    return f"{BASE}/{meeting}/{resource}"


@dataclass
class Upstream:
    """A plain HTTP stand-in for Graph that the proxy forwards to."""

    url: str
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


class GraphLikeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, dict[str, str]]]

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("request-id", "upstream-request-id")
        self.send_header("Set-Cookie", "upstream-session=set-cookie-secret-5555; Path=/")
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append((self.command, self.path, dict(self.headers)))
        meeting = self.path.split("/")[4]
        json_type = {"Content-Type": "application/json"}
        if meeting == "gzip":
            payload = json.dumps({"id": "gz", "externalAppointmentId": "x" * 500}).encode()
            self._send(200, gzip.compress(payload), {**json_type, "Content-Encoding": "gzip"})
        elif meeting == "binary":
            self._send(200, BINARY, {"Content-Type": "application/octet-stream"})
        elif meeting == "echo-token":
            # A careless server putting the caller's credentials in its body.
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            self._send(
                200, json.dumps({"id": "e", "externalAppointmentId": token}).encode(), json_type
            )
        elif self.command == "PUT":
            created = {**json.loads(body), "id": f"id-{meeting}"}
            self._send(201, json.dumps(created).encode(), json_type)
        elif self.command == "DELETE":
            self._send(204, b"", {})
        else:
            payload = {
                "id": f"id-{meeting}",
                "externalAppointmentId": meeting,
                "appointmentClients": [
                    {
                        "emailAddress": f"{meeting}@contoso.com",
                        "smsCapablePhoneNumber": "123-456-7890",
                    }
                ],
            }
            self._send(200, json.dumps(payload).encode(), json_type)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_POST = _handle


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a killed proxy resets its connections; that is the test, not a failure


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    seen: list[tuple[str, str, dict[str, str]]] = []
    handler = type("Handler", (GraphLikeHandler,), {"seen": seen})
    server = QuietServer(("127.0.0.1", 0), handler)
    with serving(server):
        yield Upstream(f"http://127.0.0.1:{server.server_address[1]}", seen)


def create_body(email: str) -> str:
    body = json.loads(examples.REQUEST_BODY)
    body["appointmentClients"][0]["emailAddress"] = email
    return json.dumps(body)


# The session every recording test plays: JSON create and get, gzip, binary, a 204.
def play_session(client: httpx.Client) -> list[httpx.Response]:
    json_headers = {**AUTH, "Content-Type": "application/json"}
    return [
        client.put(url("m1"), content=create_body("grady@contoso.com"), headers=json_headers),
        client.get(url("m1"), headers=AUTH),
        client.get(url("gzip"), headers={**AUTH, "Accept-Encoding": "gzip"}),
        client.get(url("binary"), headers=AUTH),
        client.delete(url("m1"), headers=AUTH),
    ]


def assert_no_secrets(path: Path) -> None:
    data = path.read_bytes()
    for secret in (TOKEN, "secret-token-4242", "cookie-secret-9876", "set-cookie-secret-5555"):
        assert secret.encode() not in data, f"{secret} reached the cassette"


def replay_with_vcrpy(path: Path) -> list[httpx.Response]:
    """The same session, sent with httpx under plain vcrpy (no proxy, no network).

    httpx, because vcrpy under requests can't replay a compressed body (with urllib3 2 it
    hands the client the compressed bytes: vcrpy issues #719, #942); requests replays the
    ``--decode-compressed-response`` recording below.
    """
    with vcr.VCR(record_mode="none").use_cassette(str(path)), httpx.Client() as client:
        return play_session(client)


def test_a_recording_replays_identically_under_our_replay_and_plain_vcrpy(
    tmp_path, upstream, start_proxy, client_for
):
    path = tmp_path / "session.yaml"
    recorder = start_proxy("record", "--cassette", str(path), "--upstream", upstream.url)
    recorded = play_session(client_for(recorder))
    assert [r.status_code for r in recorded] == [201, 200, 200, 200, 204]
    assert recorded[2].json()["id"] == "gz"
    assert recorded[3].content == BINARY
    assert recorder.stop() == 0

    assert len(upstream.seen) == 5
    assert all(
        host == upstream.url.removeprefix("http://")
        for _, _, headers in upstream.seen
        for host in [headers["Host"]]
    )
    assert_no_secrets(path)
    text = path.read_text()
    assert "uri: https://graph.microsoft.com/beta/me/onlineMeetings/m1/virtualAppointment" in text
    gzipped = next(i for i in cassette.load(path) if "/gzip/" in i.request.uri).response
    assert gzipped["headers"]["Content-Encoding"] == ["gzip"]  # kept as received, like vcrpy
    assert json.loads(gzip.decompress(gzipped["body"]["string"]))["id"] == "gz"
    assert "!!binary" in text  # non-UTF-8 stored as bytes

    replayer = start_proxy("replay", "--cassette", str(path))
    replayed = play_session(client_for(replayer))
    plain = replay_with_vcrpy(path)
    for original, ours, theirs in zip(recorded, replayed, plain, strict=True):
        assert ours.status_code == theirs.status_code == original.status_code
        assert ours.content == theirs.content == original.content
    assert len(upstream.seen) == 5  # replay never went upstream
    assert pre_commit_whitespace_problems(path.read_bytes()) == []


def test_decode_compressed_response_stores_readable_json_that_vcrpy_with_requests_replays(
    tmp_path, upstream, start_proxy, client_for
):
    path = tmp_path / "decoded.yaml"
    recorder = start_proxy(
        "record",
        "--cassette",
        str(path),
        "--upstream",
        upstream.url,
        "--decode-compressed-response",
    )
    recorded = client_for(recorder).get(url("gzip"), headers={**AUTH, "Accept-Encoding": "gzip"})
    assert recorded.headers["Content-Encoding"] == "gzip"  # the client still got it as sent
    assert recorder.stop() == 0

    (only,) = cassette.load(path)
    assert "Content-Encoding" not in only.response["headers"]
    assert json.loads(only.response["body"]["string"])["id"] == "gz"
    assert only.response["headers"]["Content-Length"] == [str(len(only.response["body"]["string"]))]
    with vcr.VCR(record_mode="none").use_cassette(str(path)), requests.Session() as session:
        assert session.get(url("gzip"), headers=AUTH).json() == recorded.json()


def test_secrets_and_named_fields_are_redacted_and_replay_still_matches_a_real_token(
    tmp_path, upstream, start_proxy, client_for
):
    path = tmp_path / "redacted.yaml"
    recorder = start_proxy(
        "record",
        "--cassette",
        str(path),
        "--upstream",
        upstream.url,
        "--redact-field",
        "emailAddress",
        "--redact-field",
        "smsCapablePhoneNumber",
        "--redact-header",
        "request-id",
    )
    client = client_for(recorder)
    json_headers = {**AUTH, "Content-Type": "application/json"}
    created = client.put(url("m2"), content=create_body("grady@contoso.com"), headers=json_headers)
    echoed = client.get(url("echo-token"), headers=AUTH)
    assert created.json()["appointmentClients"][0]["emailAddress"] == "grady@contoso.com"
    assert echoed.json()["externalAppointmentId"] == TOKEN
    assert recorder.stop() == 0

    assert_no_secrets(path)
    data = path.read_bytes()
    for personal in (b"grady@contoso.com", b"123-456-7890", b"upstream-request-id"):
        assert personal not in data
    placeholders = set(re.findall(rb"<redacted:([^:>]+):\d+>", data))
    assert {b"authorization", b"cookie", b"set-cookie", b"emailAddress", b"request-id"} <= (
        placeholders
    )

    # A different real token and a different e-mail address still match the recording.
    replayer = start_proxy("replay", "--cassette", str(path))
    other = {"Authorization": "Bearer another-real-token", "Content-Type": "application/json"}
    again = client_for(replayer).put(
        url("m2"), content=create_body("someone.else@contoso.com"), headers=other
    )
    assert again.status_code == 201
    assert again.json()["appointmentClients"][0]["emailAddress"].startswith("<redacted:")


def test_every_stored_content_length_is_the_redacted_body_length_in_plain_vcrpy_replay(
    tmp_path, upstream, start_proxy, client_for
):
    """Redaction changes lengths; vcrpy hands the stored header on as it is, in both
    clients, so a wrong one would tell the code under test a length its body doesn't have."""
    path = tmp_path / "lengths.yaml"
    redact = ["--redact-field", "emailAddress", "--redact-field", "smsCapablePhoneNumber"]
    recorder = start_proxy("record", "--cassette", str(path), "--upstream", upstream.url, *redact)
    json_headers = {**AUTH, "Content-Type": "application/json"}
    body = create_body("grady@contoso.com")
    client = client_for(recorder)
    assert client.put(url("m3"), content=body, headers=json_headers).status_code == 201
    assert client.get(url("m3"), headers=AUTH).status_code == 200
    assert recorder.stop() == 0

    stored = Cassette.load(path=str(path), record_mode="none")
    put = stored.requests[0]
    assert b"<redacted:emailAddress:" in put.body
    assert put.headers["Content-Length"] == str(len(put.body))
    replayed = []
    for client_type, body_argument in ((requests.Session, "data"), (httpx.Client, "content")):
        with vcr.VCR(record_mode="none").use_cassette(str(path)), client_type() as c:
            replayed += [
                c.request("PUT", url("m3"), headers=json_headers, **{body_argument: body}),
                c.request("GET", url("m3"), headers=AUTH),
            ]
    for response in replayed:
        assert b"<redacted:" in response.content
        assert response.headers["Content-Length"] == str(len(response.content))


def test_a_cassette_under_a_regular_file_is_refused_at_start_with_one_line(tmp_path, confdir):
    (tmp_path / "file").write_text("a file, not a folder")
    target = tmp_path / "file" / "x.yaml"
    done = run_cli("record", "--cassette", str(target), confdir=confdir)
    line = assert_one_line_error(done, f"graph-vcr-proxy: {target}: cannot record here: ")
    assert line.endswith(f"{tmp_path / 'file'} is not a folder")


def test_a_validation_note_prints_no_line_by_default_but_is_counted(
    tmp_path, upstream, start_proxy, client_for
):
    """Every documented create sends the string "true": not a line per request on stderr."""
    summary = tmp_path / "summary.json"
    recorder = start_proxy(
        "record",
        "--cassette",
        str(tmp_path / "notes.yaml"),
        "--upstream",
        upstream.url,
        "--summary-json",
        str(summary),
        "--no-summary",
    )
    headers = {**AUTH, "Content-Type": "application/json"}
    created = client_for(recorder).put(url("m4"), content=examples.REQUEST_BODY, headers=headers)
    assert created.status_code == 201
    assert recorder.stop() == 0
    assert json.loads(summary.read_text())["validation_notes"] >= 1
    assert not [line for line in recorder.stderr if "allowClientToJoinUsingBrowser" in line]


def test_once_refuses_an_existing_cassette_with_one_line_and_status_2(tmp_path, confdir):
    path = tmp_path / "exists.yaml"
    path.write_text(examples.bundled_cassette_texts()["create-virtualappointment-me.yaml"])
    before = path.read_bytes()
    done = run_cli("record", "--cassette", str(path), confdir=confdir)
    line = assert_one_line_error(done, "graph-vcr-proxy: ")
    assert "cassette exists" in line and "once" in line
    assert path.read_bytes() == before


def test_eight_concurrent_clients_times_fifty_requests_are_all_recorded(
    tmp_path, upstream, start_proxy, client_for
):
    path = tmp_path / "concurrent.yaml"
    recorder = start_proxy("record", "--cassette", str(path), "--upstream", upstream.url)
    failures: list[BaseException] = []

    def client_run(n: int) -> None:
        try:
            with client_for(recorder) as client:
                for i in range(50):
                    response = client.get(url(f"c{n}-{i}"), headers=AUTH)
                    assert response.json()["id"] == f"id-c{n}-{i}"
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=client_run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    assert recorder.stop() == 0

    ours = {i.request.uri for i in cassette.load(path)}
    expected = {url(f"c{n}-{i}") for n in range(8) for i in range(50)}
    assert ours == expected
    assert len(Cassette.load(path=str(path), record_mode="none").data) == 400
    assert_no_secrets(path)


def test_kill_9_mid_run_loses_no_answered_interaction(tmp_path, upstream, start_proxy, client_for):
    path = tmp_path / "killed.yaml"
    recorder = start_proxy("record", "--cassette", str(path), "--upstream", upstream.url)
    answered: list[str] = []
    stop = threading.Event()

    def client_run(n: int) -> None:
        with client_for(recorder) as client:
            for i in range(10_000):
                if stop.is_set():
                    return
                target = url(f"k{n}-{i}")
                try:
                    response = client.get(target, headers=AUTH)
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    answered.append(target)

    threads = [threading.Thread(target=client_run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(answered) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    recorder.process.kill()
    recorder.process.wait(10)
    stop.set()
    for thread in threads:
        thread.join(30)

    assert len(answered) >= 150
    on_disk = {i.request.uri for i in cassette.load(path)}  # a torn tail is left out
    assert set(answered) <= on_disk
    CassetteWriter(path).heal()  # what the next recorder does first, under the lock
    loaded = Cassette.load(path=str(path), record_mode="none")  # then plain vcrpy loads it
    assert {request.uri for request in loaded.requests} == on_disk
    assert pre_commit_whitespace_problems(path.read_bytes()) == []
    assert_no_secrets(path)


def test_a_recording_from_the_emulator_killed_with_9_replays_identically_in_ours_and_vcrpy(
    tmp_path, start_proxy, client_for
):
    emulator = start_proxy("simulate", "--reverse", "--no-summary")
    path = tmp_path / "emulated.yaml"
    recorder = start_proxy(
        "record", "--cassette", str(path), "--upstream", emulator.url, "--no-summary"
    )
    client = client_for(recorder)
    json_headers = {**AUTH, "Content-Type": "application/json"}
    session = [
        ("PUT", url("emu"), create_body("grady@contoso.com")),
        ("GET", url("emu"), None),
        ("PATCH", url("emu"), json.dumps({"externalAppointmentId": "changed"})),
        ("GET", url("emu"), None),
        ("DELETE", url("emu"), None),
        ("GET", url("emu"), None),
    ]
    recorded = [client.request(m, u, content=b, headers=json_headers) for m, u, b in session]
    assert recorded[0].status_code == 201
    assert recorded[3].json()["externalAppointmentId"] == "changed"
    assert recorded[5].status_code == 404
    recorder.process.kill()  # no clean shutdown: what is on disk is what was answered
    recorder.process.wait(10)
    assert_no_secrets(path)

    replayer = start_proxy("replay", "--cassette", str(path), "--no-summary")
    replayed = [
        client_for(replayer).request(m, u, content=b, headers=json_headers) for m, u, b in session
    ]
    with vcr.VCR(record_mode="none").use_cassette(str(path)), requests.Session() as s:
        plain = [s.request(m, u, data=b, headers=json_headers) for m, u, b in session]
    for original, ours, theirs in zip(recorded, replayed, plain, strict=True):
        assert ours.status_code == theirs.status_code == original.status_code
        assert ours.content == theirs.content == original.content
