"""What every addon reads from and writes to a mitmproxy flow, done one way for all of them.

Several addons may be loaded together (faults before replay, replay inside record...). The
rules that keep them from stepping on each other live here: a flow is ours only if its URL is
one of our routes; the first addon to answer a flow wins and later ones leave it alone; a
request Graph would refuse outright is refused before any addon looks anything up; and each
answer is tagged with who gave it, which the recorder and the summary read.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from mitmproxy import http

from proxy_addons.answered_by import AnsweredBy
from proxy_addons.graph import GENERAL_EXCEPTION, Reply, error_reply
from proxy_addons.request_checks import check_request
from proxy_addons.routes import Route, parse

# flow.metadata keys. The summary reads them; each addon writes only its own.
ANSWERED_BY = "graph_vcr_proxy.answered_by"  # an AnsweredBy; absent: upstream answered
ROUTE = "graph_vcr_proxy.route"
CHECKED = "graph_vcr_proxy.checked"  # Graph's request checks have passed
RECORDED = "graph_vcr_proxy.recorded"  # True once the recorder has the interaction on disk
PROBLEMS = "graph_vcr_proxy.problems"  # list[models.Problem] found by validation
FAULT = "graph_vcr_proxy.fault"  # the kind of the fault injected into this flow
FAULTS_INJECTED = "graph_vcr_proxy.faults_injected"  # every kind injected, in order
REPLAYED = "graph_vcr_proxy.replayed"  # (cassette path, interaction index) replay answered with

logger = logging.getLogger(__name__)
Hook = TypeVar("Hook", bound=Callable[..., Any])


def route_of(flow: http.HTTPFlow) -> Route | None:
    """The flow's route, parsed once per flow."""
    if ROUTE not in flow.metadata:
        flow.metadata[ROUTE] = parse(flow.request.method, flow.request.pretty_url)
    return flow.metadata[ROUTE]


def request_body(request: http.Request) -> bytes | None:
    """The body as the client meant it: a gzip- or deflate-encoded one decoded (Kiota's
    compression handler sends those), an undecodable one as it came."""
    return request.get_content(strict=False)


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
        refusal = check_request(route, flow.request.headers, request_body(flow.request))
        if refusal is not None:
            answer(flow, refusal, by=AnsweredBy.CHECK)
            return None
    return route


def to_response(reply: Reply) -> http.Response:
    """The mitmproxy response for a :class:`graph.Reply`: its body sent byte for byte.

    ``Response.make`` (and the ``content`` setter) would encode the body according to its
    Content-Encoding, compressing a recorded gzip body a second time; a Reply's body is
    already what goes on the wire, so it is set raw, with a Content-Length that states it.
    """
    response = http.Response.make(reply.status)
    response.headers = http.Headers([(k.encode(), v.encode()) for k, v in reply.headers])
    response.raw_content = reply.body
    if "transfer-encoding" not in response.headers:
        response.headers["content-length"] = str(len(reply.body))
    if reply.reason:
        response.reason = reply.reason
    return response


def answer(flow: http.HTTPFlow, reply: Reply | None, *, by: AnsweredBy) -> None:
    """Answer the flow with ``reply``, or with no response at all (``None``: the connection
    is closed, as a ``reset`` fault does), and say who answered."""
    flow.metadata[ANSWERED_BY] = by
    if reply is None:
        flow.kill()
        return
    response = to_response(reply)
    response.http_version = flow.request.http_version
    flow.response = response


def answered_by(flow: http.HTTPFlow) -> AnsweredBy | None:
    """Who answered the flow, or None when the response came from upstream."""
    return flow.metadata.get(ANSWERED_BY)


def guarded(hook: Hook) -> Hook:
    """Make a flow hook answer Graph's 500 for one of our flows if it raises.

    mitmproxy logs an addon's exception and carries on with the flow: a request our addon
    failed to answer would go on to the real Graph host, which is exactly what replay and
    simulate promise never happens. A bug in us must be a loud 500, never a silent forward.
    """

    def fail(flow: http.HTTPFlow, exc: BaseException) -> None:
        logger.error(
            "internal error on %s %s", flow.request.method, flow.request.pretty_url, exc_info=exc
        )
        try:
            ours = route_of(flow) is not None
        except Exception:
            ours = False
        if not ours:
            return
        reply = error_reply(
            500,
            GENERAL_EXCEPTION,
            f"graph-vcr-proxy failed on this request: {type(exc).__name__}: {exc}",
            flow.request.headers,
        )
        answer(flow, reply, by=AnsweredBy.INTERNAL_ERROR)

    if inspect.iscoroutinefunction(hook):

        @functools.wraps(hook)
        async def run_async(self: object, flow: http.HTTPFlow) -> None:
            try:
                await hook(self, flow)
            except Exception as exc:
                fail(flow, exc)

        return run_async  # type: ignore[return-value]

    @functools.wraps(hook)
    def run(self: object, flow: http.HTTPFlow) -> None:
        try:
            hook(self, flow)
        except Exception as exc:
            fail(flow, exc)

    return run  # type: ignore[return-value]
