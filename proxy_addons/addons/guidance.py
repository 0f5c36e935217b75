"""Addon: note, per Graph request, what Graph recommends that the request did not do.

Off by default: the CLI puts it in the chain only with ``--guidance`` (each addon in the
chain costs every request a hook dispatch); loaded, it is on, and declares no option. Load it
alone with::

    mitmdump -s proxy_addons/guidance.py

Each request of ours that earns advice (``graph/guidance.py``: no ``client-request-id``, a
``/beta`` URL, a write without ``If-Match``, an SMS action without a US phone number in
E.164) gets one log line, and its advice in ``flow.metadata`` (``flows.GUIDANCE``) for the
exit summary, which counts it per kind. Advice changes nothing in the flow: the request goes
on as it came.
"""

from __future__ import annotations

import logging

from mitmproxy import http

from proxy_addons.addons import flows
from proxy_addons.graph.guidance import advise

logger = logging.getLogger(__name__)


class Guidance:
    def request(self, flow: http.HTTPFlow) -> None:
        route = flows.route_of(flow)
        if route is None:
            return
        advice = advise(route, flows.request_headers(flow), flows.body_of(flow))
        if not advice:
            return
        flow.metadata[flows.GUIDANCE] = [str(kind) for kind in advice]
        logger.info(
            "guidance: %s %s: %s",
            route.method,
            route.path,
            "; ".join(kind.recommendation for kind in advice),
        )
