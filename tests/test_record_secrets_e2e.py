"""What a recorder writes, attacked through a real proxy: an upstream that echoes the caller's
token in every place a careless server can, and bodies our own JSON code can't process.

The upstream is a tiny ``http.server`` on 127.0.0.1; the client is httpx over HTTPS through a
real ``graph-vcr-proxy record``. The cassette file is then searched byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest
from helpers import serving
from vcr.cassette import Cassette

from proxy_addons.cassette import cassette

pytestmark = pytest.mark.e2e

# An opaque token: its '+', '/' and '=' are spelled differently when percent-encoded.
TOKEN = "EwB4A8l6+BAAU/6XyzSecretTok3n=="
COOKIE_SECRET = "cookie-secret-73c1f"
BASE = "https://graph.microsoft.com/beta/me/onlineMeetings"
DEEP = 2000


def url(meeting: str) -> str:
    return f"{BASE}/{meeting}/virtualAppointment"


class EchoingHandler(BaseHTTPRequestHandler):
    """Echoes the caller's bearer token in a response header of every kind and in the body;
    ``deep`` answers JSON nested ``DEEP`` levels; a PUT echoes its body back as created."""

    protocol_version = "HTTP/1.1"
    calls: list[str]

    def log_message(self, *args: object) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.calls.append(f"{self.command} {self.path}")
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if "/deep/" in self.path:
            inner = json.dumps({"id": "deep", "emailAddress": "g@c.com", "note": token})
            status, answer = 200, b"[" * DEEP + inner.encode() + b"]" * DEEP
        elif self.command == "PUT":
            status, answer = 201, body
        else:
            status = 401
            answer = json.dumps({"error": {"code": "InvalidAuthenticationToken", "message": token}})
            answer = answer.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("WWW-Authenticate", f'Bearer error="invalid_token", token="{token}"')
        self.send_header("X-Echo-Token", token)
        self.send_header("X-Echo-Query", self.path.partition("?")[2])
        self.send_header("Location", f"https://example.org/next?t={quote(token, safe='')}")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_PUT = _handle


@pytest.fixture
def echoing() -> Iterator[tuple[str, list[str]]]:
    calls: list[str] = []
    handler = type("Handler", (EchoingHandler,), {"calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    with serving(server):
        yield f"http://127.0.0.1:{server.server_address[1]}", calls


def assert_token_nowhere(data: bytes) -> None:
    for spelled in {TOKEN, quote(TOKEN, safe=""), quote(TOKEN), "XyzSecretTok3n", COOKIE_SECRET}:
        assert spelled.encode() not in data, f"{spelled} reached the cassette"
        assert spelled.lower().encode() not in data.lower(), f"{spelled} reached the cassette"


def test_a_token_echoed_in_every_header_query_and_body_never_reaches_the_cassette_and_replays(
    tmp_path, echoing, start_proxy, client_for
):
    upstream, _ = echoing
    path = tmp_path / "echoed.yaml"
    recorder = start_proxy("record", "--cassette", str(path), "--upstream", upstream)
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "X-Second-Copy": TOKEN,
        "Cookie": f"session={COOKIE_SECRET}",
    }
    target = f"{url('m1')}?$select=id&hint={quote(TOKEN, safe='')}"
    recorded = client_for(recorder).get(target, headers=headers)
    assert recorded.status_code == 401
    assert recorded.headers["X-Echo-Token"] == TOKEN  # the client got what upstream said
    assert recorder.stop() == 0

    data = path.read_bytes()
    assert_token_nowhere(data)
    assert b"<redacted:authorization:" in data
    assert len(Cassette.load(path=str(path), record_mode="none").requests) == 1  # vcrpy loads

    replayer = start_proxy("replay", "--cassette", str(path))
    replayed = client_for(replayer).get(target, headers=headers)
    assert replayed.status_code == 401
    assert replayed.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_a_body_with_a_lone_surrogate_and_a_redacted_field_is_answered_and_recorded_once(
    tmp_path, echoing, start_proxy, client_for
):
    upstream, calls = echoing
    path = tmp_path / "surrogate.yaml"
    recorder = start_proxy(
        "record", "--cassette", str(path), "--upstream", upstream, "--redact-field", "emailAddress"
    )
    body = (
        b'{"externalAppointmentId": "\\ud83d", "appointmentClients": [{"emailAddress": "g@c.com"}]}'
    )
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    created = client_for(recorder).put(url("s1"), content=body, headers=headers)
    assert (created.status_code, created.content) == (201, body)  # upstream's answer, as it was
    assert recorder.stop() == 0
    assert len(calls) == 1

    (stored,) = cassette.load(path)
    assert stored.response["status"]["code"] == 201
    data = path.read_bytes()
    assert b"g@c.com" not in data
    assert_token_nowhere(data)
    stored_body = stored.response["body"]["string"]
    assert stored_body == body.replace(b'"g@c.com"', b'"<redacted:emailAddress:1>"')
    assert any("redacted in the text" in line or "on its text" in line for line in recorder.stderr)
    assert len(Cassette.load(path=str(path), record_mode="none").requests) == 1


def test_an_upstream_answer_nested_2000_deep_is_answered_and_recorded_byte_for_byte(
    tmp_path, echoing, start_proxy, client_for
):
    upstream, calls = echoing
    path = tmp_path / "deep.yaml"
    recorder = start_proxy(
        "record", "--cassette", str(path), "--upstream", upstream, "--redact-field", "emailAddress"
    )
    answered = client_for(recorder).get(url("deep"), headers={"Authorization": f"Bearer {TOKEN}"})
    assert answered.status_code == 200
    assert answered.content.count(b"[") == DEEP
    assert recorder.stop() == 0
    assert len(calls) == 1

    (stored,) = cassette.load(path)
    redacted = answered.content.replace(b'"g@c.com"', b'"<redacted:emailAddress:1>"')
    assert stored.response["body"]["string"] == redacted.replace(
        TOKEN.encode(), b"<redacted:authorization:1>"
    )
    assert_token_nowhere(path.read_bytes())
