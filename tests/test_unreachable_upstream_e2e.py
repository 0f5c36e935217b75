"""A Graph call forwarded to an upstream nobody answers gets Graph's JSON, not mitmproxy's HTML.

Real proxies, real clients. The unreachable upstream is a loopback port that is bound but
never listens, held for the whole test, so every connection to it is refused and nothing
leaves the machine. ``replay --on-miss forward`` reaches it the way the replay tests reach
their upstream: the client asks for ``http://graph.microsoft.com``, and the test's upstream
counter (``upstream_counter.py``) lands the proxy's connections to that host on the port.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
import requests

from proxy_addons.cassette import examples

pytestmark = pytest.mark.e2e

JSON = {**examples.REQUEST_HEADERS, "Authorization": "Bearer test-token"}
ME_PATH = examples.ME_URL.removeprefix("https://graph.microsoft.com")


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the test runs."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def graph_error(body: bytes) -> dict[str, str]:
    return json.loads(body)["error"]


def test_record_to_a_closed_upstream_answers_graphs_502_and_counts_it_unreachable(
    tmp_path, closed_port, start_proxy, client_for
):
    path, summary = tmp_path / "never.yaml", tmp_path / "summary.json"
    upstream = f"http://127.0.0.1:{closed_port}"
    recorder = start_proxy(
        "record", "--cassette", str(path), "--upstream", upstream,
        "--summary-json", str(summary), "--no-summary",
    )  # fmt: skip
    client = client_for(recorder)
    answers = [
        client.put(examples.ME_URL, content=examples.REQUEST_BODY, headers=JSON),
        client.get(examples.ME_URL, headers={**JSON, "client-request-id": "c-2"}),  # keep-alive
    ]
    for answer in answers:
        assert answer.status_code == 502
        assert answer.headers["content-type"] == "application/json"
        error = graph_error(answer.content)
        assert error["code"] == "UpstreamUnreachable"
        assert f"the upstream {upstream} is unreachable" in error["message"]
        assert "Connect call failed" in error["message"]
    assert answers[1].headers["client-request-id"] == "c-2"
    assert recorder.stop() == 0

    assert not path.exists()  # nothing upstream said, nothing recorded
    tally = json.loads(summary.read_text())
    assert tally["answered_by"]["unreachable"] == 2
    assert (tally["requests"], tally["recorded"], tally["answered_by"]["upstream"]) == (2, 0, 0)
    assert sum("upstream unreachable: PUT" in line for line in recorder.stderr) == 1


def test_replay_forwarding_a_miss_to_an_unreachable_host_answers_graphs_502(
    tmp_path, closed_port, counted
):
    summary = tmp_path / "summary.json"
    proxy = counted(
        "replay",
        *("--on-miss", "forward", "--summary-json", str(summary), "--no-summary"),
        hosts={"graph.microsoft.com": closed_port},
    ).proxy
    unreachable = f"http://127.0.0.1:{closed_port}"
    with requests.Session() as session:
        session.trust_env = False
        session.proxies = {"http": proxy.url}
        graph = session.get(f"http://graph.microsoft.com{ME_PATH}")
        other = session.get(f"{unreachable}/not/graph")
    assert graph.status_code == 502
    assert graph.headers["Content-Type"] == "application/json"
    error = graph_error(graph.content)
    assert error["code"] == "UpstreamUnreachable"
    assert "the upstream http://graph.microsoft.com:80 is unreachable" in error["message"]
    # Other traffic keeps mitmproxy's own answer.
    assert other.status_code == 502 and other.headers["Content-Type"] == "text/html"
    assert proxy.stop() == 0

    tally = json.loads(summary.read_text())
    assert tally["requests"] == 1
    assert (tally["answered_by"]["unreachable"], tally["answered_by"]["miss"]) == (1, 0)
    assert tally["replayed"] == 0
