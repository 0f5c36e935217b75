"""The proxy the pytest plugin runs: one child for a whole test run, switched per test.

The plugin starts it once (``python -m proxy_addons.child --listen-port 0 --confdir DIR``)
and, before each test, sends one request to the control endpoint::

    PUT http://graph-vcr-proxy.control/session   {"mode": "replay", "args": ["--cassette", ...]}

``mode`` is ``replay``, ``record`` or ``simulate`` and ``args`` are that mode's command-line
arguments, parsed by the CLI's own parser and turned into addons and options by the CLI's
own mode functions, so a test's proxy behaves exactly like ``graph-vcr-proxy MODE ARGS``.
Switching retires the previous test's mode addon (its ``done`` hook closes cassettes and
releases state-file locks), puts every option back to its default and sets the new ones
(only those that differ: most tests of a run look alike), resets the fault injector (which
stays, and keeps serving ``/faults``: its rules start counting afresh and it forgets every
ETag) and adds a *fresh* instance of the mode's addon. A fresh instance is what makes
everything a test could leave behind new for the next one: replay positions, the emulator's
appointments, the recorder's state. The journal (``GET /calls``, see ``journal.py``) starts
empty with each session.

Until the first session, and after a refused one, Graph requests get a 503 of ours: with no
addon to answer them they would otherwise go to the real Graph.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

from mitmproxy import ctx, exceptions, hooks, http
from mitmproxy.addonmanager import Loader

from proxy_addons import cli, control, flows, serving
from proxy_addons.answered_by import AnsweredBy, answered
from proxy_addons.fault_injection import OPTIONS as FAULT_OPTIONS
from proxy_addons.fault_injection import FaultInjector
from proxy_addons.gate import Gate
from proxy_addons.graph import error_reply
from proxy_addons.journal import Call, parsed_body
from proxy_addons.usage import USAGE_ERROR, UsageError

logger = logging.getLogger(__name__)


class SessionError(ValueError):
    """A session the proxy refuses; ``str()`` is the one line the test fails with."""


class Sent(NamedTuple):
    """A Graph request as it arrived, before any addon redirects or rewrites it."""

    flow: http.HTTPFlow
    method: str
    url: str
    operation: str | None
    body: Any


def call_of(sent: Sent) -> Call:
    """The journal entry of a request, read once every addon has had its say."""
    flow = sent.flow
    response = flow.response
    by = answered(flows.answered_by(flow), response is not None)
    return Call(
        method=sent.method,
        url=sent.url,
        operation=sent.operation,
        body=sent.body,
        status=response.status_code if response is not None else None,
        answered_by=by,
        fault=flow.metadata.get(flows.FAULT),
        miss=error_message(response) if by is AnsweredBy.MISS and response else None,
    )


def error_message(response: http.Response) -> str | None:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return None


def session_request(data: Any) -> tuple[str, list[str]]:
    """The mode and arguments of a ``PUT /session`` body."""
    if not isinstance(data, dict) or not isinstance(data.get("mode"), str):
        raise SessionError('expected a JSON object {"mode": MODE, "args": [ARG, ...]}')
    args = data.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise SessionError("args must be a list of strings")
    if data["mode"] not in serving.MODES:
        raise SessionError(f"mode must be one of {', '.join(serving.MODES)}, not {data['mode']!r}")
    return data["mode"], args


class Session:
    def __init__(self) -> None:
        # The fault injector stays for the whole run (and serves /faults); mitmproxy runs it
        # right after this addon, and before the mode's addon, as every mode orders them.
        self.faults = FaultInjector()
        self.addons = [self.faults]
        self.active: list[Any] = []  # this test's mode addon
        self.journal: list[Sent] = []
        self.declared: set[type] = set()
        self.option_names: set[str] = set(FAULT_OPTIONS)  # every option we set per session

    @functools.cached_property
    def parser(self) -> cli.Parser:
        return cli.build_parser()

    # --- switching ------------------------------------------------------------------------

    def apply(self, request: Any) -> dict[str, Any]:
        mode, argv = session_request(request)
        try:
            args = self.parser.parse_args([mode, *argv])
        except UsageError as exc:
            raise SessionError(str(exc)) from None
        if getattr(args, "reverse", False):
            raise SessionError("--reverse makes a different server, not a proxy setting")
        addons, settings = serving.MODES[mode](args)
        self._retire()
        self._declare(addons)
        wanted = {name: ctx.options.default(name) for name in self.option_names}
        wanted |= {**serving.fault_settings(args), **settings}
        changed = {k: v for k, v in wanted.items() if getattr(ctx.options, k) != v}
        try:
            if changed:
                ctx.options.update(**changed)
            self.faults.reset()
            self._start(addons)
        except (exceptions.OptionsError, TypeError) as exc:  # refused by an addon, or mistyped
            raise SessionError(str(exc)) from None
        return {"mode": mode, "addons": [type(a).__name__ for a in self.active]}

    def _retire(self) -> None:
        for addon in reversed(self.active):
            ctx.master.addons.remove(addon)
        self.active = []
        self.journal = []

    def _declare(self, addons: Sequence[Any]) -> None:
        """Declare the options of addon classes not seen yet, so they can be set (and reset)
        before a fresh instance is added."""
        before = set(ctx.options.keys())
        loader = Loader(ctx.master)
        for addon in addons:
            if type(addon) not in self.declared:
                if hasattr(addon, "load"):  # an addon may declare no options at all
                    addon.load(loader)
                self.declared.add(type(addon))
        self.option_names |= set(ctx.options.keys()) - before

    def _start(self, addons: Sequence[Any]) -> None:
        """Add, configure and start ``addons``; if one refuses its options, none stays."""
        manager = ctx.master.addons
        everything = set(ctx.options.keys())
        started: list[Any] = []
        try:
            for addon in addons:
                manager.add(addon)
                started.append(addon)
                # Added at run time, an addon gets no configure or running event by itself.
                manager.invoke_addon_sync(addon, hooks.ConfigureHook(everything))
                manager.invoke_addon_sync(addon, hooks.RunningHook())
        except BaseException:
            for addon in reversed(started):
                manager.remove(addon)
            raise
        self.active = started

    # --- the journal ----------------------------------------------------------------------

    def calls(self) -> list[dict[str, Any]]:
        return [call_of(sent).to_json() for sent in self.journal]

    # --- hooks ----------------------------------------------------------------------------

    @flows.guarded
    def request(self, flow: http.HTTPFlow) -> None:
        route = flows.route_of(flow)
        if route is None:  # the control endpoint's host is none of Graph's
            if control.is_control_request(flow):
                control.handle(flow, self.faults, self)
            return
        request = flow.request
        if not self.active:
            reply = error_reply(
                503,
                "NoSession",
                "graph-vcr-proxy: no test session is configured on this proxy",
                request.headers,
            )
            flows.answer(flow, reply, by=AnsweredBy.CHECK)
            return
        operation = route.operation.value if route.operation else None
        body = parsed_body(flows.body_of(flow))
        self.journal.append(Sent(flow, request.method, request.pretty_url, operation, body))

    def running(self) -> None:
        # The plugin holds the only write end of our stdin: EOF means it has gone (even by
        # kill -9), and a proxy that nobody can switch any more must not outlive it.
        with contextlib.suppress(OSError, ValueError, AttributeError, NotImplementedError):
            asyncio.get_running_loop().add_reader(sys.stdin.fileno(), self._stdin_readable)

    def _stdin_readable(self) -> None:
        if not os.read(sys.stdin.fileno(), 4096):
            asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
            ctx.master.shutdown()


def mitmproxy_base() -> list[Any]:
    """The command's mitmproxy addons without the ``mitm.it`` page (and flask): a test's
    client trusts the CA the plugin hands it."""
    return serving.mitmproxy_base(onboarding=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.Parser(
        prog="graph-vcr-proxy session",
        description="The pytest plugin's proxy: switched per test over the control endpoint.",
    )
    cli.add_listen_arguments(parser)
    try:
        args = parser.parse_args(argv)
        cli.configure_logging(args.verbose)
        if not args.verbose:  # what each test's addons announce would only be noise
            cli.logger.setLevel(logging.WARNING)
        # The gate first, as in every chain of ours; each session sets its options.
        return asyncio.run(serving.serve([Gate(), Session()], {}, args, mitmproxy_base))
    except UsageError as exc:
        print(f"graph-vcr-proxy: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130
