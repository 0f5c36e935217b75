"""Addon: inject the faults of ``faults.py`` into our Graph routes, in any mode.

Load it alone with::

    mitmdump -s proxy_addons/fault_injection.py --set graph_faults=throttle:times=1

Rules are tried in the order given. Latency rules delay the request (in an async hook, so
other flows keep moving) and evaluation goes on; the first other rule that fires decides the
flow: an error answer or a reset right away in the ``request`` hook (so replay, the emulator
and the recorder never see the flow), or, for ``malformed``/``empty``, a mark that the
``response`` hook honours once the real answer is known. Rules can be changed while the proxy
runs, by the ``graph.faults.*`` commands or the HTTP control endpoint (``control_rules.py``, served
by ``control_endpoint.py``, which this addon offers ``/faults`` to); a rule that survives a
change keeps its counters.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.common.option_table import declared
from proxy_addons.graph import etags
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
from proxy_addons.graph.rate_limits import Decision, RateLimit
from proxy_addons.graph.replies import Reply
from proxy_addons.graph.routes import Route
from proxy_addons.graph.stalls import Hang, SlowBody
from proxy_addons.options.proxy import FAULTS

logger = logging.getLogger(__name__)

# flows.FAULTS_INJECTED lists every kind injected into a flow, in order (a latency and then an
# error is two); flows.FAULT holds the one that decided the answer, or "latency" when only a
# delay happened.

OPTIONS = tuple(row.name for row in declared(FAULTS))


class ETags:
    """The current ETag of each appointment, as learned from every answer the proxy passes on.

    Replay, the emulator and real Graph all teach it, so ``etag-mismatch:when=stale`` works
    the same in every mode. The last ETag seen is the current one (a 204 update without an
    ETag leaves it as it was); a successful DELETE forgets it. An appointment it has never
    seen an ETag for is not stale: the proxy cannot know better than the service, so it lets
    the request through. Staleness is the emulator's own rule (:mod:`proxy_addons.graph.etags`), so
    the fault and ``simulate`` never disagree about a header.
    """

    def __init__(self) -> None:
        self._known: dict[tuple[str, str, str], str] = {}

    @staticmethod
    def _key(route: Route) -> tuple[str, str, str]:
        return (route.host, route.owner, route.meeting)

    def learn(self, route: Route, status: int, etag: str | None) -> None:
        """What an answer with ``status`` and this ``ETag`` header (None: none) teaches."""
        if not 200 <= status < 300:
            return
        if route.method == "DELETE":
            self._known.pop(self._key(route), None)
        elif etag and route.method in ("GET", "PUT", "PATCH"):
            self._known[self._key(route)] = etag

    def current(self, route: Route) -> str | None:
        return self._known.get(self._key(route))

    def is_stale(self, route: Route, headers: Mapping[str, str]) -> bool:
        """Whether this write's If-Match / If-None-Match fail against the known ETag."""
        known = self.current(route)
        if known is None or route.method not in etags.CONDITIONAL_METHODS:
            return False
        return etags.precondition_fails(
            headers.get("If-Match"), headers.get("If-None-Match"), known
        )


class RuleState:
    """A rule with what it has seen: its counters, random stream and throttle window.

    (A plain class: ``mitmdump -s`` runs this file as a module that dataclasses can't see.)
    """

    def __init__(self, rule: Rule, rng: Random) -> None:
        self.rule = rule
        self.rng = rng
        self.matched = 0
        self.injected = 0
        self.enforced = 0
        self.blocked_until = -math.inf

    def as_dict(self) -> dict[str, Any]:
        return {
            "spec": self.rule.text,
            "kind": str(self.rule.kind),
            "matched": self.matched,
            "injected": self.injected + self.enforced,
        }


def _retry_after_left(rule: Rule, seconds: float) -> float:
    """What is left of a throttle window, rounded up the way the rule wrote Retry-After."""
    assert isinstance(rule.effect, GraphError)
    whole = rule.effect.retry_after is None or float(rule.effect.retry_after).is_integer()
    return float(math.ceil(seconds)) if whole else math.ceil(seconds * 1000) / 1000


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
        self.etags = ETags()
        # The BrokenBody each flow's response must get, beside the flow (not in metadata,
        # which mitmproxy saves with the flow and which holds plain values only).
        self._breaks: weakref.WeakKeyDictionary[http.HTTPFlow, BrokenBody] = (
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
        windows) and every ETag learnt: how the pytest plugin's proxy starts each test."""
        self.etags = ETags()
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
        route = flows.claim(flow)
        if route is None:
            if flow.response is None and flow.error is None and holds_ours(flow) is not None:
                await self._batch_call(flow)
            return
        headers = flow.request.headers
        for state in self.states:
            rule = state.rule
            if not rule.select.matches(route.method, route.operation):
                continue
            now = self.clock()
            if rule.enforce and now < state.blocked_until:
                assert isinstance(rule.effect, GraphError)
                state.enforced += 1
                left = _retry_after_left(rule, state.blocked_until - now)
                _mark(flow, rule.kind)
                flows.answer(
                    flow, rule.effect.reply(headers, retry_after=left), by=AnsweredBy.FAULT
                )
                return
            if rule.stale_only and not self.etags.is_stale(route, headers):
                continue
            refusal = self._token_refusal(rule, route, headers)
            if rule.permission_check is not None and refusal is None:
                continue
            state.matched += 1
            if not rule.select.in_window(state.matched) or not rule.select.draw(state.rng):
                continue
            over_budget = None
            if isinstance(rule.effect, RateLimit):
                over_budget = self.rate_limits.spend(state, rule.effect, flow, route.operation, now)
                if over_budget.allowed:
                    continue
            state.injected += 1
            if refusal is not None:
                logger.info("%s %s refused: %s", route.method, flow.request.pretty_url, refusal)
            _mark(flow, rule.kind)
            effect = rule.effect
            if isinstance(effect, DELAYS):
                await self.sleep(effect.seconds(state.rng))
                if flow.response is not None or flow.error is not None:
                    return
                continue
            if isinstance(effect, Reset):
                flows.answer(flow, None, by=AnsweredBy.FAULT)
            elif isinstance(effect, BrokenBody):
                self._breaks[flow] = effect
            elif isinstance(effect, Hang | SlowBody | RateLimit):
                await self._shape(flow, state, effect, over_budget)
            else:
                reply = effect.reply(headers)
                if rule.enforce and effect.retry_after is not None:
                    state.blocked_until = now + effect.retry_after
                flows.answer(flow, reply, by=AnsweredBy.FAULT)
            return

    async def _batch_call(self, flow: http.HTTPFlow) -> None:
        """The rules for a ``$batch`` call itself (``route=batch``): the first that fires
        fails the whole call; the requests inside it meet the other rules one by one."""
        for state in self.states:
            rule = state.rule
            if not rule.select.matches_batch(flow.request.method):
                continue
            state.matched += 1
            if not rule.select.in_window(state.matched) or not rule.select.draw(state.rng):
                continue
            over_budget = None
            if isinstance(rule.effect, RateLimit):  # a batch call costs what an unnamed one does
                over_budget = self.rate_limits.spend(state, rule.effect, flow, None, self.clock())
                if over_budget.allowed:
                    continue
            state.injected += 1
            _mark(flow, rule.kind)
            effect = rule.effect
            if isinstance(effect, DELAYS):
                await self.sleep(effect.seconds(state.rng))
                continue
            if isinstance(effect, Reset):
                flows.answer(flow, None, by=AnsweredBy.FAULT)
            elif isinstance(effect, BrokenBody):
                self._breaks[flow] = effect
            elif isinstance(effect, Hang | SlowBody | RateLimit):
                await self._shape(flow, state, effect, over_budget)
            else:
                flows.answer(flow, effect.reply(flow.request.headers), by=AnsweredBy.FAULT)
            return

    async def _shape(
        self,
        flow: http.HTTPFlow,
        state: RuleState,
        effect: Hang | SlowBody | RateLimit,
        over_budget: Decision | None,
    ) -> None:
        """The traffic shapes' effects (rate_limiting.py, stalls.py)."""
        if isinstance(effect, Hang):
            await self.stalls.hang(flow, effect, state)
        elif isinstance(effect, SlowBody):
            self.stalls.slow_body(flow, effect)
        else:
            assert over_budget is not None
            reply = effect.refusal(over_budget, flow.request.headers)
            flows.answer(flow, reply, by=AnsweredBy.FAULT)

    def client_disconnected(self, client: connection.Client) -> None:
        self.stalls.client_disconnected(client)

    def done(self) -> None:
        self.stalls.done()

    @staticmethod
    def _token_refusal(rule: Rule, route: Route, headers: Mapping[str, str]) -> str | None:
        """Why Graph would refuse the token, for a ``permissions`` rule; else None."""
        if rule.permission_check is None:
            return None
        return rule.permission_check.refusal(headers.get("Authorization"), route.operation)

    @flows.guarded
    def response(self, flow: http.HTTPFlow) -> None:
        self.rate_limits.response(flow)
        self.stalls.response(flow)
        route = flows.route_of(flow)
        breaker = self._breaks.pop(flow, None) if self._breaks else None
        if flow.response is None or (route is None and breaker is None):
            return
        if breaker is None and flows.answered_by(flow) == AnsweredBy.FAULT:
            return
        if route is not None:
            # get_all, not get: most answers carry no ETag, and get finds that out by an
            # exception
            sent = flow.response.headers.get_all("ETag")
            self.etags.learn(route, flow.response.status_code, ", ".join(sent) if sent else None)
        if breaker is not None:
            real = Reply(
                flow.response.status_code,
                tuple(flow.response.headers.items()),
                flow.response.get_content(strict=False) or b"",
            )
            flows.answer(flow, breaker.reply(real, flow.request.headers), by=AnsweredBy.FAULT)
