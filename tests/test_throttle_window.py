"""An enforced throttle's window: the effect with state, on the caller's clock."""

from __future__ import annotations

from proxy_addons.graph.faults import GraphError
from proxy_addons.graph.throttle_window import ThrottleWindow

THROTTLE = GraphError(429, "TooManyRequests", "Please retry again later.", 10)


def test_a_window_is_closed_until_the_rule_answers_and_then_counts_down_in_whole_seconds():
    window = ThrottleWindow(THROTTLE)
    assert window.left(0.0) is None
    window.open(100.0)
    assert window.left(103.2) == 7.0
    assert window.left(110.0) is None


def test_a_fractional_retry_after_counts_down_in_milliseconds():
    window = ThrottleWindow(GraphError(429, "TooManyRequests", "x", 2.5))
    window.open(0.0)
    assert window.left(1.2) == 1.3


def test_the_reply_inside_the_window_says_what_is_left():
    window = ThrottleWindow(THROTTLE)
    window.open(0.0)
    reply = window.reply({"client-request-id": "c"}, window.left(4.5) or 0)
    assert (reply.status, reply.header("Retry-After")) == (429, "6")


def test_an_error_without_retry_after_opens_no_window():
    window = ThrottleWindow(GraphError(429, "TooManyRequests", "x"))
    window.open(0.0)
    assert window.left(0.0) is None
