"""Requests that stall: the server that never answers, and the answer that trickles in.

The failures that find a client's missing timeout are not errors but silence. ``hang``
accepts the request and answers nothing until the client gives up and closes its connection
(as Toxiproxy's ``timeout`` toxic does); the proxy ends the flow itself after ``max_seconds``,
so a client without any timeout cannot make it hold flows for ever. ``slow-body`` sends the
real answer's status and headers at once and its body in ``chunks`` pieces spread over
``ms`` milliseconds (WireMock's "chunked dribble delay"), which a client that times out only
the connect or the first byte never notices. These are the effects' parameters; the addon
``addons/stalls.py`` carries them out. Nothing here knows mitmproxy.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HANG_SECONDS = 30.0
MAX_HANG_SECONDS = 3600.0
DEFAULT_SLOW_BODY_MS = 1000
DEFAULT_CHUNKS = 10
MAX_CHUNKS = 1000


@dataclass(frozen=True)
class Hang:
    """Answer nothing until the client closes its connection, or ``max_seconds`` pass (then
    the proxy closes it)."""

    max_seconds: float = DEFAULT_HANG_SECONDS


@dataclass(frozen=True)
class SlowBody:
    """Send the real answer's body in ``chunks`` pieces over ``ms`` milliseconds."""

    ms: int = DEFAULT_SLOW_BODY_MS
    chunks: int = DEFAULT_CHUNKS

    def pieces(self, body: bytes) -> list[bytes]:
        """``body`` cut into at most ``chunks`` pieces of nearly equal size, none empty."""
        count = max(1, min(self.chunks, len(body)))
        size, extra = divmod(len(body), count)
        cuts, start = [], 0
        for index in range(count):
            end = start + size + (1 if index < extra else 0)
            cuts.append(body[start:end])
            start = end
        return cuts

    def gap_seconds(self) -> float:
        """The wait before each piece: the first piece too waits, so the last arrives at
        ``ms``."""
        return self.ms / 1000 / max(1, self.chunks)
