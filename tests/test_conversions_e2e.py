"""Imports of files mitmproxy itself wrote, and round trips, proven through real proxies.

A real client (httpx) runs one Graph session through a real ``mitmdump`` that writes a flow
file (``-w``) and a HAR file (``hardump``), in front of a local Graph: ``graph-vcr-proxy
simulate`` as the upstream proxy, so nothing leaves 127.0.0.1. Each file is imported; each
cassette, and the cassettes that come back from HAR and from a Dev Proxy mocks file, is
replayed by a real replay proxy to the same client session, which must get the answers the
live session got.
"""

from __future__ import annotations

import json
import queue
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import run_cli, serving

from proxy_addons.cassette import cassette, examples
from proxy_addons.cli.launcher import running_proxy, stop

pytestmark = pytest.mark.e2e

TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.conversion-secret-7331.signature"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {**AUTH, "Content-Type": "application/json"}
URL = examples.ME_URL
ACTIONS = URL.removesuffix("/virtualAppointment")
INVALID_URL = URL.replace(examples.MEETING_ID, "invalid-meeting")
LISTENING = re.compile(r"listening at (?:http://)?([\d.]+):(\d+)")

Answer = tuple[int, Any, str | None]  # status, body (JSON when it is), ETag


@dataclass(frozen=True)
class Capture:
    """What mitmdump wrote while the live session ran, and what the client got."""

    flows: Path
    har: Path
    answers: list[Answer]
    other_status: int


class Hello(BaseHTTPRequestHandler):
    """A local server for the one request that is not ours."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")


def answer(response: httpx.Response) -> Answer:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.content
    return response.status_code, body, response.headers.get("ETag")


def graph_session(client: httpx.Client) -> list[Answer]:
    """Create, read, a stale and a fresh update, read again, the live actions, an invalid
    create, delete, read a deleted one: each distinct request and the repeated ones."""
    answers = [answer(client.put(URL, content=examples.REQUEST_BODY, headers=JSON))]
    etag = answers[0][2]
    answers.append(answer(client.get(URL, headers=AUTH)))
    change = {"externalAppointmentId": "changed"}
    stale = {**JSON, "If-Match": 'W/"stale"'}
    answers.append(answer(client.patch(URL, json=change, headers=stale)))
    answers.append(answer(client.patch(URL, json=change, headers={**JSON, "If-Match": etag})))
    answers.append(answer(client.get(URL, headers=AUTH)))
    answers.append(answer(client.get(f"{ACTIONS}/getVirtualAppointmentJoinWebUrl", headers=AUTH)))
    sms = {"attendees": [{"phoneNumber": "+1 425 555 0100"}], "messageType": "confirmation"}
    answers.append(
        answer(client.post(f"{ACTIONS}/sendVirtualAppointmentSms", json=sms, headers=JSON))
    )
    invalid = {"settings": {"allowClientToJoinUsingBrowser": 7}}
    answers.append(answer(client.put(INVALID_URL, json=invalid, headers=JSON)))
    answers.append(answer(client.delete(URL, headers=AUTH)))
    answers.append(answer(client.get(URL, headers=AUTH)))
    return answers


def client_through(url: str, ca: Path) -> httpx.Client:
    return httpx.Client(proxy=url, verify=ssl.create_default_context(cafile=str(ca)), timeout=30)


@contextmanager
def mitmdump(*args: str) -> Iterator[str]:
    """``mitmdump ARGS`` on a free 127.0.0.1 port, its proxy URL while the block runs; then
    stopped with SIGTERM, as Ctrl-C would, so that it writes its HAR file on the way out."""
    command = [str(Path(sys.executable).with_name("mitmdump")), "--listen-host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--listen-port", "0", "--set", "flow_detail=0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    try:
        while True:
            line = lines.get(timeout=60)
            assert line is not None, f"mitmdump exited with {process.wait(10)}"
            found = LISTENING.search(line)
            if found:
                break
        yield f"http://127.0.0.1:{found.group(2)}"
    finally:
        assert stop(process) == 0


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Capture]:
    """One live session through mitmdump in front of the emulator, written by mitmdump."""
    folder = tmp_path_factory.mktemp("capture")
    confdir = folder / "confdir"
    flows, har = folder / "session.mitm", folder / "session.har"
    hello = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    with (
        serving(hello),
        running_proxy("simulate", confdir=confdir) as emulator,
        mitmdump(
            f"--mode=upstream:{emulator.url}",
            "--set",
            f"confdir={confdir}",
            "--set",
            f"ssl_verify_upstream_trusted_ca={emulator.ca}",
            "-w",
            str(flows),
            "--set",
            f"hardump={har}",
        ) as url,
        client_through(url, emulator.ca) as client,
    ):
        answers = graph_session(client)
        other = client.get(f"http://127.0.0.1:{hello.server_address[1]}/hello")
    yield Capture(flows, har, answers, other.status_code)


@pytest.fixture(scope="module")
def confdir_for_replay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replay-confdir")


def replayed(cassette_path: Path, confdir: Path, *args: str) -> list[Answer]:
    with (
        running_proxy("replay", "--cassette", str(cassette_path), *args, confdir=confdir) as proxy,
        client_through(proxy.url, proxy.ca) as client,
    ):
        return graph_session(client)


def imported(kind: str, source: Path, output: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = run_cli("import", kind, str(source), "-o", str(output), *args)
    assert done.returncode == 0, done.stderr
    return done


def test_the_live_session_is_what_the_emulator_answers(capture: Capture) -> None:
    statuses = [status for status, _, _ in capture.answers]
    assert statuses == [201, 200, 412, 204, 200, 200, 202, 400, 204, 404]
    assert capture.other_status == 200
    assert capture.flows.stat().st_size > 0 and capture.har.stat().st_size > 0


@pytest.mark.parametrize("kind", ["flows", "har"])
def test_a_file_mitmdump_wrote_becomes_a_cassette_that_replays_the_session(
    capture: Capture, confdir_for_replay: Path, tmp_path: Path, kind: str
) -> None:
    source = capture.flows if kind == "flows" else capture.har
    output = tmp_path / "session.yaml"
    done = imported(kind, source, output, "--redact-field", "emailAddress")

    assert done.stdout.startswith(f"{output}: 10 interactions imported from {source}")
    assert "1 not on our routes" in done.stdout  # the local server's GET
    # The recorder's validation line, prefixed with where in the file the exchange was:
    assert re.search(
        r": (flow|entry) \d+: PUT /beta/me/onlineMeetings/invalid-meeting/virtualAppointment: "
        r"\$\.settings\.allowClientToJoinUsingBrowser: expected a valid boolean, got 7 \(request\)",
        done.stderr,
    ), done.stderr
    stored = output.read_bytes()
    assert TOKEN.encode() not in stored and b"gradya@contoso.com" not in stored
    assert b"<redacted:authorization:1>" in stored and b"<redacted:emailAddress:1>" in stored
    assert len(cassette.load(output)) == 10

    # The client sends the real address; the redacted request still matches, and the
    # answers are the live ones with the address as stored.
    assert replayed(output, confdir_for_replay) == with_email_redacted(capture.answers)


def with_email_redacted(answers: list[Answer]) -> list[Answer]:
    def redacted(body: Any) -> Any:
        if isinstance(body, bytes):
            return body
        text = json.dumps(body).replace("gradya@contoso.com", "<redacted:emailAddress:1>")
        return json.loads(text)

    return [(status, redacted(body), etag) for status, body, etag in answers]


def test_cassette_to_har_and_back_answers_the_same(
    capture: Capture, confdir_for_replay: Path, tmp_path: Path
) -> None:
    original = tmp_path / "original.yaml"
    imported("flows", capture.flows, original)
    har = tmp_path / "exported.har"
    exported = run_cli("export", "har", str(original), "-o", str(har))
    assert exported.returncode == 0, exported.stderr
    document = json.loads(har.read_text())
    assert document["log"]["version"] == "1.2"
    assert len(document["log"]["entries"]) == 10

    back = tmp_path / "back.yaml"
    imported("har", har, back)
    assert replayed(back, confdir_for_replay) == capture.answers
    before = [(i.request.method, i.request.uri, i.request.body) for i in cassette.load(original)]
    after = [(i.request.method, i.request.uri, i.request.body) for i in cassette.load(back)]
    assert after == before


def test_cassette_to_dev_proxy_mocks_and_back_answers_the_same(
    capture: Capture, confdir_for_replay: Path, tmp_path: Path
) -> None:
    original = tmp_path / "original.yaml"
    imported("flows", capture.flows, original)
    mocks = tmp_path / "mocks.json"
    exported = run_cli("export", "devproxy", str(original), "-o", str(mocks))
    assert exported.returncode == 0, exported.stderr
    document = json.loads(mocks.read_text())
    # The three GETs of the URL are its 2nd, 5th and 7th requests (PUT, PATCH, PATCH and
    # DELETE count too, as Dev Proxy counts); after them, the last answer for ever.
    gets = [
        m
        for m in document["mocks"]
        if m["request"]["method"] == "GET" and m["request"]["url"] == URL
    ]
    assert [m["request"].get("nth") for m in gets] == [2, 5, 7, None]
    assert [m["response"]["statusCode"] for m in gets] == [200, 200, 404, 404]

    back = tmp_path / "back.yaml"
    imported("devproxy", mocks, back)
    # Dev Proxy keeps no request bodies: a cassette made from mocks matches without them.
    assert replayed(back, confdir_for_replay, "--ignore-body") == capture.answers
