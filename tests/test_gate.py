"""The gate addon and its seal, hook by hook (mitmproxy's test flows; end to end in
test_sealed_e2e.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from helpers import graph_flow
from mitmproxy import connection, exceptions, http
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.test import taddons, tflow

from proxy_addons.addons import flows
from proxy_addons.addons.gate import RAW_TCP_TO_GRAPH, Gate, Seal
from proxy_addons.cassette import examples
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph import traffic
from proxy_addons.graph.traffic import Traffic

OTHER_URL = "https://example.org/x"
GRAPH_OTHER_URL = "https://graph.microsoft.com/v1.0/me"
BATCH_URL = "https://graph.microsoft.com/v1.0/$batch"
BATCH = {
    "requests": [{"id": "b-7", "method": "GET", "url": "me/onlineMeetings/m/virtualAppointment"}]
}


def sent(method: str, url: str, body: object = None, **headers: str) -> http.HTTPFlow:
    """A flow as a client sends it through a tunnel to the URL's host: the TLS SNI and the
    Host header name that host unless given."""
    flow = graph_flow(method, url, json.dumps(body) if body is not None else None)
    flow.client_conn.sni = flow.request.host
    flow.request.headers["Host"] = headers.pop("Host", flow.request.host)
    for name, value in headers.items():
        flow.request.headers[name] = value
    return flow


@pytest.fixture
def gate() -> Iterator[tuple[Gate, Seal, taddons.context]]:
    front, seal = Gate(), Seal()
    with taddons.context(front, seal) as tctx:
        yield front, seal, tctx


def configure(tctx: taddons.context, addon: object, **options: object) -> None:
    tctx.configure(addon, **options)


def test_every_flow_is_classified_for_the_addons_after_the_gate(gate):
    front, _, _ = gate
    cases = {
        examples.ME_URL: Traffic.OURS,
        GRAPH_OTHER_URL: Traffic.GRAPH,
        OTHER_URL: Traffic.OTHER,
        "http://graph-vcr-proxy.control/faults": Traffic.CONTROL,
    }
    for url, expected in cases.items():
        flow = sent("GET", url)
        front.request(flow)
        assert flow.metadata[flows.TRAFFIC] == expected and flows.traffic_of(flow) is expected
        assert flow.response is None  # nothing refused by the default policy


@pytest.mark.parametrize(
    ("url", "names"),
    [
        (examples.ME_URL, {"Host": "example.org"}),  # CONNECT graph.microsoft.com, Host elsewhere
        (GRAPH_OTHER_URL, {"Host": "example.org"}),
    ],
)
def test_a_host_header_that_disagrees_with_a_graph_target_is_graphs_400(gate, url, names):
    front, _, _ = gate
    flow = sent("GET", url, **names)
    front.request(flow)
    assert flow.response is not None and flow.response.status_code == 400
    assert flow.response.json()["error"]["code"] == "BadRequest"
    assert flows.answered_by(flow) == AnsweredBy.CHECK


@pytest.mark.parametrize(
    ("url", "sni"),
    [(examples.ME_URL, "example.org"), (OTHER_URL, "graph.microsoft.com")],
)
def test_a_tls_server_name_that_disagrees_with_a_graph_target_is_graphs_400(gate, url, sni):
    front, _, _ = gate
    flow = sent("GET", url)
    flow.client_conn.sni = sni
    front.request(flow)
    assert flow.response is not None and flow.response.status_code == 400


def test_a_host_header_naming_graph_for_another_target_goes_where_it_is_sent(gate):
    front, _, _ = gate
    flow = sent("GET", "http://127.0.0.1:9/v1.0/me", Host="graph.microsoft.com")
    flow.client_conn.sni = None
    front.request(flow)
    assert flow.response is None and flows.traffic_of(flow) is Traffic.OTHER


def test_a_second_host_header_that_disagrees_is_refused_too(gate):
    front, _, _ = gate
    flow = sent("GET", examples.ME_URL)
    flow.request.headers.add("Host", "example.org")
    front.request(flow)
    assert flow.response is not None and flow.response.status_code == 400


def test_a_reverse_proxys_target_is_not_compared_with_the_host_header(gate):
    front, _, _ = gate
    flow = sent("GET", examples.ME_URL, Host="127.0.0.1:8000")
    flow.client_conn.proxy_mode = ProxyMode.parse("reverse:https://graph.microsoft.com")
    front.request(flow)
    assert flow.response is None


def test_the_gate_leaves_a_batch_holding_ours_to_batching_even_where_the_network_is_blocked(
    gate,
):
    front, _, tctx = gate
    configure(tctx, front, graph_block_network=True)
    flow = sent("POST", BATCH_URL, BATCH)
    front.request(flow)
    assert flow.response is None  # batching.py serves ours; the policy answers the others


def test_the_seal_refuses_a_batch_still_holding_ours_where_ours_stay_offline(gate):
    _, seal, _ = gate
    flow = sent("POST", BATCH_URL, BATCH)
    seal.request(flow)
    assert flow.response is not None and flow.response.status_code == 501
    assert flow.response.json()["error"]["code"] == "BatchNotServed"
    assert flows.answered_by(flow) == AnsweredBy.INTERNAL_ERROR


def test_the_seal_lets_a_batch_go_once_only_others_are_left_in_it(gate):
    _, seal, _ = gate
    flow = sent("POST", BATCH_URL, BATCH)
    flows.body_of(flow)  # read as the client sent it, then rewritten as batching.py does
    flow.request.content = json.dumps(
        {"requests": [{"id": "x", "method": "GET", "url": "/me"}]}
    ).encode()
    seal.request(flow)
    assert flow.response is None


def test_a_batch_goes_on_where_ours_may_go_upstream(gate):
    front, _, tctx = gate
    configure(tctx, front, graph_forward_ours=True)
    flow = sent("POST", BATCH_URL, BATCH)
    front.request(flow)
    assert flow.response is None


@pytest.mark.parametrize("body", [b"[[[[" * 10000, b"\xff\xfe", b"", b'{"requests": 5}'])
def test_a_batch_body_that_is_not_a_batch_goes_on(gate, body):
    front, _, _ = gate
    flow = sent("POST", BATCH_URL)
    flow.request.content = body
    front.request(flow)
    assert flow.response is None


def test_blocked_other_hosts_get_a_plain_502_naming_the_policy_and_host(gate):
    front, _, tctx = gate
    configure(tctx, front, graph_block_network=True)
    flow = sent("GET", OTHER_URL)
    front.request(flow)
    assert flow.response is not None and flow.response.status_code == 502
    assert flow.response.headers["content-type"].startswith("text/plain")
    assert "network policy blocks example.org" in flow.response.text
    assert flows.answered_by(flow) == AnsweredBy.NETWORK_POLICY


def test_blocked_graph_traffic_gets_graphs_403(gate):
    front, _, tctx = gate
    configure(tctx, front, graph_block_network=True)
    flow = sent("GET", GRAPH_OTHER_URL)
    front.request(flow)
    assert flow.response is not None and flow.response.status_code == traffic.BLOCKED_STATUS
    assert flow.response.json()["error"]["code"] == "BlockedByNetworkPolicy"


def test_the_gate_leaves_our_calls_to_the_mode_even_when_blocked(gate):
    front, _, tctx = gate
    configure(tctx, front, graph_block_network=True)
    flow = sent("PUT", examples.ME_URL)
    front.request(flow)
    assert flow.response is None


def test_allowed_hosts_and_loopback_pass_a_blocking_policy(gate):
    front, _, tctx = gate
    configure(tctx, front, graph_block_network=True, graph_allow_hosts=["example.org"])
    for url in (OTHER_URL, "http://127.0.0.1:9/x", "http://localhost/x"):
        flow = sent("GET", url)
        front.request(flow)
        assert flow.response is None, url


def test_allowed_hosts_without_blocking_are_an_options_error(gate):
    front, _, tctx = gate
    with pytest.raises(exceptions.OptionsError, match="only with --block-network"):
        configure(tctx, front, graph_allow_hosts=["example.org"])


def test_the_gate_fails_closed_when_its_own_decision_raises(gate, monkeypatch):
    front, _, _ = gate

    def broken(target):
        raise SystemExit(3)

    monkeypatch.setattr("proxy_addons.addons.gate.disagreeing_name", broken)
    flow = sent("GET", OTHER_URL)
    front.request(flow)
    assert flow.response is not None and flow.response.status_code == 500


def server_connect(front: Gate, host: str) -> ServerConnectionHookData:
    data = ServerConnectionHookData(
        client=tflow.tclient_conn(), server=connection.Server(address=(host, 443))
    )
    front.server_connect(data)
    return data


def test_server_connect_refuses_blocked_hosts_only(gate):
    front, _, tctx = gate
    assert server_connect(front, "example.org").server.error is None
    configure(tctx, front, graph_block_network=True, graph_allow_hosts=["example.net"])
    assert "network policy blocks example.org" in server_connect(front, "example.org").server.error
    assert "blocks graph.microsoft.com" in server_connect(front, "graph.microsoft.com").server.error
    assert server_connect(front, "example.net").server.error is None
    assert server_connect(front, "127.0.0.1").server.error is None


def test_server_connect_fails_closed(gate, monkeypatch):
    front, _, _ = gate
    monkeypatch.setattr(front.options, "policy", None)  # any bug: .allows is gone
    assert "internal error in the gate" in server_connect(front, "example.org").server.error


def raw(host: str):
    flow = tflow.ttcpflow()
    flow.server_conn.address = (host, 443)
    return flow


def test_raw_tcp_to_a_graph_host_never_opens_where_ours_stay_offline(gate):
    front, _, _ = gate
    graph, other = raw("graph.microsoft.com."), raw("example.org")
    front.tcp_start(graph)
    front.tcp_start(other)
    assert graph.server_conn.error == RAW_TCP_TO_GRAPH and other.server_conn.error is None


def test_raw_tcp_to_a_blocked_host_never_opens_and_relays_nothing(gate):
    front, _, tctx = gate
    configure(tctx, front, graph_block_network=True)
    flow = raw("example.org")
    front.tcp_start(flow)
    front.tcp_message(flow)
    assert "network policy blocks example.org" in flow.server_conn.error
    assert flow.messages[-1].content == b""


def test_raw_tcp_to_a_graph_host_passes_where_ours_may_go_upstream(gate):
    front, _, tctx = gate
    configure(tctx, front, graph_forward_ours=True)
    flow = raw("graph.microsoft.com")
    front.tcp_start(flow)
    assert flow.server_conn.error is None


# --- the seal -----------------------------------------------------------------------------


def test_one_of_ours_nobody_answered_is_a_loud_500_where_ours_stay_offline(gate):
    front, seal, _ = gate
    flow = sent("PUT", examples.ME_URL)
    front.request(flow)
    seal.request(flow)  # no mode addon in between answered it
    assert flow.response is not None and flow.response.status_code == 500
    assert flows.answered_by(flow) == AnsweredBy.INTERNAL_ERROR


def test_one_of_ours_goes_on_where_the_mode_forwards_it(gate):
    front, seal, tctx = gate
    configure(tctx, front, graph_forward_ours=True)
    flow = sent("PUT", examples.ME_URL)
    front.request(flow)
    seal.request(flow)
    assert flow.response is None


def test_the_seal_blocks_where_the_mode_sent_the_request(gate):
    front, seal, tctx = gate
    configure(tctx, front, graph_forward_ours=True, graph_block_network=True)
    flow = sent("PUT", examples.ME_URL)
    front.request(flow)
    seal.request(flow)  # still bound for graph.microsoft.com: blocked
    assert flow.response is not None and flow.response.status_code == traffic.BLOCKED_STATUS
    redirected = sent("PUT", examples.ME_URL)
    front.request(redirected)
    redirected.request.host, redirected.request.port = "127.0.0.1", 8000  # --upstream
    seal.request(redirected)
    assert redirected.response is None


def test_the_control_endpoint_nobody_serves_is_answered_not_forwarded(gate):
    front, seal, _ = gate
    flow = sent("GET", "http://graph-vcr-proxy.control/faults")
    front.request(flow)
    seal.request(flow)
    assert flow.response is not None and flow.response.status_code == 404


def test_the_banner_line_states_the_policy(gate):
    front, _, tctx = gate
    assert front.banner() == "network: other traffic passes untouched"
    configure(tctx, front, graph_block_network=True, graph_allow_hosts=["a.example", "b.example"])
    assert front.banner() == "network: blocked except loopback, a.example, b.example"
