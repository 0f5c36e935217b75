"""mitmproxy's ``connection_strategy``, which every addon that answers Graph calls itself
needs lazy."""

from __future__ import annotations

from mitmproxy import ctx


def ensure_lazy_connections() -> None:
    """Switch mitmproxy to ``connection_strategy=lazy`` if it isn't already.

    Every addon that answers Graph calls itself needs it: with the default (eager), mitmproxy
    dials the real host when the client sends CONNECT, which fails offline (the client gets a
    502) and contacts Graph even when --upstream points elsewhere. The option belongs to the
    proxyserver addon, so it is absent where that addon isn't loaded (addon unit tests).
    """
    if "connection_strategy" in ctx.options and ctx.options.connection_strategy != "lazy":
        ctx.options.update(connection_strategy="lazy")
