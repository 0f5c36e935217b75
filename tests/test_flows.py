"""The rules every addon shares on a flow: a crash is a 500, never a forward; bodies decoded."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest
from helpers import graph_flow
from mitmproxy import http
from mitmproxy.test import taddons

from proxy_addons.addons import flows
from proxy_addons.addons.fault_injection import FaultInjector
from proxy_addons.addons.replay import Replay
from proxy_addons.addons.request_checks import RequestChecks
from proxy_addons.addons.summary import Summary
from proxy_addons.cassette import cassette, examples
from proxy_addons.common import json_body
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph import routes
from proxy_addons.graph.models import ErrorResponse


class Broken:
    """An addon with a bug: its hooks raise."""

    @flows.guarded
    def request(self, flow):
        raise RuntimeError("boom")

    @flows.guarded
    async def response(self, flow):
        raise RuntimeError("bang")


def test_a_hook_that_raises_on_our_route_answers_graphs_500_instead_of_forwarding():
    flow = graph_flow("GET", examples.ME_URL)
    with taddons.context(Broken()):
        Broken().request(flow)
    assert flow.response is not None and flow.response.status_code == 500
    error = ErrorResponse.model_validate_json(flow.response.content).error
    assert error.code == "generalException" and "RuntimeError: boom" in error.message


def test_an_async_hook_that_raises_on_our_route_answers_500_too():
    flow = graph_flow("GET", examples.ME_URL)
    with taddons.context(Broken()):
        asyncio.run(Broken().response(flow))
    assert flow.response is not None and flow.response.status_code == 500


def test_a_hook_that_raises_on_other_traffic_answers_500_too_never_forwarding_it():
    flow = graph_flow("GET", "https://example.com/")
    with taddons.context(Broken()):
        Broken().request(flow)
    assert flow.response is not None and flow.response.status_code == 500
    assert flows.answered_by(flow) == AnsweredBy.INTERNAL_ERROR


class Exits:
    """A hook that ends the process the way argparse does on ``--help``, or as Ctrl-C would."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    @flows.guarded
    def request(self, flow):
        raise self.exc

    @flows.guarded
    async def response(self, flow):
        raise self.exc


@pytest.mark.parametrize("exc", [SystemExit(0), KeyboardInterrupt(), RecursionError("deep")])
def test_a_base_exception_in_a_hook_answers_graphs_500_instead_of_escaping(exc):
    flow = graph_flow("PUT", examples.ME_URL)
    with taddons.context():
        Exits(exc).request(flow)
    assert flow.response is not None and flow.response.status_code == 500
    assert type(exc).__name__ in flow.response.json()["error"]["message"]


def test_a_base_exception_in_an_async_hook_answers_500_too():
    flow = graph_flow("PUT", examples.ME_URL)
    with taddons.context():
        asyncio.run(Exits(SystemExit(2)).response(flow))
    assert flow.response is not None and flow.response.status_code == 500


def test_cancelling_an_async_hook_still_cancels_it():
    flow = graph_flow("PUT", examples.ME_URL)
    with taddons.context(), pytest.raises(asyncio.CancelledError):
        asyncio.run(Exits(asyncio.CancelledError()).response(flow))
    assert flow.response is None


def test_a_flow_is_answered_even_when_working_out_its_route_raises(monkeypatch):
    def broken_route(flow):
        raise RuntimeError("route parser bug")

    monkeypatch.setattr(flows, "route_of", broken_route)
    flow = graph_flow("PUT", examples.ME_URL)
    with taddons.context():
        Broken().request(flow)
    assert flow.response is not None and flow.response.status_code == 500


def test_a_flow_that_cannot_even_be_answered_is_killed_not_forwarded(monkeypatch):
    def broken_answer(*args, **kwargs):
        raise RuntimeError("cannot build an answer")

    monkeypatch.setattr(flows, "error_reply", broken_answer)
    flow = graph_flow("PUT", examples.ME_URL)
    with taddons.context():
        Broken().request(flow)
    assert flow.response is None and flow.error is not None  # killed: the client is cut off


def test_the_route_is_read_from_the_host_the_request_goes_to_not_its_host_header():
    inside_graph_tunnel = graph_flow("PUT", examples.ME_URL, headers={"Host": "example.org"})
    elsewhere = graph_flow(
        "PUT",
        examples.ME_URL.replace("graph.microsoft.com", "example.org"),
        headers={"Host": "graph.microsoft.com"},
    )
    assert flows.route_of(inside_graph_tunnel) is not None
    assert flows.route_of(elsewhere) is None


def test_the_trailing_dot_fqdn_is_the_same_graph_host():
    flow = graph_flow("PUT", examples.ME_URL.replace(".com/", ".com./"))
    route = flows.route_of(flow)
    assert route is not None and route.host == "graph.microsoft.com"


def test_a_gzip_encoded_request_body_is_checked_and_matched_decoded():
    body = gzip.compress(examples.REQUEST_BODY.encode())
    headers = {**examples.REQUEST_HEADERS, "Content-Encoding": "gzip"}
    flow = graph_flow("PUT", examples.ME_URL, None, headers)
    flow.request.raw_content = body  # as it came off the wire: still compressed
    replay = Replay()
    with taddons.context(replay) as tctx:
        tctx.configure(replay, graph_cassette=str(cassette.bundled_cassettes()))
        replay.request(flow)
    assert flow.response is not None and flow.response.status_code == 201
    assert json.loads(flow.response.content) == json.loads(examples.RESPONSE_BODY)


def test_a_flows_url_and_body_are_parsed_once_however_many_addons_read_them(monkeypatch):
    checks, faults, summary, replay = RequestChecks(), FaultInjector(), Summary(), Replay()
    with taddons.context(faults, summary, replay) as tctx:
        tctx.configure(faults, graph_faults=["latency:ms=0"])
        tctx.configure(replay, graph_cassette=str(cassette.bundled_cassettes()))
        flow = graph_flow("PUT", examples.ME_URL, examples.REQUEST_BODY, examples.REQUEST_HEADERS)
        parsed_urls, parsed_bodies = [], []
        real_parse, real_loads = routes.parse_parts, json_body.json.loads
        monkeypatch.setattr(
            flows, "parse_parts", lambda *a: parsed_urls.append(a) or real_parse(*a)
        )
        monkeypatch.setattr(
            json_body.json, "loads", lambda *a: parsed_bodies.append(a) or real_loads(*a)
        )
        summary.requestheaders(flow)  # counts it, parsing nothing
        checks.request(flow)  # checks the request: route, body, JSON
        asyncio.run(faults.request(flow))  # judges it against a rule
        replay.request(flow)  # matches it: the same route and JSON
        faults.response(flow)
        summary.response(flow)
        assert summary.summary()["replayed"] == 1
    assert flow.response is not None and flow.response.status_code == 201
    assert len(parsed_urls) == 1 and len(parsed_bodies) == 1


def test_the_headers_read_once_per_flow_answer_as_mitmproxys_own_do():
    flow = graph_flow("GET", examples.ME_URL, headers={"Client-Request-Id": "c-1", "X-A": "1"})
    flow.request.headers.add("x-a", "2")
    headers = flows.request_headers(flow)
    for name in ("client-request-id", "x-a", "host", "content-type"):
        assert headers.get(name) == flow.request.headers.get(name)
    assert headers["x-a"] == "1, 2"


def test_a_faults_headers_give_way_to_the_givers_own_in_what_is_recorded():
    """Real Graph sends RateLimit-* headers too: the ratelimit fault's replace them for the
    client, and the recorder still gets Graph's (not none)."""
    flow = graph_flow("GET", examples.ME_URL)
    flow.response = http.Response.make(200, b"{}", {"RateLimit-Limit": "10000", "ETag": "x"})
    flows.add_fault_headers(flow, [("RateLimit-Limit", "5"), ("RateLimit-Remaining", "4")])
    flows.add_fault_headers(flow, [("RateLimit-Limit", "3")])  # a second rule, tighter
    recorded = flows.upstream_response(flow).headers
    assert (flow.response.headers["RateLimit-Limit"], recorded.get_all("RateLimit-Limit")) == (
        "3",
        ["10000"],
    )
    assert "RateLimit-Remaining" not in recorded and recorded["ETag"] == "x"
