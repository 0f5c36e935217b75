"""The fault rules as every chain of ours runs them, for unit tests: Graph's request checks,
then the ETag tracker, then the rules (``chain_order.Stage``), each hook run in that order as
mitmproxy runs a chain (an async one awaited)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from helpers import graph_flow
from mitmproxy import http
from mitmproxy.test import taddons

from proxy_addons.addons.etag_tracker import ETagTracker
from proxy_addons.addons.fault_injection import FaultInjector
from proxy_addons.addons.flows import to_response
from proxy_addons.addons.request_checks import RequestChecks
from proxy_addons.cassette import examples
from proxy_addons.graph.replies import json_reply

ME = examples.ME_URL


class FakeTime:
    """A clock the test moves, and a sleep that only records how long it was asked to wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def run_hook(addons: Sequence[Any], name: str, flow: http.HTTPFlow) -> http.HTTPFlow:
    """Hook ``name`` of each addon that has it, in order, as mitmproxy's chain calls them."""

    async def run() -> None:
        for addon in addons:
            hook = getattr(addon, name, None)
            if hook is not None:
                result = hook(flow)
                if inspect.isawaitable(result):
                    await result

    asyncio.run(run())
    return flow


def chain_of(addon: FaultInjector) -> list[Any]:
    return getattr(addon, "chain", None) or [RequestChecks(), ETagTracker(), addon]


def send(addon: FaultInjector, flow: http.HTTPFlow) -> http.HTTPFlow:
    """The flow's request through the checks, the tracker and ``addon``'s rules."""
    return run_hook(chain_of(addon), "request", flow)


def respond(addon: FaultInjector, flow: http.HTTPFlow) -> http.HTTPFlow:
    """The flow's response through the same chain."""
    return run_hook(chain_of(addon), "response", flow)


def make_flow(
    method: str = "PUT", url: str = ME, body: str = "", headers: dict[str, str] | None = None
) -> http.HTTPFlow:
    """A documented PUT by default; a body method gets the documented body unless given one,
    and Content-Type: application/json unless ``headers`` replace it."""
    if method in ("PUT", "PATCH", "POST"):
        body = body or examples.REQUEST_BODY
        headers = {"Content-Type": "application/json", **(headers or {})}
    return graph_flow(method, url, body, headers)


def answer_as_graph(flow: http.HTTPFlow, status: int, payload: Any = None, **headers: str) -> None:
    """What replay, the emulator or upstream would have answered, before the response hook."""
    if flow.response is None and flow.error is None:
        reply = json_reply(status, payload if payload is not None else {}, flow.request.headers)
        flow.response = to_response(reply)
        for name, value in headers.items():
            flow.response.headers[name] = value
        if payload is None:
            flow.response.content = b""


@contextmanager
def fault_chain(time_: FakeTime) -> Iterator[FaultInjector]:
    """A FaultInjector on ``time_`` with the checks and the tracker before it, in a mitmproxy
    test context; ``configure_with(*specs, **options)`` sets its rules, ``tracker`` is the
    tracker and ``tctx`` the context."""
    addon = FaultInjector(clock=time_.clock, sleep=time_.sleep)
    tracker = ETagTracker()
    with taddons.context(tracker, addon) as tctx:

        def configure(*specs: str, **options: Any) -> FaultInjector:
            tctx.configure(addon, graph_faults=list(specs), **options)
            return addon

        addon.configure_with = configure  # type: ignore[attr-defined]
        addon.tctx = tctx  # type: ignore[attr-defined]
        addon.tracker = tracker  # type: ignore[attr-defined]
        addon.chain = [RequestChecks(), tracker, addon]  # type: ignore[attr-defined]
        yield addon
