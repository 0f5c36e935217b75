"""``--web``: a real graph-vcr-proxy inside mitmweb's master on 127.0.0.1, real HTTPS clients
through it, and the tags read back the way a developer sees them: through the web UI's own
JSON API (``/flows``) and, once, in a real headless Chromium.

The web UI's URL is read from the proxy's third start-up line and used exactly as printed
(with mitmproxy 12 it carries the access token).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from helpers import assert_one_line_error, run_cli, serving
from mitmproxy.utils.emoji import emoji

from proxy_addons.addons.web_tags import MARKERS, RECORDED_MARKER
from proxy_addons.cassette import examples
from proxy_addons.cli.launcher import RunningProxy
from proxy_addons.cli.web_ui import URL_LINE

pytestmark = pytest.mark.e2e

HEADERS = {**examples.REQUEST_HEADERS, "Authorization": "Bearer test-token"}
GRAPH = examples.GRAPH_BETA
StartProxy = Callable[..., RunningProxy]
ClientFor = Callable[[RunningProxy], httpx.Client]


class NotGraph(BaseHTTPRequestHandler):
    """A local server for traffic that is not ours: 204 to everything."""

    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def meeting_url(meeting: str, resource: str = "virtualAppointment") -> str:
    return f"{GRAPH}/me/onlineMeetings/{meeting}/{resource}"


def web_url(proxy: RunningProxy, timeout: float = 10) -> str:
    """The URL on the proxy's third start-up line (printed right after the two the launcher
    waits for; its reader thread may not have it yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in proxy.stdout:
            if line.startswith(URL_LINE):
                return line[len(URL_LINE) :].strip()
        time.sleep(0.05)
    raise AssertionError(f"no '{URL_LINE}' line in {proxy.stdout}")


def start_web(start_proxy: StartProxy, mode: str, *args: str) -> tuple[RunningProxy, str]:
    proxy = start_proxy(mode, "--web", "--web-port", "0", "--no-summary", *args)
    return proxy, web_url(proxy)


def web_page(url: str, page: str) -> str:
    """Another page of the web app, with the printed URL's query (its token) kept."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, page, parts.query, ""))


def tags_by_request(url: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(method, path) -> (marker as mitmweb shows it, comment), from the web app's JSON."""
    with httpx.Client(trust_env=False, timeout=10) as web:
        response = web.get(web_page(url, "/flows"))
    assert response.status_code == 200, response.text
    return {
        (f["request"]["method"], f["request"]["path"]): (f["marked"], f["comment"])
        for f in response.json()
    }


def shown(marker: str) -> str:
    """A marker short code as mitmweb's flow JSON carries it (the emoji)."""
    return emoji[marker]


def path_of(url: str) -> str:
    return urlsplit(url).path


# --- the start-up lines and the URL as printed --------------------------------------------


def test_the_web_url_is_a_third_line_on_loopback_and_works_exactly_as_printed(
    start_proxy: StartProxy,
) -> None:
    proxy, url = start_web(start_proxy, "replay")
    # The two lines other tools parse come first, unchanged.
    assert re.fullmatch(r"proxy listening on http://127\.0\.0\.1:\d+\n", proxy.stdout[0])
    assert proxy.stdout[1] == f"CA certificate: {proxy.ca}\n"
    assert proxy.stdout[2] == f"{URL_LINE}{url}\n"
    match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/(\?token=[0-9a-f]+)?", url)
    assert match, url
    assert int(match[1]) != proxy.port
    with httpx.Client(trust_env=False, timeout=10) as browser:
        page = browser.get(url)
        assert page.status_code == 200
        assert "mitmproxy" in page.text.lower()
        assert browser.get(web_page(url, "/flows")).json() == []
    if match[2]:  # mitmproxy 12: the token is what lets a client in
        with httpx.Client(trust_env=False, timeout=10) as stranger:
            assert stranger.get(web_page(url, "/flows").split("?")[0]).status_code == 403
    assert proxy.stop() == 0  # SIGTERM, as Ctrl-C: a clean stop


# --- tags through the web UI's JSON API ---------------------------------------------------


def test_replay_tags_each_answer_with_its_cassette_and_interaction_or_miss(
    start_proxy: StartProxy, client_for: ClientFor
) -> None:
    proxy, url = start_web(start_proxy, "replay")
    client = client_for(proxy)
    users, me = examples.USERS_URL, examples.ME_URL
    assert client.put(users, content=examples.REQUEST_BODY, headers=HEADERS).status_code == 201
    assert client.get(me, headers=HEADERS).status_code == 501
    assert client.post(me, content="{}", headers=HEADERS).status_code == 405
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), NotGraph)) as elsewhere:
        other = f"http://127.0.0.1:{elsewhere.server_address[1]}/other"
        assert client.get(other).status_code == 204  # not ours: passed through

    tags = tags_by_request(url)
    assert tags[("PUT", path_of(users))] == (
        shown(MARKERS["replay"]),
        "replay: create-virtualappointment-users.yaml #0",
    )
    assert tags[("GET", path_of(me))] == (
        shown(MARKERS["miss"]),
        "miss: no recorded interaction matches (501 CassetteMiss)",
    )
    assert tags[("POST", path_of(me))] == (
        shown(MARKERS["check"]),
        "check: refused as Graph refuses it",
    )
    assert tags[("GET", "/other")] == ("", "")


def test_simulate_tags_faults_with_their_kind_and_emulated_answers(
    start_proxy: StartProxy, client_for: ClientFor
) -> None:
    proxy, url = start_web(
        start_proxy,
        "simulate",
        "--fault",
        "latency:ms=1,route=get",
        "--fault",
        "throttle:times=1,route=get,retry-after=1",
    )
    client = client_for(proxy)
    created = client.put(
        meeting_url("web-sim"), content=examples.REQUEST_BODY, headers=HEADERS
    ).status_code
    throttled = client.get(meeting_url("web-sim"), headers=HEADERS).status_code
    read = client.get(meeting_url("web-sim"), headers=HEADERS).status_code
    assert (created, throttled, read) == (201, 429, 200)

    with httpx.Client(trust_env=False, timeout=10) as web:
        flows = web.get(web_page(url, "/flows")).json()
    tags = [(f["request"]["method"], f["marked"], f["comment"]) for f in flows]
    assert tags == [
        ("PUT", shown(MARKERS["emulator"]), "emulator"),
        ("GET", shown(MARKERS["fault"]), "fault: throttle; fault: latency"),
        ("GET", shown(MARKERS["emulator"]), "emulator; fault: latency"),
    ]


def test_record_tags_what_it_replayed_and_what_it_recorded_from_upstream(
    tmp_path: Path, start_proxy: StartProxy, client_for: ClientFor
) -> None:
    graph = start_proxy("simulate", "--reverse", "--no-summary")
    path = tmp_path / "session.yaml"
    path.write_text(examples.bundled_cassette_texts()["create-virtualappointment-me.yaml"])
    proxy, url = start_web(
        start_proxy,
        "record",
        "--cassette",
        str(path),
        "--record-mode",
        "new_episodes",
        "--upstream",
        graph.url,
    )
    client = client_for(proxy)
    me, fresh = examples.ME_URL, meeting_url("web-rec")
    assert client.put(me, content=examples.REQUEST_BODY, headers=HEADERS).status_code == 201
    assert client.put(fresh, content=examples.REQUEST_BODY, headers=HEADERS).status_code == 201

    tags = tags_by_request(url)
    assert tags[("PUT", path_of(me))] == (shown(MARKERS["replay"]), "replay: session.yaml #0")
    assert tags[("PUT", path_of(fresh))] == (
        shown(RECORDED_MARKER),
        f"recorded: answered by 127.0.0.1:{graph.port}",
    )


# --- refusals -----------------------------------------------------------------------------


def test_a_busy_web_port_is_exit_status_2_with_one_line(confdir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("simulate", "--web", "--web-port", str(port), confdir=confdir)
    line = assert_one_line_error(result, f"graph-vcr-proxy: cannot listen on 127.0.0.1:{port}")
    assert "web UI" in line


def test_web_port_without_web_is_refused_with_one_line(confdir: Path) -> None:
    result = run_cli("replay", "--web-port", "0", confdir=confdir)
    assert_one_line_error(result, "graph-vcr-proxy: --web-port: only with --web")


# --- a real browser -----------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class TaggedCells(HTMLParser):
    """The text of mitmweb's flow-list comment cells and marker spans, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.comments: list[str] = []
        self.markers: list[str] = []
        self._into: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "td" and "col-comment" in classes:
            self._into = self.comments
        elif tag == "span" and "marker" in classes:
            self._into = self.markers
        else:
            return
        self._into.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "span"):
            self._into = None

    def handle_data(self, data: str) -> None:
        if self._into is not None:
            self._into[-1] += data


def chromium_dom(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran, from headless Chromium. The flags keep it off
    every Google host (this network refuses them) and out of the user's profile."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs it)")
def test_headless_chromium_shows_the_tagged_flows_in_mitmweb(
    tmp_path: Path, start_proxy: StartProxy, client_for: ClientFor
) -> None:
    proxy, url = start_web(start_proxy, "simulate", "--fault", "throttle:times=1")
    client = client_for(proxy)
    for _ in range(2):
        client.put(meeting_url("web-ui"), content=examples.REQUEST_BODY, headers=HEADERS)

    cells = TaggedCells()
    cells.feed(chromium_dom(url, tmp_path / "chromium-profile"))
    assert cells.comments == ["fault: throttle", "emulator"]
    assert cells.markers == [shown(MARKERS["fault"]), shown(MARKERS["emulator"])]


def test_each_request_of_a_batch_is_a_flow_of_its_own_in_the_web_view_marked_with_its_id(
    start_proxy: StartProxy, client_for: ClientFor
) -> None:
    proxy, url = start_web(start_proxy, "replay")
    me = examples.ME_URL
    batch = {
        "requests": [
            {
                "id": "create",
                "method": "PUT",
                "url": me.removeprefix(examples.GRAPH_BETA),
                "headers": {"Content-Type": "application/json"},
                "body": json.loads(examples.REQUEST_BODY),
            }
        ]
    }
    answer = client_for(proxy).post(f"{examples.GRAPH_BETA}/$batch", json=batch)
    assert answer.json()["responses"][0]["status"] == 201
    marker, comment = tags_by_request(url)[("PUT", path_of(me))]
    assert marker == shown(":vhs:")
    assert comment.startswith("replay: ") and comment.endswith("via $batch, id 'create'")
