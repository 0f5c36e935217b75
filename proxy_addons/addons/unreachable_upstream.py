"""Addon: Graph's error envelope, not mitmproxy's HTML page, for a Graph call that can't be
forwarded because its upstream can't be reached.

When ``record`` (or ``replay --on-miss forward``) forwards one of our Graph calls and the host
it goes to refuses the connection, doesn't resolve or doesn't answer, mitmproxy answers the
client itself: an HTML 502 sent from its protocol layer after the ``error`` hook, where no
addon can replace it (mitmproxy 11 and 12 alike). A Graph client expects Graph's JSON. So
this addon, loaded after the ones that answer or redirect flows, opens the connection a
forward is about to need itself, in its async ``request`` hook: if that fails, the flow is
answered with Graph's ``502 UpstreamUnreachable`` naming the upstream and the reason, and
mitmproxy never dials. Only a forward that will need a new connection is tried: while a
client connection holds an open connection to that upstream (mitmproxy's keep-alive reuse),
its requests go on untried, so the recording hot path pays nothing. Other traffic keeps
mitmproxy's own behaviour. ``replay.py`` and ``record.py`` bring it with them as scripts; loaded
beside them as well, in any order, it is still one addon, at its place after them
(``script_chain.py``)::

    mitmdump -s proxy_addons/record.py -s proxy_addons/unreachable_upstream.py \\
        --set graph_cassette=rec.yaml --set graph_upstream=http://127.0.0.1:9000
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

from mitmproxy import http
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from proxy_addons.addons import flows
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph.replies import Reply, error_reply

logger = logging.getLogger(__name__)

UNREACHABLE_STATUS = 502  # not retried by Graph's retry handlers (429, 503, 504): a setup fault
UNREACHABLE_CODE = "UpstreamUnreachable"
# mitmproxy itself waits for a connection as long as the OS does; a client should not.
CONNECT_TIMEOUT = 10.0

Address = tuple[str, int]
Connect = Callable[[Address, float], Awaitable[str | None]]


def unreachable_reply(upstream: str, reason: str, request_headers: Mapping[str, str]) -> Reply:
    """Graph's envelope for a forward that found nobody at ``upstream``."""
    return error_reply(
        UNREACHABLE_STATUS,
        UNREACHABLE_CODE,
        f"graph-vcr-proxy could not forward this request: the upstream {upstream} is "
        f"unreachable ({reason}).",
        request_headers,
    )


async def connect(address: Address, timeout: float) -> str | None:
    """None when a TCP connection to ``address`` opens within ``timeout``, else why not; the
    same call mitmproxy makes, so the same names resolve and the same errors come back."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(*address), timeout)
    except TimeoutError:
        return f"no connection within {timeout:g} s"
    except OSError as exc:
        return str(exc) or type(exc).__name__
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


def upstream_url(request: http.Request) -> str:
    host = f"[{request.host}]" if ":" in request.host else request.host
    return f"{request.scheme}://{host}:{request.port}"


class UnreachableUpstream:
    def __init__(self, try_connect: Connect = connect, timeout: float = CONNECT_TIMEOUT) -> None:
        self.try_connect = try_connect
        self.timeout = timeout
        # Open server connections per (client connection, server address): mitmproxy reuses
        # those for the client's next requests, so a forward over one needs no trial.
        self._open: Counter[tuple[str, Address]] = Counter()

    def server_connected(self, data: ServerConnectionHookData) -> None:
        if data.server.address:
            self._open[(data.client.id, data.server.address)] += 1

    def server_disconnected(self, data: ServerConnectionHookData) -> None:
        key = (data.client.id, data.server.address)
        if self._open[key] <= 1:
            self._open.pop(key, None)
        else:
            self._open[key] -= 1

    @flows.guarded
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.error is not None or flows.route_of(flow) is None:
            return  # answered (or killed) already, or not ours
        if flow.server_conn.via is not None:
            return  # behind an upstream proxy, which is what mitmproxy dials
        request = flow.request
        address = (request.host, request.port)
        if self._open[(flow.client_conn.id, address)]:
            return
        reason = await self.try_connect(address, self.timeout)
        if reason is None or flow.response is not None or flow.error is not None:
            return
        upstream = upstream_url(request)
        logger.warning(
            "upstream unreachable: %s %s via %s: %s",
            request.method,
            request.pretty_url,
            upstream,
            reason,
        )
        reply = unreachable_reply(upstream, reason, request.headers)
        flows.answer(flow, reply, by=AnsweredBy.UNREACHABLE)
