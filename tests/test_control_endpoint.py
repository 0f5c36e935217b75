"""The control endpoint addon on its own, with the fault injector offering ``/faults``, driven
by mitmproxy's test helpers (no sockets)."""

from __future__ import annotations

import asyncio
import json

import pytest
from helpers import graph_flow
from mitmproxy import http
from mitmproxy.test import taddons

from proxy_addons import fault_injection as fault_injection_script
from proxy_addons.addons import control_rules
from proxy_addons.addons.control_endpoint import ControlEndpoint
from proxy_addons.addons.fault_injection import FaultInjector
from proxy_addons.addons.script_chain import chain_of
from proxy_addons.cassette import examples
from proxy_addons.graph.replies import Reply

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def chain():
    """The control endpoint and a fault injector, as every proxy mode loads them."""
    endpoint, faults = ControlEndpoint(), FaultInjector()
    with taddons.context(endpoint, faults):
        yield endpoint, faults


def control_flow(
    method: str = "GET",
    body: str | bytes = b"",
    headers: dict[str, str] | None = None,
    path: str = "/faults",
    peer: str = "127.0.0.1",
) -> http.HTTPFlow:
    flow = graph_flow(method, f"http://{control_rules.HOST}{path}", body, headers)
    flow.client_conn.peername = (peer, 50000)
    return flow


def send(endpoint: ControlEndpoint, flow: http.HTTPFlow) -> http.Response:
    endpoint.request(flow)
    assert flow.response is not None, "the control endpoint left a request unanswered"
    return flow.response


def error_of(response: http.Response) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


# --- the fault rules, as before ------------------------------------------------------------


def test_faults_are_added_listed_replaced_and_cleared(chain):
    endpoint, faults = chain
    posted = send(endpoint, control_flow("POST", '["throttle:times=1", "reset:nth=5"]', JSON))
    assert [r["spec"] for r in posted.json()["faults"]] == ["throttle:times=1", "reset:nth=5"]
    listed = send(endpoint, control_flow("GET")).json()["faults"]
    assert listed[0] == {
        "spec": "throttle:times=1",
        "kind": "throttle",
        "matched": 0,
        "injected": 0,
    }
    replaced = send(endpoint, control_flow("PUT", '"forbidden:route=get"', JSON))
    assert [r["spec"] for r in replaced.json()["faults"]] == ["forbidden:route=get"]
    assert send(endpoint, control_flow("DELETE")).json() == {"faults": []}
    assert faults.rule_table() == []


def test_bad_specs_other_paths_and_methods_are_refused(chain):
    endpoint, faults = chain
    bad = send(endpoint, control_flow("POST", '["throttle:tims=1"]', JSON))
    assert bad.status_code == 400 and "unknown key 'tims'" in bad.json()["error"]["message"]
    assert send(endpoint, control_flow("PATCH", "{}", JSON)).status_code == 405
    assert send(endpoint, control_flow("PUT", '{"spec": "x"}', JSON)).status_code == 400
    assert send(endpoint, control_flow("PUT")).status_code == 400  # PUT nothing: not a clear
    assert faults.rule_table() == []


def test_an_unknown_path_is_a_404_naming_the_paths_served(chain):
    endpoint, _ = chain
    status, _, message = error_of(send(endpoint, control_flow(path="/calls")))
    assert (status, message) == (404, "The control endpoint serves /faults; not /calls.")


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b"[" * 600 + b"]" * 600, b'["\xff\xfe"]', b'["throttle"', b"\x00"],
    ids=["nested 100000", "nested 600", "bad UTF-8", "truncated", "NUL"],
)
def test_any_json_body_is_an_answer_and_the_endpoint_keeps_serving(chain, body):
    endpoint, faults = chain
    answer = send(endpoint, control_flow("PUT", body, JSON))
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "BadRequest"
    assert faults.rule_table() == []
    assert send(endpoint, control_flow("GET")).status_code == 200


def test_a_body_over_the_limit_is_refused_unread(chain):
    endpoint, _ = chain
    huge = b"[" + b'"latency:ms=0",' * (control_rules.MAX_BODY // 10) + b'"latency:ms=0"]'
    assert send(endpoint, control_flow("PUT", huge, JSON)).status_code == 413


# --- who may ask -----------------------------------------------------------------------------


@pytest.mark.parametrize("peer", ["10.0.0.7", "192.168.1.20", "::ffff:10.0.0.1"])
def test_only_loopback_clients_are_served(chain, peer):
    endpoint, _ = chain
    assert send(endpoint, control_flow("DELETE", peer=peer)).status_code == 403
    assert send(endpoint, control_flow("GET", peer="::1")).status_code == 200
    assert send(endpoint, control_flow("GET", peer="::ffff:127.0.0.1")).status_code == 200


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "null",
        "http://graph-vcr-proxy.control.evil.example",
        "http://127.0.0.1:8000",
        "not a url [",
    ],
)
def test_a_request_from_a_web_page_is_refused(chain, origin):
    endpoint, faults = chain
    headers = {**JSON, "Origin": origin}
    refused = send(endpoint, control_flow("POST", '["forbidden"]', headers))
    status, code, message = error_of(refused)
    assert (status, code) == (403, "Forbidden") and "web pages" in message
    assert faults.rule_table() == []


def test_the_control_hosts_own_origin_is_served(chain):
    endpoint, _ = chain
    headers = {**JSON, "Origin": f"http://{control_rules.HOST}"}
    assert send(endpoint, control_flow("POST", '["forbidden"]', headers)).status_code == 200


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_a_body_not_declared_json_is_refused_with_415(chain, content_type):
    """The content types a web page may POST cross-site without a preflight, and none."""
    endpoint, faults = chain
    headers = {"Content-Type": content_type} if content_type else {}
    refused = send(endpoint, control_flow("POST", '["forbidden"]', headers))
    assert refused.status_code == 415
    assert faults.rule_table() == []


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/x+json"])
def test_json_content_types_with_parameters_or_suffixes_are_json(chain, content_type):
    endpoint, _ = chain
    flow = control_flow("POST", '["forbidden"]', {"Content-Type": content_type})
    assert send(endpoint, flow).status_code == 200


# --- it answers every control request itself ------------------------------------------------


class Raising:
    """An addon whose path raises what it is told to."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def control_routes(self):
        def handler(request: control_rules.ControlRequest) -> Reply:
            raise self.exc

        return {"/boom": handler}


@pytest.mark.parametrize(
    "exc",
    [SystemExit(2), KeyboardInterrupt(), RecursionError("deep"), RuntimeError("bug")],
    ids=lambda e: type(e).__name__,
)
def test_any_exception_is_a_json_500_and_the_endpoint_serves_on(exc):
    endpoint = ControlEndpoint()
    with taddons.context(endpoint, FaultInjector(), Raising(exc)):
        status, code, message = error_of(send(endpoint, control_flow(path="/boom")))
        assert (status, code) == (500, "generalException")
        assert message.startswith(
            f"graph-vcr-proxy: the control endpoint failed: {type(exc).__name__}"
        )
        assert send(endpoint, control_flow()).status_code == 200


def test_a_cancelled_request_stays_cancelled():
    endpoint = ControlEndpoint()
    with (
        taddons.context(endpoint, Raising(asyncio.CancelledError())),
        pytest.raises(asyncio.CancelledError),
    ):
        endpoint.request(control_flow(path="/boom"))


def test_the_fault_injector_no_longer_answers_the_control_host():
    faults = FaultInjector()
    with taddons.context(faults):
        flow = control_flow()
        asyncio.run(faults.request(flow))
    assert flow.response is None


def test_graph_requests_are_left_alone(chain):
    endpoint, _ = chain
    flow = graph_flow("PUT", examples.ME_URL, examples.REQUEST_BODY, JSON)
    endpoint.request(flow)
    assert flow.response is None


def test_the_fault_injector_script_serves_faults_in_mitmdump():
    with taddons.context() as tctx:
        tctx.script(fault_injection_script.__file__)
        addons = chain_of(tctx.master.addons).addons
        (endpoint,) = [a for a in addons if isinstance(a, ControlEndpoint)]
        answer = send(endpoint, control_flow("POST", json.dumps(["forbidden"]), JSON))
    assert [r["spec"] for r in answer.json()["faults"]] == ["forbidden"]
