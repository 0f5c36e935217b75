"""Nothing leaves a sealed proxy: every spelling of our calls, end to end, with the upstream
connection attempts counted on mitmproxy's ``server_connect`` hook (``upstream_counter.py``).

Each row is sent by a real client (httpx, curl, with the generated CA) through a real proxy
in replay and in simulate, where our operations never go upstream; raw sockets only for
what no client sends (non-HTTP bytes in a ``CONNECT`` tunnel). The counter refuses every
attempt that is not to loopback, so nothing here reaches the internet whatever the proxy
does; the tests hold the attempts nothing of ours had refused to zero.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import httpx_client
from helpers import assert_one_line_error, documented_graph, run_cli, serving
from test_routes import METHODS, SPELLED, _spelled_url
from upstream_counter import Counted, attempts, start_counted

from proxy_addons.cassette import examples
from proxy_addons.cli.launcher import RunningProxy
from proxy_addons.graph.routes import GRAPH_HOSTS

pytestmark = pytest.mark.e2e

MEETING = "MSpkYzE3Njc0Yy04MWQ5LTRhZGItYmZi"
BASE = f"https://graph.microsoft.com/v1.0/me/onlineMeetings/{MEETING}"
SMS_BODY = {"phoneNumbers": ["+15555550100"], "timeZone": "utc"}


@pytest.fixture(scope="module", params=["replay", "simulate"])
def sealed(request, confdir: Path, tmp_path_factory) -> Iterator[Counted]:
    """Replay (with its default --on-miss error) and simulate, one proxy each per module."""
    with ExitStack() as stack:
        yield start_counted(stack, confdir, tmp_path_factory.mktemp("sealed"), request.param)


# --- clients ------------------------------------------------------------------------------


@dataclass
class Seen:
    status: int
    body: str

    def json(self) -> dict[str, object]:
        return json.loads(self.body)


def by_httpx(method: str, url: str, body: object = None) -> Callable[[RunningProxy], Seen]:
    def send(proxy: RunningProxy) -> Seen:
        with httpx_client(proxy) as client:
            answer = client.request(method, url, json=body)
        return Seen(answer.status_code, answer.text)

    return send


def by_curl(url: str, *options: str) -> Callable[[RunningProxy], Seen]:
    def send(proxy: RunningProxy) -> Seen:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        result = subprocess.run(
            [
                *("curl", "-sS", "--max-time", "20", "--proxy", proxy.url),
                *("--cacert", str(proxy.ca), "-w", "\n%{http_code}", *options, url),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        body, _, status = result.stdout.rpartition("\n")
        assert status.isdigit(), result.stderr
        return Seen(int(status), body)

    return send


def raw_tcp(authority: str, *, tls: bool = False) -> Callable[[RunningProxy], bytes]:
    """Non-HTTP bytes (an SSH greeting) in a CONNECT tunnel, in the clear or (``tls``) inside
    TLS with the proxy's certificate; what came back before the proxy closed the connection
    (b"" for nothing)."""

    def send(proxy: RunningProxy) -> bytes:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=15) as sock:
            sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                assert chunk, head
                head += chunk
            assert head.startswith(b"HTTP/1.1 200"), head
            channel: socket.socket = sock
            if tls:
                context = ssl.create_default_context(cafile=str(proxy.ca))
                channel = context.wrap_socket(sock, server_hostname=authority.split(":")[0])
            channel.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
            try:
                return channel.recv(4096)
            except (ConnectionResetError, ssl.SSLEOFError):
                return b""

    return send


# --- every spelling of our calls ----------------------------------------------------------


ODATA_KEY = f"https://graph.microsoft.com/v1.0/me/onlineMeetings('{MEETING}')/virtualAppointment"
QUALIFIED_ACTION = f"{BASE}/microsoft.graph.sendVirtualAppointmentSms"
QUALIFIED_FUNCTION = f"{BASE}/microsoft.graph.getVirtualAppointmentJoinWebUrl()"
QUALIFIED_FUNCTION_BARE = f"{BASE}/microsoft.graph.getVirtualAppointmentJoinWebUrl"
DOT_SEGMENT = f"{BASE}/./virtualAppointment"
OURS = f"{BASE}/virtualAppointment"
BATCHED = "/me/onlineMeetings/m/virtualAppointment"  # relative to the version, as a batch says

HTTP_ROWS = [
    # Spellings of our calls that routes.parse reads as the plain ones.
    pytest.param(
        by_httpx("GET", ODATA_KEY),
        id="odata-key",
    ),
    pytest.param(
        by_httpx("POST", QUALIFIED_ACTION, SMS_BODY),
        id="namespace-qualified-action",
    ),
    pytest.param(
        by_httpx("GET", QUALIFIED_FUNCTION),
        id="namespace-qualified-function",
    ),
    pytest.param(
        by_httpx("GET", QUALIFIED_FUNCTION_BARE),
        id="namespace-qualified-function-without-parentheses",
    ),
    pytest.param(
        by_curl(DOT_SEGMENT, "--path-as-is"),
        id="dot-segment",
    ),
    # Where the request really goes, decided by the gate.
    pytest.param(by_curl(OURS, "-H", "Host: example.org"), id="connect-graph-host-example-org"),
    pytest.param(
        by_httpx("PUT", examples.ME_URL.replace(".com/", ".com./"), {"x": 1}),
        id="trailing-dot-fqdn",
    ),
    pytest.param(
        by_httpx(
            "POST",
            "https://graph.microsoft.com/v1.0/$batch",
            {
                "requests": [
                    {"id": "7", "method": "PUT", "url": "/me/onlineMeetings/m/virtualAppointment"}
                ]
            },
        ),
        id="batch-holding-ours",
    ),
    pytest.param(
        by_httpx(
            "POST",
            "https://graph.microsoft.com/beta/$batch",
            {
                "requests": [
                    {"id": "a", "method": "PUT", "url": f"{BASE}/virtualAppointment"},
                    {"id": "b", "method": "GET", "url": BATCHED, "depends_on": ["a"]},
                    {"id": "c", "method": "GET", "url": BATCHED.lstrip("/"), "dependsOn": ["b"]},
                ]
            },
        ),
        id="batch-as-msgraph-core-sends-it-absolute-url-and-depends-on",
    ),
]


@pytest.mark.parametrize("send", HTTP_ROWS)
def test_no_spelling_of_our_calls_opens_an_upstream_connection(sealed: Counted, send):
    before = len(sealed.leaving())
    seen = send(sealed.proxy)
    assert sealed.leaving()[before:] == []
    assert "error" in seen.json() or seen.status < 300  # answered by us, in Graph's JSON


@pytest.mark.parametrize(
    ("options", "named"),
    [
        # CONNECT graph.microsoft.com:443, then "Host: example.org" inside the tunnel
        (("-H", "Host: example.org"), "example.org"),
        # CONNECT example.org:443, then TLS for graph.microsoft.com and its Host header
        (("--connect-to", "graph.microsoft.com:443:example.org:443"), "graph.microsoft.com"),
    ],
    ids=["connect-graph-host-example-org", "connect-example-org-sni-graph"],
)
def test_a_name_that_disagrees_with_the_tunnel_is_graphs_400(sealed, options, named):
    before = len(sealed.leaving())
    seen = by_curl(OURS, *options)(sealed.proxy)
    assert seen.status == 400
    error = seen.json()["error"]
    assert error["code"] == "BadRequest" and f"names the host '{named}'" in error["message"]
    assert sealed.leaving()[before:] == []


def test_a_request_naming_graph_sent_to_another_host_is_graphs_400(sealed):
    """``Host: graph.microsoft.com`` on a plain request for another host (an address of
    Graph's front door, say): refused, never sent there."""
    before = len(sealed.leaving())
    url = OURS.replace("https://graph.microsoft.com", "http://example.org")
    seen = by_curl(url, "-H", "Host: graph.microsoft.com")(sealed.proxy)
    assert seen.status == 400
    assert "names the host 'graph.microsoft.com'" in seen.json()["error"]["message"]
    assert sealed.leaving()[before:] == []


def test_the_trailing_dot_fqdn_plays_the_recording_of_the_plain_host(counted):
    replay = counted("replay")
    headers = examples.REQUEST_HEADERS
    url = examples.ME_URL.replace("graph.microsoft.com/", "graph.microsoft.com./")
    with httpx_client(replay.proxy) as client:
        answer = client.put(url, content=examples.REQUEST_BODY, headers=headers)
    assert answer.status_code == 201, answer.text
    assert replay.leaving() == []


@pytest.mark.parametrize("mode", ["replay", "simulate"])
def test_a_mixed_batch_is_served_here_and_its_other_request_blocked_inside_it(counted, mode):
    """Ours answered by the mode, the other by the network policy, in one 200: nothing of
    the batch leaves."""
    batch = {
        "requests": [
            {"id": "1", "method": "GET", "url": "/me"},
            {"id": "7", "method": "GET", "url": "me/onlineMeetings/m/virtualAppointment"},
        ]
    }
    blocked = counted(mode, "--block-network")
    seen = by_httpx("POST", "https://graph.microsoft.com/beta/$batch", batch)(blocked.proxy)
    assert seen.status == 200
    answers = {r["id"]: r for r in seen.json()["responses"]}
    assert answers["1"]["status"] == 403
    assert answers["1"]["body"]["error"]["code"] == "BlockedByNetworkPolicy"
    assert answers["7"]["status"] in (401, 501)  # the emulator wants a token; replay: a miss
    assert blocked.leaving() == []


@pytest.mark.parametrize("tls", [False, True], ids=["clear", "inside-tls"])
def test_raw_tcp_in_a_tunnel_to_a_graph_host_is_closed_not_relayed(sealed: Counted, tls):
    before = len(sealed.leaving())
    assert raw_tcp("graph.microsoft.com:443", tls=tls)(sealed.proxy) == b""
    assert sealed.leaving()[before:] == []


# --- the network policy -------------------------------------------------------------------


@pytest.fixture
def loopback_site() -> Iterator[str]:
    """A plain-HTTP site on 127.0.0.1 answering every GET with 200 "hello"."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args: object) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/"


def test_by_default_traffic_that_is_not_ours_passes_untouched(counted):
    replay = counted("replay")
    by_httpx("GET", "http://example.org/")(replay.proxy)
    assert [(a["host"], a["port"]) for a in replay.leaving()] == [("example.org", 80)]


def banner(proxy: RunningProxy, lines: int = 3) -> list[str]:
    """The first ``lines`` lines the proxy printed (the launcher returns after two)."""
    deadline = time.monotonic() + 15
    while len(proxy.stdout) < lines and time.monotonic() < deadline:
        time.sleep(0.02)
    return list(proxy.stdout)[:lines]


def test_the_banner_states_the_policy_after_the_ca_line(counted):
    default = banner(counted("replay").proxy)
    blocked = banner(counted("simulate", "--block-network", "--allow-host", "Example.ORG").proxy)
    assert default[2] == "network: other traffic passes untouched\n"
    assert blocked[1].startswith("CA certificate: ")
    assert blocked[2] == "network: blocked except loopback, example.org\n"


@pytest.mark.parametrize("url", ["http://example.org/x", "https://example.org/x"])
def test_blocked_other_hosts_get_a_502_naming_the_policy_and_the_host(counted, url):
    replay = counted("replay", "--block-network")
    seen = by_httpx("GET", url)(replay.proxy)
    assert seen.status == 502
    assert "network policy blocks example.org" in seen.body and "--allow-host" in seen.body
    assert replay.leaving() == []


def test_blocked_graph_traffic_gets_graphs_403_naming_the_policy(counted):
    replay = counted("replay", "--block-network")
    seen = by_httpx("GET", "https://graph.microsoft.com/v1.0/me")(replay.proxy)
    assert seen.status == 403
    error = seen.json()["error"]
    assert error["code"] == "BlockedByNetworkPolicy" and "network policy" in error["message"]
    assert replay.leaving() == []


def test_our_calls_are_still_replayed_when_the_network_is_blocked(counted):
    replay = counted("replay", "--block-network")
    with httpx_client(replay.proxy) as client:
        answer = client.put(
            examples.ME_URL, content=examples.REQUEST_BODY, headers=examples.REQUEST_HEADERS
        )
    assert answer.status_code == 201
    assert replay.leaving() == []


def test_loopback_is_always_allowed(counted, loopback_site):
    simulate = counted("simulate", "--block-network")
    seen = by_httpx("GET", loopback_site)(simulate.proxy)
    assert (seen.status, seen.body) == (200, "hello")


def test_an_allowed_host_is_let_through(counted):
    replay = counted("replay", "--block-network", "--allow-host", "example.org")
    by_httpx("GET", "http://example.org/")(replay.proxy)
    by_httpx("GET", "http://example.net/")(replay.proxy)
    assert [a["host"] for a in replay.leaving()] == ["example.org"]


def test_blocked_raw_tcp_is_closed_without_a_connection(counted):
    replay = counted("replay", "--block-network")
    assert raw_tcp("example.org:22")(replay.proxy) == b""
    assert replay.leaving() == []
    assert [a["refused"] for a in attempts(replay.path)] == [
        "graph-vcr-proxy's network policy blocks example.org (--block-network; let it through "
        "with --allow-host example.org)"
    ]


def test_record_forwards_ours_to_a_loopback_upstream_when_blocked(counted, tmp_path):
    with documented_graph() as upstream:
        record = counted(
            "record",
            "--block-network",
            "--cassette",
            str(tmp_path / "c.yaml"),
            "--upstream",
            upstream,
        )
        with httpx_client(record.proxy) as client:
            answer = client.put(
                examples.ME_URL, content=examples.REQUEST_BODY, headers=examples.REQUEST_HEADERS
            )
    assert answer.status_code == 201
    assert record.leaving() == []


def test_record_does_not_forward_ours_to_a_blocked_graph(counted, tmp_path):
    record = counted("record", "--block-network", "--cassette", str(tmp_path / "c.yaml"))
    with httpx_client(record.proxy) as client:
        answer = client.put(
            examples.ME_URL, content=examples.REQUEST_BODY, headers=examples.REQUEST_HEADERS
        )
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "BlockedByNetworkPolicy"
    assert record.leaving() == []


@pytest.mark.parametrize(
    ("args", "starts"),
    [
        (
            ["--allow-host", "example.org"],
            "graph-vcr-proxy: --allow-host: only with --block-network",
        ),
        (["--block-network", "--allow-host", "http://x/"], "graph-vcr-proxy: --allow-host takes"),
    ],
)
def test_a_bad_policy_is_a_one_line_error(confdir, args, starts):
    assert_one_line_error(run_cli("replay", *args, confdir=confdir), starts)


# --- the pytest plugin's proxy: the gate stands first there too -----------------------------


def test_each_session_of_the_plugins_proxy_sets_its_own_network_policy(confdir):
    from proxy_addons.testing.session_client import SessionProxy
    from proxy_addons.testing.vcr_settings import Plan

    session = SessionProxy(confdir, root=confdir)
    try:

        def blocked(args: tuple[str, ...], url: str) -> int:
            running = session.switch(Plan("replay", args))
            with httpx_client(running) as client:
                return client.get(url).status_code

        allowing = ("--block-network", "--allow-host", "example.net")
        assert blocked(allowing, "http://example.org/") == 502
        assert blocked(("--block-network",), "http://example.net/") == 502  # allowed no more
        batch = {"requests": [{"id": "1", "method": "GET", "url": BATCHED}]}
        running = session.switch(Plan("simulate", ()))
        with httpx_client(running) as client:
            answer = client.post("https://graph.microsoft.com/v1.0/$batch", json=batch)
        assert answer.status_code == 200  # served by the session's batching, in simulate
        assert answer.json()["responses"][0]["status"] == 401  # the emulator wants a token
    finally:
        session.stop()


# --- the whole table of spellings, through curl ---------------------------------------------

CLOUDS = sorted(GRAPH_HOSTS)


def spelled_requests() -> list[tuple[str, str]]:
    """Every spelling of the routes table (test_routes.SPELLED), once, each on one of the four
    clouds and one of the two versions in turn: (method, url), blanks sent as ``%20`` as a
    client sends them."""
    return [
        (
            METHODS[operation],
            _spelled_url(spelling, CLOUDS[i % 4], ("v1.0", "beta")[i % 2]).replace(" ", "%20"),
        )
        for i, (spelling, operation, _plain) in enumerate(SPELLED)
    ]


def curl_each(proxy: RunningProxy, requests: list[tuple[str, str]]) -> list[int]:
    """One curl process sending each request as written (``--path-as-is``: no dot segment
    removed by the client), with a JSON body for the writes; the statuses, in order."""
    argv = ["curl", "-sS", "--max-time", "20"]
    for i, (method, url) in enumerate(requests):
        if i:
            argv.append("--next")
        argv += ["--proxy", proxy.url, "--cacert", str(proxy.ca), "--path-as-is", "-X", method]
        argv += ["-o", os.devnull, "-w", "%{http_code}\\n"]
        if method in ("PUT", "PATCH", "POST"):
            argv += ["-H", "Content-Type: application/json", "--data", json.dumps(SMS_BODY)]
        argv.append(url)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL
    )
    return [int(line) for line in result.stdout.split()]


def test_every_spelling_in_the_routes_table_is_answered_here_and_none_leaves(sealed: Counted):
    """Each spelling recognised by the parser (test_routes.py) is also what the running proxy
    answers itself: not one upstream connection attempt, whatever the cloud or version."""
    requests = spelled_requests()
    before = len(sealed.leaving())
    statuses = curl_each(sealed.proxy, requests)
    assert len(statuses) == len(requests) and 0 not in statuses  # each one answered
    assert sealed.leaving()[before:] == []
    assert 502 not in statuses  # nothing went looking for an upstream either


@pytest.mark.parametrize("mode", ["replay", "simulate"])
def test_the_plugins_proxy_answers_every_spelling_as_ours_and_blocks_none(confdir, mode):
    """The pytest plugin's child (the network blocked, as the plugin runs it): every spelling
    is journalled as one of our calls, answered by the mode, never by the network policy."""
    from proxy_addons.testing.session_client import SessionProxy
    from proxy_addons.testing.vcr_settings import Plan

    session = SessionProxy(confdir, root=Path(examples.__file__).resolve().parent.parent)
    try:
        running = session.switch(Plan(mode, ("--block-network",)))
        requests = spelled_requests()
        statuses = curl_each(running, requests)
        calls = session.calls()
    finally:
        session.stop()
    assert len(statuses) == len(requests) and 0 not in statuses
    assert [c.operation is not None for c in calls] == [True] * len(requests)
    assert {c.answered_by.value for c in calls} == {"miss" if mode == "replay" else "emulator"}
