"""Addon: serve the control endpoint (``graph-vcr-proxy.control``), and nothing else.

As mitmproxy serves its onboarding page at ``mitm.it``, one addon answers every request to
the control host, so no such request ever reaches a name that does not resolve (mitmproxy's
HTML 502) or an addon that does not know the path. The paths come from the addons that serve
them: each addon in the chain (nested ones included) with a ``control_routes()`` method
offers its paths, looked up at each request, so the order the addons were loaded in and
addons added or removed while the proxy runs (the pytest plugin's proxy swaps its mode
addon per test) change nothing. The fault injector offers ``/faults``, the pytest plugin's
session ``/session`` and ``/calls``; the checks every request passes first are in
``control_rules.py``.

Whatever happens while answering, the client gets an answer from here: an exception of any
kind (``SystemExit`` from argparse, a ``RecursionError``...) is a JSON 500 and the proxy keeps
serving. Only a cancelled task (the proxy stopping) goes on as it came.

Load it alone with::

    mitmdump -s proxy_addons/control_endpoint.py
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mitmproxy import addonmanager, ctx, http

from proxy_addons.addons import control_rules, flows
from proxy_addons.graph.replies import Reply
from proxy_addons.graph.traffic import Traffic

logger = logging.getLogger(__name__)

SERVED = "graph_vcr_proxy.control"  # flow.metadata: True on a flow this addon answered


def is_control_request(flow: http.HTTPFlow) -> bool:
    """Whether the flow is for the control host and nobody has answered it yet."""
    if flow.response is not None or flow.error is not None:
        return False
    return flows.traffic_of(flow) is Traffic.CONTROL  # the gate's decision, from the real target


def incoming(flow: http.HTTPFlow) -> control_rules.Incoming:
    request = flow.request
    return control_rules.Incoming(
        method=request.method,
        path=request.path.partition("#")[0].partition("?")[0].rstrip("/"),
        headers=flows.request_headers(flow),
        loopback=control_rules.is_loopback(flow.client_conn.peername),
        origins=tuple(request.headers.get_all("origin")),
        content_type=request.headers.get("content-type"),
        body=request.raw_content or b"",
    )


def routes() -> dict[str, control_rules.Handler]:
    """Every path an addon of the running chain serves; the first to offer a path has it."""
    found: dict[str, control_rules.Handler] = {}
    for addon in addonmanager.traverse(ctx.master.addons.chain):
        offer: Any = getattr(addon, "control_routes", None)
        if callable(offer):
            for path, handler in offer().items():
                found.setdefault(path, handler)
    return found


def answer_safely(incoming: control_rules.Incoming) -> Reply:
    """The answer to a control request, whatever happens while answering: an exception of
    any kind is a JSON 500 and the proxy serves on (for the endpoint, and for the pytest
    plugin's pipe, ``testing/session.py``)."""
    try:
        return control_rules.answer(incoming, routes())
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # SystemExit too: the proxy must live on
        logger.error(
            "control endpoint failed on %s %s", incoming.method, incoming.path, exc_info=exc
        )
        return control_rules.internal_error(exc, {})


class ControlEndpoint:
    def request(self, flow: http.HTTPFlow) -> None:
        try:
            if not is_control_request(flow):
                return
        except Exception:  # a Host header mitmproxy can't render: not a request for us
            logger.debug("not a control request: %s", flow.request.host, exc_info=True)
            return
        try:
            reply = answer_safely(incoming(flow))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # reading the flow failed: still an answer
            logger.error(
                "control endpoint failed on %s %s",
                flow.request.method,
                flow.request.path,
                exc_info=exc,
            )
            reply = control_rules.internal_error(exc, {})
        flow.response = flows.to_response(reply)
        flow.metadata[SERVED] = True
