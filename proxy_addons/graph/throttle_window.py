"""The throttle window: an effect with state, for ``throttle:enforce=true``.

Graph's 429 says when to come back (Retry-After); an enforced throttle holds the client to it.
Once the rule has fired, the window stays open for Retry-After seconds, and a request the rule
selects inside it is throttled again, told what is left of the wait, whatever the rule's
window of counts (``times``, ``nth``) or rate would say. Pure: the clock is the caller's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from proxy_addons.graph.faults import GraphError
from proxy_addons.graph.replies import Reply


class ThrottleWindow:
    def __init__(self, error: GraphError) -> None:
        self.error = error
        self.until = -math.inf

    def open(self, now: float) -> None:
        """The rule has just answered with its error: the client must wait Retry-After."""
        if self.error.retry_after is not None:
            self.until = now + self.error.retry_after

    def left(self, now: float) -> float | None:
        """What is left of the wait at ``now``, rounded up the way the rule wrote Retry-After
        (whole seconds, or milliseconds for a fractional one); None once it is over."""
        if now >= self.until:
            return None
        seconds = self.until - now
        whole = self.error.retry_after is None or float(self.error.retry_after).is_integer()
        return float(math.ceil(seconds)) if whole else math.ceil(seconds * 1000) / 1000

    def reply(self, request_headers: Mapping[str, str], left: float) -> Reply:
        """The rule's error again, with Retry-After saying what is ``left``."""
        return self.error.reply(request_headers, retry_after=left)
