"""What every addon reads from and writes to a mitmproxy flow, done one way for all of them.

Several addons may be loaded together (faults before replay, replay inside record...). The
rules that keep them from stepping on each other live here: a flow is ours only if its URL is
one of our routes; the first addon to answer a flow wins and later ones leave it alone; a
request Graph would refuse outright is refused before any addon looks anything up; and each
answer is tagged with who gave it, which the recorder and the summary read.
"""

from __future__ import annotations

from mitmproxy import http

from proxy_addons.graph import Reply, to_response
from proxy_addons.request_checks import check_request
from proxy_addons.routes import Route, parse

# flow.metadata keys. The summary reads them; each addon writes only its own.
ANSWERED_BY = "graph_vcr_proxy.answered_by"  # "check", "replay", "emulator", "fault"
ROUTE = "graph_vcr_proxy.route"
CHECKED = "graph_vcr_proxy.checked"  # Graph's request checks have passed
RECORDED = "graph_vcr_proxy.recorded"  # True once the recorder has the interaction on disk
PROBLEMS = "graph_vcr_proxy.problems"  # list[models.Problem] found by validation
FAULT = "graph_vcr_proxy.fault"  # the kind of the fault injected into this flow
FAULTS_INJECTED = "graph_vcr_proxy.faults_injected"  # every kind injected, in order


def route_of(flow: http.HTTPFlow) -> Route | None:
    """The flow's route, parsed once per flow."""
    if ROUTE not in flow.metadata:
        flow.metadata[ROUTE] = parse(flow.request.method, flow.request.pretty_url)
    return flow.metadata[ROUTE]


def claim(flow: http.HTTPFlow) -> Route | None:
    """The route of a flow that is ours and still unanswered, after Graph's request checks.

    A malformed request is answered here with Graph's 4xx, so callers never see it.
    """
    if flow.response is not None or flow.error is not None:
        return None
    route = route_of(flow)
    if route is None:
        return None
    if not flow.metadata.get(CHECKED):  # several addons claim one flow; check it once
        flow.metadata[CHECKED] = True
        refusal = check_request(route, flow.request.headers, flow.request.raw_content)
        if refusal is not None:
            answer(flow, refusal, by="check")
            return None
    return route


def answer(flow: http.HTTPFlow, reply: Reply, *, by: str) -> None:
    response = to_response(reply)
    response.http_version = flow.request.http_version
    flow.response = response
    flow.metadata[ANSWERED_BY] = by


def answered_by(flow: http.HTTPFlow) -> str | None:
    """Who answered the flow, or None when the response came from upstream."""
    return flow.metadata.get(ANSWERED_BY)
