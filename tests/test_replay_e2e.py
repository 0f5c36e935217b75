"""A real ``graph-vcr-proxy replay`` on 127.0.0.1, driven by real clients over HTTPS.

Nothing here leaves the machine. Where a test needs a request to go upstream (traffic that is
not ours, ``--on-miss forward``), the client asks the proxy for ``http://graph.microsoft.com``
itself, and the proxy runs with the test's upstream counter (``upstream_counter.py``), whose
``hosts`` mapping lands its connections to graph.microsoft.com on a local HTTP server: the
proxy decides from the host a request really goes to, as a hosts file would fool it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import requests
from helpers import documented_graph, serving

from proxy_addons.cassette import cassette, examples
from proxy_addons.cli.launcher import RunningProxy

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
ME, USERS = examples.ME_URL, examples.USERS_URL
DOCUMENTED = json.loads(examples.RESPONSE_BODY)
HEADERS = {**examples.REQUEST_HEADERS, "Authorization": "Bearer test-token"}
BUNDLED_ME = cassette.bundled_cassettes() / "create-virtualappointment-me.yaml"
ME_PATH = ME.removeprefix("https://graph.microsoft.com")


# --- a local upstream ---------------------------------------------------------------------


@dataclass
class Upstream:
    """A plain-HTTP server on 127.0.0.1 that records what reached it and answers 299."""

    port: int
    received: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.received.append((self.command, self.path, dict(self.headers.items()), body))
            payload = b'{"from": "upstream"}'
            self.send_response(299, "Upstream")
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Upstream", "yes")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _any

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = Upstream(server.server_address[1])
    with serving(server):
        yield state


def via_proxy(
    proxy: RunningProxy,
    method: str,
    url: str,
    *,
    host: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One plain-HTTP request through the proxy, optionally with a Host that differs."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        all_headers = {**({"Host": host} if host else {}), **(headers or {})}
        conn.request(method, url, body=body, headers=all_headers)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


# --- the documented call through every client ---------------------------------------------


def test_httpx_gets_the_documented_201_with_fresh_graph_headers(start_proxy, client_for):
    proxy = start_proxy("replay", "--allow-playback-repeats")  # one recorded create, twice
    client = client_for(proxy)
    first = client.put(
        ME, content=examples.REQUEST_BODY, headers={**HEADERS, "client-request-id": "c-7"}
    )
    second = client.put(ME, content=examples.REQUEST_BODY, headers=HEADERS)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json() == second.json() == DOCUMENTED
    assert first.headers["request-id"] != second.headers["request-id"]
    assert first.headers["client-request-id"] == "c-7"
    assert "client-request-id" not in second.headers
    assert first.headers["date"].endswith("GMT")
    assert first.headers["content-type"] == "application/json"


def test_requests_gets_the_documented_201_on_the_users_path(start_proxy):
    proxy = start_proxy("replay")
    with requests.Session() as session:
        session.trust_env = False
        response = session.put(
            USERS,
            data=examples.REQUEST_BODY.encode(),
            headers=HEADERS,
            proxies={"https": proxy.url},
            verify=str(proxy.ca),
            timeout=30,
        )
    assert response.status_code == 201
    assert response.json() == DOCUMENTED


def test_curl_sends_the_seed_request_and_gets_201_and_the_documented_body(start_proxy):
    proxy = start_proxy("replay")
    result = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--proxy",
            proxy.url,
            "--cacert",
            str(proxy.ca),
            "--request",
            "PUT",
            ME,
            "--header",
            "Content-Type: application/json",
            "--header",
            f"ETag: {examples.REQUEST_HEADERS['ETag']}",
            "--data-binary",
            "@-",
            "--write-out",
            "\n%{http_code}",
        ],
        input=examples.REQUEST_BODY,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "201"
    assert json.loads(body) == DOCUMENTED


def test_msgraph_core_pipeline_gets_201_and_its_client_request_id_echoed(start_proxy):
    from msgraph_core import GraphClientFactory

    proxy = start_proxy("replay")

    async def create() -> httpx.Response:
        client = httpx.AsyncClient(
            proxy=proxy.url, verify=ssl.create_default_context(cafile=str(proxy.ca)), timeout=30
        )
        async with GraphClientFactory.create_with_default_middleware(client=client) as graph:
            return await graph.put(
                ME,
                content=examples.REQUEST_BODY,
                headers={"Content-Type": "application/json"},
                extensions={"kiota_request_options": {}},  # what Kiota's adapter adds
            )

    response = asyncio.run(create())
    assert response.status_code == 201
    assert response.json() == DOCUMENTED
    sent_id = response.request.headers["client-request-id"]  # set by msgraph-core's telemetry
    assert response.headers["client-request-id"] == sent_id


def test_body_key_order_whitespace_and_url_spelling_do_not_matter(start_proxy, client_for):
    proxy = start_proxy("replay")
    reordered = dict(reversed(list(json.loads(examples.REQUEST_BODY).items())))
    url = ME.replace("/me/onlineMeetings/", "/ME/OnlineMeetings/") + "/"
    response = client_for(proxy).put(
        url, content=json.dumps(reordered, separators=(",", ":")), headers=HEADERS
    )
    assert response.status_code == 201


def test_ignore_body_answers_whatever_body_is_sent(start_proxy, client_for):
    proxy = start_proxy("replay", "--ignore-body")
    response = client_for(proxy).put(ME, json={"externalAppointmentId": "other"})
    assert response.status_code == 201
    assert response.json() == DOCUMENTED


def numbered_creates(tmp_path: Path, count: int) -> Path:
    """``count`` recordings of the documented create, answered {"n": 0}, {"n": 1}, ..."""
    pairs = []
    for n in range(count):
        request, response = examples.documented_interaction(ME)
        response["body"]["string"] = json.dumps({"n": n})
        pairs.append((request, response))
    path = tmp_path / "numbered.yaml"
    path.write_text(cassette.cassette_text(pairs), encoding="utf-8")
    return path


PLAYED_OUT = (
    f"No recorded answer is left for PUT {ME}: all 1 recorded answers to this request were "
    "already played; allow repeats with --allow-playback-repeats "
    "(allow_playback_repeats=True in the marker)."
)


def test_a_recorded_create_answers_once_and_a_surplus_put_is_a_miss_saying_why(
    start_proxy, client_for
):
    proxy = start_proxy("replay", "--cassette", str(BUNDLED_ME))
    client = client_for(proxy)
    sent = [client.put(ME, content=examples.REQUEST_BODY, headers=HEADERS) for _ in range(3)]
    assert [r.status_code for r in sent] == [201, 501, 501]
    assert sent[0].json() == DOCUMENTED
    for surplus in sent[1:]:
        assert surplus.json()["error"]["code"] == "CassetteMiss"
        assert surplus.json()["error"]["message"] == PLAYED_OUT


def test_allow_playback_repeats_answers_the_same_put_again(start_proxy, client_for):
    proxy = start_proxy("replay", "--cassette", str(BUNDLED_ME), "--allow-playback-repeats")
    client = client_for(proxy)
    sent = [client.put(ME, content=examples.REQUEST_BODY, headers=HEADERS) for _ in range(3)]
    assert [r.status_code for r in sent] == [201, 201, 201]


def test_identical_recorded_requests_answer_in_recorded_order_then_miss(
    start_proxy, client_for, tmp_path
):
    proxy = start_proxy("replay", "--cassette", str(numbered_creates(tmp_path, 2)))
    client = client_for(proxy)
    sent = [client.put(ME, content=examples.REQUEST_BODY, headers=HEADERS) for _ in range(3)]
    assert [r.json().get("n") for r in sent[:2]] == [0, 1]
    assert sent[2].status_code == 501
    assert "all 2 recorded answers to this request were already played" in sent[2].text


def test_record_new_episodes_replays_the_recorded_create_then_records_the_surplus(
    start_proxy, client_for, tmp_path
):
    path = tmp_path / "episodes.yaml"
    shutil.copy(BUNDLED_ME, path)
    with documented_graph() as upstream:
        proxy = start_proxy(
            "record",
            "--cassette",
            str(path),
            "--record-mode",
            "new_episodes",
            "--upstream",
            upstream,
        )
        client = client_for(proxy)
        sent = [client.put(ME, content=examples.REQUEST_BODY, headers=HEADERS) for _ in range(2)]
        assert [r.status_code for r in sent] == [201, 201]
        assert proxy.stop() == 0
    assert len(cassette.load(path)) == 2  # the recorded create, then the surplus one


def test_record_mode_none_answers_a_surplus_request_with_the_miss(start_proxy, client_for):
    proxy = start_proxy("record", "--cassette", str(BUNDLED_ME), "--record-mode", "none")
    client = client_for(proxy)
    sent = [client.put(ME, content=examples.REQUEST_BODY, headers=HEADERS) for _ in range(2)]
    assert [r.status_code for r in sent] == [201, 501]
    assert sent[1].json()["error"]["message"] == PLAYED_OUT


def test_with_repeats_the_last_of_several_answers_repeats(start_proxy, client_for, tmp_path):
    path = numbered_creates(tmp_path, 2)
    proxy = start_proxy("replay", "--cassette", str(path), "--allow-playback-repeats")
    client = client_for(proxy)
    answers = [
        client.put(ME, content=examples.REQUEST_BODY, headers=HEADERS).json()["n"] for _ in range(4)
    ]
    assert answers == [0, 1, 1, 1]


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b'{"settings": {', "application/json", 400, "BadRequest"),
        (b'{"displayName": "\xff\xfe"}', "application/json", 400, "BadRequest"),
        (b"{" + b" " * (10 * 1024 * 1024) + b"}", "application/json", 413, "RequestEntityTooLarge"),
        (examples.REQUEST_BODY.encode(), "text/plain", 415, "UnsupportedMediaType"),
    ],
)
def test_malformed_requests_get_graph_4xx_and_the_proxy_keeps_serving(
    start_proxy, client_for, body, content_type, status, code
):
    proxy = start_proxy("replay")
    client = client_for(proxy)
    bad = client.put(ME, content=body, headers={"Content-Type": content_type})
    assert bad.status_code == status
    assert bad.json()["error"]["code"] == code
    assert bad.headers["request-id"] == bad.json()["error"]["innerError"]["request-id"]
    good = client.put(ME, content=examples.REQUEST_BODY, headers=HEADERS)
    assert good.status_code == 201


def as_graph(upstream: Upstream) -> dict[str, int]:
    """The upstream counter's hosts mapping: graph.microsoft.com lands on ``upstream``."""
    return {"graph.microsoft.com": upstream.port}


def test_a_miss_is_501_cassette_miss_and_nothing_goes_upstream(counted, upstream):
    replay = counted("replay", hosts=as_graph(upstream))
    proxy = replay.proxy
    status, headers, body = via_proxy(
        proxy, "GET", f"http://graph.microsoft.com{ME_PATH}?$select=id"
    )
    assert status == 501
    error = json.loads(body)["error"]
    assert error["code"] == "CassetteMiss"
    assert "closest recorded request is PUT" in error["message"]
    assert "method (PUT recorded, GET sent)" in error["message"]
    assert "query (no query recorded, ?$select=id sent)" in error["message"]
    assert headers["request-id"]
    assert upstream.received == [] and replay.leaving() == []


def test_on_miss_forward_sends_the_request_upstream_untouched(counted, upstream):
    proxy = counted("replay", "--on-miss", "forward", hosts=as_graph(upstream)).proxy
    body = b'{"externalAppointmentId": "not recorded"}'
    status, headers, answer = via_proxy(
        proxy,
        "PUT",
        f"http://graph.microsoft.com{ME_PATH}",
        body=body,
        headers={"Content-Type": "application/json"},
    )
    assert (status, headers["X-Upstream"], answer) == (299, "yes", b'{"from": "upstream"}')
    ((method, path, sent_headers, sent_body),) = upstream.received
    assert (method, path, sent_body) == ("PUT", ME_PATH, body)
    assert sent_headers["Host"] == "graph.microsoft.com"


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("127.0.0.1", "/anything?b=2&a=1"),
        ("graph.microsoft.com", "/v1.0/me/messages?$top=1"),
        ("graph.microsoft.com", "/beta/me/onlineMeetings/x/attendanceReports"),
    ],
)
def test_traffic_that_is_not_ours_reaches_upstream_untouched(counted, upstream, host, path):
    proxy = counted("replay", hosts=as_graph(upstream)).proxy
    body = b"\xff raw bytes, not JSON"
    headers = {"Content-Type": "application/octet-stream", "X-Custom": "kept"}
    url = upstream.url(path) if host == "127.0.0.1" else f"http://{host}{path}"
    status, answer_headers, answer = via_proxy(proxy, "POST", url, body=body, headers=headers)
    assert (status, answer) == (299, b'{"from": "upstream"}')
    assert "request-id" not in answer_headers
    ((method, got_path, got_headers, got_body),) = upstream.received
    assert (method, got_path, got_body) == ("POST", path, body)
    assert got_headers["X-Custom"] == "kept"
    assert proxy.stop() == 0
    assert not [line for line in proxy.stderr if path.split("?")[0] in line or "miss" in line]


# --- the addon in a user's own mitmdump -------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mitmdump exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"mitmdump did not listen on {port} within {timeout}s")


def test_the_documented_mitmdump_line_replays_the_bundled_cassettes(confdir, tmp_path):
    mitmdump = Path(sys.executable).parent / "mitmdump"
    port = free_port()
    process = subprocess.Popen(
        [
            str(mitmdump),
            "-s",
            "proxy_addons/replay.py",
            "--set",
            "graph_cassette=cassettes/",
            "--set",
            "connection_strategy=lazy",
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            str(port),
            "--set",
            f"confdir={confdir}",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        verify = str(confdir / "mitmproxy-ca-cert.pem")
        with httpx.Client(
            proxy=f"http://127.0.0.1:{port}", verify=_ssl_context(verify), timeout=30
        ) as client:
            response = client.put(ME, content=examples.REQUEST_BODY, headers=HEADERS)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)
    assert response.status_code == 201
    assert response.json() == DOCUMENTED


def _ssl_context(cafile: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


# --- validation, asked of replay ----------------------------------------------------------

INVALID = json.dumps({"settings": {"allowClientToJoinUsingBrowser": 3}})
INVALID_LINE = "$.settings.allowClientToJoinUsingBrowser: expected a valid boolean"


def test_replay_validate_enforce_refuses_an_invalid_request_with_graphs_400(
    start_proxy, client_for
):
    proxy = start_proxy("replay", "--validate", "enforce")
    client = client_for(proxy)
    bad = client.put(ME, content=INVALID, headers=HEADERS)
    good = client.put(ME, content=examples.REQUEST_BODY, headers=HEADERS)
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["code"] == "BadRequest" and INVALID_LINE in error["message"]
    assert good.status_code == 201  # notes only: the documented create is replayed


def test_replay_validate_warn_logs_the_problem_and_replay_still_decides(start_proxy):
    proxy = start_proxy("replay", "--validate", "warn")
    response = requests.put(
        ME,
        data=INVALID,
        headers=HEADERS,
        proxies={"https": proxy.url},
        verify=str(proxy.ca),
        timeout=30,
    )
    assert response.json()["error"]["code"] == "CassetteMiss"  # warned, not refused
    assert proxy.stop() == 0
    assert any(f"PUT {ME_PATH}: {INVALID_LINE}" in line for line in proxy.stderr)


def test_replay_validates_nothing_unless_asked(start_proxy, client_for):
    proxy = start_proxy("replay")
    answer = client_for(proxy).put(ME, content=INVALID, headers=HEADERS)
    assert answer.json()["error"]["code"] == "CassetteMiss"
    assert proxy.stop() == 0
    assert not [line for line in proxy.stderr if INVALID_LINE in line]
