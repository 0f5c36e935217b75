"""Addon: learn each appointment's current ETag from the answers, for the fault rules.

One job: it keeps :class:`~proxy_addons.graph.etags.KnownETags` up to date from every answer to
one of our routes (replay's, the emulator's, real Graph's; never a fault's own error), and
hands the fault rules what their staleness condition (``etag-mismatch:when=stale``) reads: the
known ETag of the appointment a conditional write addresses, in ``flow.metadata``
(``flows.KNOWN_ETAG``, a plain string). The rules then judge from data the flow carries.

It stands right before the fault rules (``chain_order.Stage.ETAGS``): its request hook has to
put the ETag in the flow before the rules read it, and its response hook learns from the real
answer before a ``malformed`` or ``empty`` fault spoils it. :meth:`ETagTracker.reset` forgets
everything, as the pytest plugin's proxy does at the start of each test.
"""

from __future__ import annotations

from mitmproxy import http

from proxy_addons.addons import flows
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph.etags import CONDITIONAL_METHODS, KnownETags


class ETagTracker:
    def __init__(self) -> None:
        self.known = KnownETags()

    def reset(self) -> None:
        """Forget every ETag learnt."""
        self.known = KnownETags()

    @flows.guarded
    def request(self, flow: http.HTTPFlow) -> None:
        route = flows.claim(flow)
        if route is None or route.method not in CONDITIONAL_METHODS:
            return
        known = self.known.current(route)
        if known is not None:
            flow.metadata[flows.KNOWN_ETAG] = known

    @flows.guarded
    def response(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or flows.answered_by(flow) == AnsweredBy.FAULT:
            return  # a fault's own answer teaches nothing
        route = flows.route_of(flow)
        if route is None:
            return
        # get_all, not get: most answers carry no ETag, and get finds that out by an exception
        sent = response.headers.get_all("ETag")
        self.known.learn(route, response.status_code, ", ".join(sent) if sent else None)
