"""Addon: inject the faults of ``faults.py`` into our Graph routes, in any mode.

Load it alone with::

    mitmdump -s proxy_addons/fault_injection.py --set graph_faults=throttle:times=1

One job: the fault rules. Each rule is a selector (which requests), its conditions (a stale
ETag, a token Graph would refuse: ``fault_conditions.py``, judged from what the flow carries;
the ETag tracker, ``etag_tracker.py``, puts the known ETag there) and an effect, applied in
:meth:`FaultInjector._inject`. Graph's request checks (``request_checks.py``) have answered a
malformed request before the rules see it.

Rules are tried in the order given. Latency rules delay the request (in an async hook, so
other flows keep moving) and evaluation goes on; the first other rule that fires decides the
flow: an error answer or a reset right away in the ``request`` hook (so replay, the emulator
and the recorder never see the flow), or, for ``malformed``/``empty``, a mark that the
``response`` hook honours once the real answer is known (Graph's, not one the proxy gives
as itself: a cassette miss stays a miss). An enforced throttle keeps a window
(``throttle_window.py``) in which a client that comes back early is throttled again. Rules can
be changed while the proxy runs, by the ``graph.faults.*`` commands or the HTTP control
endpoint (``control_rules.py``, served by ``control_endpoint.py``, which this addon offers
``/faults`` to); a rule that survives a change keeps its counters.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from random import Random
from typing import Any

from mitmproxy import command, connection, ctx, exceptions, http
from mitmproxy.addonmanager import Loader

from proxy_addons.addons import control_rules, flows
from proxy_addons.addons.batching import holds_ours
from proxy_addons.addons.connection_strategy import ensure_lazy_connections
from proxy_addons.addons.declared_options import declare
from proxy_addons.addons.rate_limiting import RateLimiting
from proxy_addons.addons.stalls import Stalls
from proxy_addons.common.answered_by import GRAPHS, AnsweredBy, answered
from proxy_addons.common.option_table import declared
from proxy_addons.graph.fault_conditions import Facts, Stale, reasons
from proxy_addons.graph.faults import (
    DELAYS,
    BrokenBody,
    FaultSpecError,
    GraphError,
    Reset,
    Rule,
    load_rules_file,
    parse_spec,
    seeded_random,
)
from proxy_addons.graph.rate_limits import RateLimit
from proxy_addons.graph.replies import Reply
from proxy_addons.graph.stalls import Hang, SlowBody
from proxy_addons.graph.throttle_window import ThrottleWindow
from proxy_addons.options.proxy import FAULTS

logger = logging.getLogger(__name__)

# flows.FAULTS_INJECTED lists every kind injected into a flow, in order (a latency and then an
# error is two); flows.FAULT holds the one that decided the answer, or "latency" when only a
# delay happened.

OPTIONS = tuple(row.name for row in declared(FAULTS))
TRACKER_NAME = "etagtracker"  # mitmproxy's name for the ETagTracker addon


class RuleState:
    """A rule with what it has seen: its counters, random stream and, for an enforced
    throttle, its window (``throttle_window.py``).

    (A plain class: ``mitmdump -s`` runs this file as a module that dataclasses can't see.)
    """

    def __init__(self, rule: Rule, rng: Random) -> None:
        self.rule = rule
        self.rng = rng
        self.matched = 0
        self.injected = 0
        self.enforced = 0
        self.window = (
            ThrottleWindow(rule.effect)
            if rule.enforce and isinstance(rule.effect, GraphError)
            else None
        )

    def picks(self) -> bool:
        """Count a request that reached the rule (selected, conditions met); whether it is in
        the rule's window of counts and wins the rule's draw."""
        self.matched += 1
        select = self.rule.select
        return select.in_window(self.matched) and select.draw(self.rng)

    def as_dict(self) -> dict[str, Any]:
        return {
            "spec": self.rule.text,
            "kind": str(self.rule.kind),
            "matched": self.matched,
            "injected": self.injected + self.enforced,
        }


def _parse_named(spec: str) -> Rule:
    """A spec from an option or a command; an error names the spec it is about."""
    try:
        return parse_spec(spec)
    except FaultSpecError as exc:
        raise FaultSpecError(f"fault {spec!r}: {exc}") from None


def _mark(flow: http.HTTPFlow, kind: str) -> None:
    flow.metadata.setdefault(flows.FAULTS_INJECTED, []).append(kind)
    flow.metadata[flows.FAULT] = kind


class FaultInjector:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.states: list[RuleState] = []
        # The BrokenBody each flow's response must get, and its rule, beside the flow (not in
        # metadata, which mitmproxy saves with the flow and which holds plain values only).
        self._breaks: weakref.WeakKeyDictionary[http.HTTPFlow, tuple[RuleState, BrokenBody]] = (
            weakref.WeakKeyDictionary()
        )
        # traffic shapes: ratelimit budgets and headers, hang and slow-body
        self.rate_limits = RateLimiting()
        self.stalls = Stalls()

    # --- options and commands -------------------------------------------------------------

    def load(self, loader: Loader) -> None:
        declare(loader, FAULTS)

    def configure(self, updated: set[str]) -> None:
        if not set(OPTIONS) & updated:
            return
        try:
            rules = self._rules_from_options()
        except FaultSpecError as exc:
            raise exceptions.OptionsError(str(exc)) from None
        fresh = "graph_fault_seed" in updated
        self._install(rules, keep_state=not fresh)
        if rules:
            logger.info("fault rules: %s", "; ".join(r.text for r in rules))
        stale = [r.text for r in rules if Stale() in r.conditions]
        if stale and ctx.master.addons.get(TRACKER_NAME) is None:
            logger.warning(
                "%s: no ETag tracker in this chain (proxy_addons/addons/etag_tracker.py, "
                "before the fault rules), so no ETag is known and the rule never fires",
                ", ".join(stale),
            )

    def running(self) -> None:
        # It answers Graph calls itself: alone in mitmdump, an eager connection would dial
        # (or, offline, fail to reach) the real host before a fault could answer.
        ensure_lazy_connections()

    def _rules_from_options(self) -> list[Rule]:
        rules = (
            load_rules_file(ctx.options.graph_faults_file) if ctx.options.graph_faults_file else []
        )
        return rules + [_parse_named(spec) for spec in ctx.options.graph_faults]

    def _install(self, rules: list[Rule], *, keep_state: bool) -> None:
        """Make ``rules`` current; a rule that was already there keeps its counters."""
        old: dict[str, list[RuleState]] = {}
        if keep_state:
            for state in self.states:
                old.setdefault(state.rule.text, []).append(state)
        new_random = seeded_random(ctx.options.graph_fault_seed)
        self.states = [
            old[rule.text].pop(0) if old.get(rule.text) else RuleState(rule, new_random(i, rule))
            for i, rule in enumerate(rules)
        ]

    def reset(self) -> None:
        """Keep the rules but forget what they have seen (counters, random streams, throttle
        windows): how the pytest plugin's proxy starts each test (with the ETag tracker's
        ``reset``)."""
        self._install([state.rule for state in self.states], keep_state=False)

    def rule_table(self) -> list[dict[str, Any]]:
        table = [state.as_dict() for state in self.states]
        for row, state in zip(table, self.states, strict=True):
            if isinstance(state.rule.effect, Hang):
                row["held"] = self.stalls.held(state)  # flows a hang holds right now
        return table

    @staticmethod
    def _checked(specs: Sequence[str]) -> list[str]:
        for spec in specs:
            _parse_named(spec)
        return list(specs)

    def add_specs(self, specs: Sequence[str]) -> None:
        """Append rules (raises FaultSpecError, changing nothing, if one is bad)."""
        ctx.options.update(graph_faults=[*ctx.options.graph_faults, *self._checked(specs)])

    def set_specs(self, specs: Sequence[str]) -> None:
        """Replace every rule, those from the faults file included."""
        ctx.options.update(graph_faults=self._checked(specs), graph_faults_file="")

    def clear(self) -> None:
        ctx.options.update(graph_faults=[], graph_faults_file="")

    @command.command("graph.faults.list")
    def list_command(self) -> Sequence[str]:
        """The fault rules in force, with how often each matched and fired."""
        return [
            f"{s['spec']}  (matched {s['matched']}, injected {s['injected']})"
            for s in self.rule_table()
        ]

    @command.command("graph.faults.add")
    def add_command(self, *specs: str) -> None:
        """Add fault rules after the current ones (one argument per spec)."""
        try:
            self.add_specs(specs)
        except (FaultSpecError, exceptions.OptionsError) as exc:
            raise exceptions.CommandError(str(exc)) from None

    @command.command("graph.faults.set")
    def set_command(self, *specs: str) -> None:
        """Replace all fault rules."""
        try:
            self.set_specs(specs)
        except (FaultSpecError, exceptions.OptionsError) as exc:
            raise exceptions.CommandError(str(exc)) from None

    @command.command("graph.faults.clear")
    def clear_command(self) -> None:
        """Remove all fault rules."""
        self.clear()

    def control_routes(self) -> dict[str, control_rules.Handler]:
        """``/faults`` on the control endpoint (served by ``control_endpoint.py``)."""
        return {
            control_rules.FAULTS_PATH: functools.partial(control_rules.answer_faults, faults=self)
        }

    # --- hooks ----------------------------------------------------------------------------

    @flows.guarded
    async def request(self, flow: http.HTTPFlow) -> None:
        if not self.states:
            return
        route = flows.claim(flow)
        if route is None:
            if flow.response is None and flow.error is None and holds_ours(flow) is not None:
                await self._batch_call(flow)
            return
        headers = flow.request.headers
        facts = Facts(route.method, route.operation, headers, flow.metadata.get(flows.KNOWN_ETAG))
        for state in self.states:
            rule = state.rule
            if not rule.select.matches(route.method, route.operation):
                continue
            now = self.clock()
            left = state.window.left(now) if state.window is not None else None
            if state.window is not None and left is not None:
                state.enforced += 1
                _mark(flow, rule.kind)
                flows.answer(flow, state.window.reply(headers, left), by=AnsweredBy.FAULT)
                return
            why = reasons(rule.conditions, facts)
            if why is None or not state.picks():
                continue
            for reason in why:
                logger.info(
                    "%s on %s %s: %s", rule.kind, route.method, flow.request.pretty_url, reason
                )
            if await self._inject(flow, state, now, route.operation):
                return

    async def _batch_call(self, flow: http.HTTPFlow) -> None:
        """The rules for a ``$batch`` call itself (``route=batch``): the first that fires
        fails the whole call; the requests inside it meet the other rules one by one."""
        for state in self.states:
            if not state.rule.select.matches_batch(flow.request.method) or not state.picks():
                continue
            # a batch call costs a ratelimit what an unnamed operation does
            if await self._inject(flow, state, self.clock(), None):
                return

    async def _inject(
        self, flow: http.HTTPFlow, state: RuleState, now: float, operation: str | None
    ) -> bool:
        """Apply the effect of a rule that picked the flow; whether the flow is decided
        (answered, reset, or marked for its response to be broken) or goes on to the next
        rule (after a delay). Each effect kind is applied here, and only here: a new kind is
        one more branch (an effect with state keeps it beside the rule, in RuleState, as the
        throttle's window; one that may still let the flow pass returns False before the
        count below; one applied to the answer is counted when it is, in ``response``)."""
        rule = state.rule
        effect = rule.effect
        over_budget = None
        if isinstance(effect, RateLimit):  # within its budget, the flow goes on
            over_budget = self.rate_limits.spend(state, effect, flow, operation, now)
            if over_budget.allowed:
                return False
        if isinstance(effect, BrokenBody):
            self._breaks[flow] = (state, effect)
            return True
        state.injected += 1
        _mark(flow, rule.kind)
        if isinstance(effect, DELAYS):
            await self.sleep(effect.seconds(state.rng))
            return flow.response is not None or flow.error is not None
        if isinstance(effect, Reset):
            flows.answer(flow, None, by=AnsweredBy.FAULT)
        elif isinstance(effect, Hang):
            await self.stalls.hang(flow, effect, state)
        elif isinstance(effect, SlowBody):
            self.stalls.slow_body(flow, effect)
        elif isinstance(effect, RateLimit):
            assert over_budget is not None
            flows.answer(
                flow, effect.refusal(over_budget, flow.request.headers), by=AnsweredBy.FAULT
            )
        else:
            if state.window is not None:
                state.window.open(now)
            flows.answer(flow, effect.reply(flow.request.headers), by=AnsweredBy.FAULT)
        return True

    def client_disconnected(self, client: connection.Client) -> None:
        self.stalls.client_disconnected(client)

    def done(self) -> None:
        self.stalls.done()

    @flows.guarded
    def response(self, flow: http.HTTPFlow) -> None:
        # The body is broken first: the broken answer is a new one, which must still get the
        # RateLimit-* headers and be the one paced.
        self._break_body(flow)
        self.rate_limits.response(flow)
        self.stalls.response(flow)

    def _break_body(self, flow: http.HTTPFlow) -> None:
        pending = self._breaks.pop(flow, None) if self._breaks else None
        if pending is None or flow.response is None:
            return
        state, breaker = pending
        by = answered(flows.answered_by(flow), has_response=True)
        if by not in GRAPHS:  # a miss, an unreachable upstream...: said as the proxy said it
            logger.info(
                "%s not applied to %s %s: answered by %s",
                state.rule.kind,
                flow.request.method,
                flow.request.pretty_url,
                by,
            )
            return
        state.injected += 1
        _mark(flow, state.rule.kind)
        real = Reply(
            flow.response.status_code,
            tuple(flow.response.headers.items()),
            flow.response.get_content(strict=False) or b"",
        )
        flows.answer(flow, breaker.reply(real, flow.request.headers), by=AnsweredBy.FAULT)
