"""The gate's options (``options/proxy.py``'s ``NETWORK_POLICY``) as addons read and set them:
the gate and its seal (``gate.py``) and batching (``batching.py``) read them through one
function, and the recorder lets our operations go upstream through another."""

from __future__ import annotations

from typing import NamedTuple

from mitmproxy import ctx

from proxy_addons.common.option_table import declared
from proxy_addons.graph.traffic import NetworkPolicy
from proxy_addons.options.proxy import NETWORK_POLICY

OPTIONS = tuple(row.name for row in declared(NETWORK_POLICY))


class GateOptions(NamedTuple):
    policy: NetworkPolicy
    forward_ours: bool  # our operations may go upstream


def read_gate_options() -> GateOptions:
    """The network policy and ``graph_forward_ours`` as set now; ValueError for an allowed
    host that is neither a name nor an address."""
    opts = ctx.options
    policy = NetworkPolicy.of(opts.graph_block_network, opts.graph_allow_hosts)
    return GateOptions(policy, bool(opts.graph_forward_ours))


def ensure_forwarding_ours() -> None:
    """Let our operations go upstream (the gate's ``graph_forward_ours``) where the recorder
    runs: ``serving.py`` sets it for ``record``, and this does the same for a recorder loaded
    as a ``mitmdump -s`` script beside the gate, which would otherwise keep a ``$batch``
    holding our calls offline. The option is absent where no gate is loaded."""
    if "graph_forward_ours" in ctx.options and not ctx.options.graph_forward_ours:
        ctx.options.update(graph_forward_ours=True)
