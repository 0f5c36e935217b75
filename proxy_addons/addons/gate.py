"""Addon: the gate every flow passes first, and its seal after the mode's addons.

One job: nothing leaves that must not. The :class:`Gate` stands at the front of every chain of
ours (before the fault injector and the mode's addon, as mitmproxy's onboarding addon stands
before everything for its own host) and, for each flow, decides from where the request really
goes (the host mitmproxy dials, see ``traffic.py``) what it is: the control endpoint, one of
our operations, other traffic to a Graph host, or another host. It keeps that in
``flow.metadata`` (``flows.TRAFFIC``, read with ``flows.traffic_of``) for every later addon,
and refuses at once:

- a ``Host`` header, ``:authority`` or TLS SNI that disagrees with a Graph target (or names
  Graph for another target): Graph's ``400``;
- (a JSON ``$batch`` holding one of our operations is left to ``batching.py``, which runs
  each of ours through the chain and applies the network policy to the others inside it);
- traffic the network policy blocks (``graph_block_network``, ``graph_allow_hosts``): Graph's
  ``403 BlockedByNetworkPolicy`` for a Graph host, a plain-text ``502`` for any other.

Below HTTP it refuses, in mitmproxy's ``server_connect`` hook, every upstream connection to a
blocked host, and closes raw TCP (non-HTTP bytes in a ``CONNECT`` tunnel) to a blocked host,
or to a Graph host where our operations never go upstream, instead of relaying it.

The :class:`Seal` comes right after the mode's addon (before ``UnreachableUpstream``, which
would try the connection): a flow still unanswered there is about to be sent. One of ours, in
a mode that never sends them, gets a loud ``500`` (a bug in us, never a forward); any flow
whose host, as the mode left it (the recorder's ``--upstream``), is blocked gets the policy's
answer; a ``$batch`` still holding one of ours where ours stay offline gets a loud
``501 BatchNotServed`` (never a forward). Whether our operations may go upstream is the
option ``graph_forward_ours``, which each command sets from its mode (``serving.py``):
record yes, replay only with ``--on-miss forward``, simulate never.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import exceptions, http, tcp
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from proxy_addons.addons import flows
from proxy_addons.addons.batching import holds_ours
from proxy_addons.addons.declared_options import declare
from proxy_addons.addons.gate_options import OPTIONS, read_gate_options
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph.replies import (
    BAD_REQUEST,
    GENERAL_EXCEPTION,
    Reply,
    error_reply,
    reason_phrase,
)
from proxy_addons.graph.routes import graph_host
from proxy_addons.graph.traffic import (
    BATCH_CODE,
    BATCH_STATUS,
    BLOCKED_CODE,
    BLOCKED_OTHER_STATUS,
    BLOCKED_STATUS,
    NetworkPolicy,
    Traffic,
    banner_line,
    batch_message,
    disagreeing_name,
    mismatch_message,
)
from proxy_addons.options.proxy import NETWORK_POLICY

logger = logging.getLogger(__name__)

RAW_TCP_TO_GRAPH = (
    "graph-vcr-proxy never relays raw TCP to a Graph host where its operations stay offline"
)


class _Options:
    """The gate's options as both addons read them, parsed once per change."""

    def __init__(self) -> None:
        self.policy = NetworkPolicy()
        self.forward_ours = False

    def configure(self, updated: set[str]) -> None:
        if not set(OPTIONS) & updated:
            return
        try:
            self.policy, self.forward_ours = read_gate_options()
        except ValueError as exc:
            raise exceptions.OptionsError(str(exc)) from None

    def blocked_reply(self, flow: http.HTTPFlow, host: str) -> Reply:
        """The policy's answer to a request for ``host``: Graph's error for a Graph host or
        one of our flows, plain text naming the policy and the host for any other."""
        request = flow.request
        message = f"{self.policy.refusal(host)}: {request.method} {request.pretty_url}"
        logger.warning("blocked: %s", message)
        if graph_host(host) or flows.traffic_of(flow) in (Traffic.OURS, Traffic.GRAPH):
            return error_reply(BLOCKED_STATUS, BLOCKED_CODE, message, request.headers)
        return Reply(
            BLOCKED_OTHER_STATUS,
            (("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")),
            (message + "\n").encode(),
            reason_phrase(BLOCKED_OTHER_STATUS),
        )


class _WithGateOptions:
    """The gate's options, declared and read the same way by the Gate and the Seal."""

    def __init__(self) -> None:
        self.options = _Options()

    def load(self, loader: Loader) -> None:
        declare(loader, NETWORK_POLICY)

    def configure(self, updated: set[str]) -> None:
        self.options.configure(updated)


class Gate(_WithGateOptions):
    def banner(self) -> str:
        """The start-up banner's line stating the network policy."""
        return banner_line(self.options.policy)

    @flows.guarded
    def request(self, flow: http.HTTPFlow) -> None:
        kind = flows.traffic_of(flow)
        if flow.response is not None or flow.error is not None:
            return  # answered before us (mitmproxy's own page for mitm.it)
        target = flows.target_of(flow)
        name = disagreeing_name(target)
        if name is not None:
            reply = error_reply(
                400, BAD_REQUEST, mismatch_message(target, name), flow.request.headers
            )
            logger.warning("refused: %s", mismatch_message(target, name))
            flows.answer(flow, reply, by=AnsweredBy.CHECK)
            return
        if kind is Traffic.CONTROL or kind is Traffic.OURS:
            return  # the control endpoint's; the mode's addons (and the seal after them)
        if kind is Traffic.GRAPH and holds_ours(flow) is not None:
            return  # a $batch holding ours: served by batching.py, its others by the policy
        if not self.options.policy.allows(flow.request.host):
            reply = self.options.blocked_reply(flow, flow.request.host)
            flows.answer(flow, reply, by=AnsweredBy.NETWORK_POLICY)

    # --- below HTTP -----------------------------------------------------------------------

    def server_connect(self, data: ServerConnectionHookData) -> None:
        """Refuse every upstream connection to a blocked host, whatever asked for it."""
        try:
            address = data.server.address
            if address and not self.options.policy.allows(address[0]):
                data.server.error = self.options.policy.refusal(address[0])
                logger.warning("refused a connection: %s", data.server.error)
        except BaseException as exc:  # fail closed: a gate that cannot tell keeps it shut
            data.server.error = f"graph-vcr-proxy: internal error in the gate: {exc!r}"
            logger.exception("internal error in the gate's server_connect")

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        """Raw TCP to a blocked host (or to a Graph host here): its connection never opens,
        so the client's connection is closed."""
        reason = self._raw_refusal(flow)
        if reason is not None:
            flow.server_conn.error = reason
            logger.warning("closed raw TCP to %s: %s", flow.server_conn.address, reason)

    def tcp_message(self, flow: tcp.TCPFlow) -> None:
        """Should a refused raw connection be open anyway, relay nothing over it."""
        if flow.messages and self._raw_refusal(flow) is not None:
            flow.messages[-1].content = b""

    def _raw_refusal(self, flow: tcp.TCPFlow) -> str | None:
        try:
            address = flow.server_conn.address
            if not address:
                return None
            host = address[0]
            if not self.options.policy.allows(host):
                return self.options.policy.refusal(host)
            if graph_host(host) and not self.options.forward_ours:
                return RAW_TCP_TO_GRAPH
            return None
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # fail closed
            logger.exception("internal error in the gate's raw TCP check")
            return f"graph-vcr-proxy: internal error in the gate: {exc!r}"


class Seal(_WithGateOptions):
    """The gate's other end: what nobody answered is checked once more before it leaves."""

    @flows.guarded
    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.error is not None:
            return
        kind = flows.traffic_of(flow)
        request = flow.request
        if kind is Traffic.OURS and not self.options.forward_ours:
            message = (
                "graph-vcr-proxy: no addon answered this request, and this mode never sends "
                "its operations upstream"
            )
            logger.error("%s: %s %s", message, request.method, request.pretty_url)
            reply = error_reply(500, GENERAL_EXCEPTION, message, request.headers)
            flows.answer(flow, reply, by=AnsweredBy.INTERNAL_ERROR)
        elif kind is Traffic.GRAPH and not self.options.forward_ours and self._holds_ours(flow):
            return
        elif kind is Traffic.CONTROL:
            message = "Nothing serves the control endpoint on this proxy."
            flows.answer(
                flow, error_reply(404, "NotFound", message, request.headers), by=AnsweredBy.CHECK
            )
        elif not self.options.policy.allows(request.host):
            reply = self.options.blocked_reply(flow, request.host)
            flows.answer(flow, reply, by=AnsweredBy.NETWORK_POLICY)

    def _holds_ours(self, flow: http.HTTPFlow) -> bool:
        """Refuse a $batch that still holds one of our operations as it is about to leave
        (``batching.py`` sends on only what may go): a bug in us, never a forward."""
        request = flow.request
        if holds_ours(flow, as_sent=False) is None:
            return False
        message = batch_message(request.method, request.pretty_url)
        logger.error("refused: %s", message)
        reply = error_reply(BATCH_STATUS, BATCH_CODE, message, request.headers)
        flows.answer(flow, reply, by=AnsweredBy.INTERNAL_ERROR)
        return True
