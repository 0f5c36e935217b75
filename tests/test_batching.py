"""The batching addon hook by hook, over a real chain of ours in mitmproxy's test master:
hostile batches get Graph's answers, never our 500 and never a forward."""

from __future__ import annotations

import asyncio
import json

import pytest
from helpers import WORK_TENANT, graph_flow, jwt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy import ctx, http
from mitmproxy.proxy.layers.http import HttpRequestHook
from mitmproxy.test import taddons

from proxy_addons.addons import flows
from proxy_addons.addons.batching import Batching
from proxy_addons.addons.emulator import Emulator
from proxy_addons.addons.etag_tracker import ETagTracker
from proxy_addons.addons.fault_injection import FaultInjector
from proxy_addons.addons.gate import Gate, Seal
from proxy_addons.addons.request_checks import RequestChecks

BATCH_URL = "https://graph.microsoft.com/beta/$batch"
OURS = "/me/onlineMeetings/m/virtualAppointment"
TOKEN = jwt(tid=WORK_TENANT, scp="OnlineMeetings.ReadWrite")


class Seen:
    """Every flow whose request hook ran, at the end of the chain."""

    def __init__(self) -> None:
        self.flows: list[http.HTTPFlow] = []

    def request(self, flow: http.HTTPFlow) -> None:
        self.flows.append(flow)


SEEN = Seen()


@pytest.fixture(scope="module")
def chain():
    addons = [
        Gate(),
        RequestChecks(),
        ETagTracker(),
        FaultInjector(),
        Batching(),
        Emulator(),
        Seal(),
        SEEN,
    ]
    with taddons.context(*addons) as tctx:
        yield tctx


def sent(document: object) -> http.HTTPFlow:
    """A batch as a client sends it, with a token, run through the chain's request hooks."""
    flow = graph_flow("POST", BATCH_URL, json.dumps(document), {"Authorization": f"Bearer {TOKEN}"})
    flow.client_conn.sni = flow.request.host
    asyncio.run(ctx.master.addons.handle_lifecycle(HttpRequestHook(flow)))
    assert flow.response is not None, "a batch holding ours must be answered here"
    return flow


def served(document: object) -> tuple[int, object]:
    flow = sent(document)
    assert flow.response is not None
    return flow.response.status_code, flow.response.json()


def test_requests_are_answered_in_the_listed_order_with_each_flow_marked(chain):
    status, body = served(
        {
            "requests": [
                {"id": "b", "method": "GET", "url": OURS},
                {"id": "a", "method": "GET", "url": OURS.lstrip("/")},
            ]
        }
    )
    assert status == 200 and [r["id"] for r in body["responses"]] == ["b", "a"]
    assert [r["status"] for r in body["responses"]] == [404, 404]


def test_each_of_our_requests_runs_through_the_chain_as_a_flow_marked_with_its_batch(chain):
    SEEN.flows.clear()
    batch = sent({"requests": [{"id": "x", "method": "GET", "url": OURS + "?a=1"}]})
    sub, outer = SEEN.flows
    assert outer is batch
    assert sub.metadata[flows.BATCH] == {"batch": batch.id, "id": "x", "path": f"/beta{OURS}?a=1"}
    assert flows.traffic_of(sub) == "ours" and flows.answered_by(sub) == "emulator"
    assert sub.request.pretty_url == f"https://graph.microsoft.com/beta{OURS}?a=1"
    assert sub.request.headers["Authorization"] == f"Bearer {TOKEN}"  # the batch's, under its own


HOSTILE_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
ENTRY = st.fixed_dictionaries(
    {"id": HOSTILE_TEXT, "method": st.sampled_from(["GET", "PUT", "patch", "DELETE", "POST", "X"])},
    optional={
        "url": st.one_of(st.just(OURS), HOSTILE_TEXT.map(lambda t: OURS + t), HOSTILE_TEXT),
        "headers": st.dictionaries(HOSTILE_TEXT, HOSTILE_TEXT, max_size=3),
        "body": st.one_of(st.none(), HOSTILE_TEXT, st.dictionaries(HOSTILE_TEXT, st.integers())),
        "dependsOn": st.lists(HOSTILE_TEXT, max_size=2),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(entries=st.lists(ENTRY, min_size=1, max_size=4))
def test_a_hostile_batch_holding_ours_gets_graphs_answers_never_our_500(chain, entries):
    """With the network blocked, as the pytest plugin runs it: every request of the batch is
    answered here (where other traffic passes, the ones not ours would go upstream)."""
    entries[0] = {**entries[0], "url": OURS}  # at least one of ours
    gate = chain.master.addons.get("gate")
    chain.configure(gate, graph_block_network=True)
    try:
        flow = sent({"requests": entries})
    finally:
        chain.configure(gate, graph_block_network=False)
    assert flow.response is not None
    assert flows.answered_by(flow) != "internal-error", flow.response.text
    assert flow.response.status_code in (200, 400), flow.response.text


def test_a_blocked_other_request_is_a_flow_of_its_own_answered_by_the_policy(chain):
    gate = chain.master.addons.get("gate")
    chain.configure(gate, graph_block_network=True)
    try:
        SEEN.flows.clear()
        status, body = served(
            {
                "requests": [
                    {"id": "va", "method": "GET", "url": OURS},
                    {"id": "me", "method": "GET", "url": "/me"},
                ]
            }
        )
    finally:
        chain.configure(gate, graph_block_network=False)
    assert status == 200
    assert [r["status"] for r in body["responses"]] == [404, 403]  # type: ignore[index]
    other = next(f for f in SEEN.flows if (f.metadata.get(flows.BATCH) or {}).get("id") == "me")
    assert flows.answered_by(other) == "network-policy"  # journalled as blocked, as alone
