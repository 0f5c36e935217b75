"""The unreachable-upstream addon on its own: which forwards it tries, and what it answers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import pytest
from helpers import graph_flow
from mitmproxy import connection, http
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.test import taddons

from proxy_addons.addons import flows
from proxy_addons.addons.unreachable_upstream import UnreachableUpstream, connect
from proxy_addons.addons.upstream import Upstream
from proxy_addons.cassette import examples
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph.models import ErrorResponse

ME = examples.ME_URL


class Dialer:
    """Stands in for the TCP connect: records what was tried, fails with ``reason``."""

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason
        self.tried: list[tuple[str, int]] = []

    async def __call__(self, address: tuple[str, int], timeout: float) -> str | None:
        self.tried.append(address)
        return self.reason


def forwarded(url: str = ME, **headers: str):
    return graph_flow("GET", url, headers={"client-request-id": "c-1", **headers})


@pytest.fixture
def tried() -> Iterator[Callable[[UnreachableUpstream, http.HTTPFlow], None]]:
    """Runs an addon's request hook on a flow. Each addon's mitmproxy test context lives as
    long as the test: mitmproxy's log handler keeps writing to the context's event loop."""
    contexts: list[taddons.context] = []

    def run(addon: UnreachableUpstream, flow: http.HTTPFlow) -> None:
        if not any(addon in context.master.addons for context in contexts):
            contexts.append(taddons.context(addon))
        asyncio.run(addon.request(flow))

    yield run


def test_a_forward_nobody_answers_gets_graphs_502_naming_the_upstream_and_reason(tried):
    addon = UnreachableUpstream(Dialer("[Errno 111] Connect call failed ('127.0.0.1', 9)"))
    flow = forwarded()
    assert flows.route_of(flow) is not None  # worked out as the client sent it, then redirected
    Upstream.parse("http://127.0.0.1:9").redirect(flow.request)
    tried(addon, flow)
    assert flow.response is not None and flow.response.status_code == 502
    error = ErrorResponse.model_validate_json(flow.response.content).error
    assert error.code == "UpstreamUnreachable"
    assert "the upstream http://127.0.0.1:9 is unreachable" in error.message
    assert "Connect call failed" in error.message
    assert flow.response.headers["client-request-id"] == "c-1"
    assert flows.answered_by(flow) is AnsweredBy.UNREACHABLE


def test_a_reachable_upstream_is_left_to_mitmproxy(tried):
    dialer = Dialer(None)
    flow = forwarded()
    tried(UnreachableUpstream(dialer), flow)
    assert dialer.tried == [("graph.microsoft.com", 443)]
    assert flow.response is None and flows.answered_by(flow) is None


def test_answered_flows_and_other_traffic_are_never_tried(tried):
    dialer = Dialer("refused")
    addon = UnreachableUpstream(dialer)
    answered = forwarded()
    flows.answer(answered, None, by=AnsweredBy.FAULT)  # a reset fault killed it
    other = graph_flow("GET", "https://example.com/beta/me/onlineMeetings/m/virtualAppointment")
    for flow in (answered, other):
        tried(addon, flow)
    assert dialer.tried == []
    assert other.response is None


def test_a_client_with_an_open_connection_to_the_upstream_is_not_tried_again(tried):
    """mitmproxy reuses that connection: keep-alive requests pay for no trial."""
    dialer = Dialer("refused")
    addon = UnreachableUpstream(dialer)
    first = forwarded()
    server = connection.Server(address=("graph.microsoft.com", 443))
    opened = ServerConnectionHookData(server=server, client=first.client_conn)
    addon.server_connected(opened)
    tried(addon, first)
    assert dialer.tried == [] and first.response is None
    tried(addon, forwarded())  # another client connection needs a connection of its own
    assert dialer.tried == [("graph.microsoft.com", 443)]
    addon.server_disconnected(opened)
    again = forwarded()
    again.client_conn = first.client_conn
    tried(addon, again)
    assert len(dialer.tried) == 2
    assert again.response is not None and again.response.status_code == 502


def test_the_real_connect_reports_a_refused_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # bound, never listening: connections are refused
        refused = asyncio.run(connect(("127.0.0.1", closed), 5))
    assert refused is not None and str(closed) in refused
