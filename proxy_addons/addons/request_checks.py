"""Addon: Graph's request checks, as one step of their own, before anything looks a request up.

A request of ours that Graph would refuse outright (a body that is not JSON, too large, of the
wrong Content-Type, a method the route does not allow...; :mod:`proxy_addons.graph.request_checks`
says which) is answered here with Graph's 4xx (``AnsweredBy.CHECK``): the fault rules, replay,
the recorder and the emulator after it then never see it. It stands right after the control
endpoint in every chain of ours (``chain_order.EVERY_CHAIN``), so which addon answers a
malformed request does not depend on which addons are loaded; each request inside a JSON
``$batch`` passes it too, as ``batching.py`` runs each one through the whole chain.
"""

from __future__ import annotations

from mitmproxy import http

from proxy_addons.addons import flows
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph.request_checks import check_request


class RequestChecks:
    @flows.guarded
    def request(self, flow: http.HTTPFlow) -> None:
        route = flows.claim(flow)
        if route is None:
            return
        refusal = check_request(route, flows.request_headers(flow), flows.body_of(flow))
        if refusal is not None:
            flows.answer(flow, refusal, by=AnsweredBy.CHECK)
