"""The session proxy's journal of other traffic: kept only when the network policy blocked it."""

from __future__ import annotations

from pathlib import Path

from helpers import graph_flow
from mitmproxy.test import taddons

from proxy_addons.addons import flows
from proxy_addons.cassette import examples
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph.replies import error_reply
from proxy_addons.testing.session import Session


def test_a_request_to_another_host_is_journalled_only_when_the_network_policy_blocked_it():
    session = Session(Path.cwd())
    session.active = [object()]  # as after a switch
    with taddons.context(session):
        passed = graph_flow("GET", "https://example.org/a")
        stopped = graph_flow("GET", "https://example.org/b")
        ours = graph_flow("GET", examples.ME_URL)
        for flow in (passed, stopped, ours):
            session.request(flow)
        flows.answer(stopped, error_reply(502, "Blocked", "no", {}), by=AnsweredBy.NETWORK_POLICY)
        calls = session.calls()
    assert [(c["url"], c["answered_by"]) for c in calls] == [
        ("https://example.org/b", AnsweredBy.NETWORK_POLICY),
        (examples.ME_URL, AnsweredBy.NO_RESPONSE),
    ]
