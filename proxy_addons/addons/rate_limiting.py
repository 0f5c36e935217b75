"""The ``ratelimit`` fault at work: each rule's budgets, and the headers each answer gets.

The fault injector asks :meth:`RateLimiting.spend` for every request a ``ratelimit`` rule
selects; the budgets (``graph/rate_limits.py``) say whether it passes. Either way the flow's
answer, whoever gives it (the 429 here, replay, the emulator, the recorder's upstream), gets
``RateLimit-Limit``/``-Remaining``/``-Reset`` in the injector's ``response`` hook, as Dev
Proxy's RateLimitingPlugin sends them while a limit applies. Budgets belong to a rule's state,
so they live as long as the rule (a rule that survives a change of rules keeps them, a fresh
test starts them afresh).
"""

from __future__ import annotations

import weakref

from mitmproxy import http

from proxy_addons.addons import flows
from proxy_addons.graph.rate_limits import Budgets, Decision, RateLimit, caller
from proxy_addons.graph.routes import Operation


class RateLimiting:
    def __init__(self) -> None:
        # Keyed by the rule's state object (whatever the injector keeps per rule).
        self._budgets: weakref.WeakKeyDictionary[object, Budgets] = weakref.WeakKeyDictionary()
        self._decisions: weakref.WeakKeyDictionary[http.HTTPFlow, Decision] = (
            weakref.WeakKeyDictionary()
        )

    def spend(
        self,
        rule_state: object,
        effect: RateLimit,
        flow: http.HTTPFlow,
        operation: Operation | None,
        now: float,
    ) -> Decision:
        """Spend the request's cost from its caller's budget under this rule; remember the
        headers its answer gets (with several rules, the tightest: least remaining)."""
        budgets = self._budgets.get(rule_state)
        if budgets is None or budgets.policy != effect.policy:
            budgets = self._budgets[rule_state] = Budgets(effect.policy)
        peer = flow.client_conn.peername
        who = caller(flow.request.headers.get("Authorization"), str(peer[0]) if peer else "?")
        decision = budgets.spend(who, operation, now)
        kept = self._decisions.get(flow)
        if kept is None or decision.remaining < kept.remaining or not decision.allowed:
            self._decisions[flow] = decision
        return decision

    def response(self, flow: http.HTTPFlow) -> None:
        """Put the flow's RateLimit-* headers on its answer, if a rule counted it."""
        decision = self._decisions.pop(flow, None) if self._decisions else None
        if decision is None or flow.response is None:
            return
        flows.add_fault_headers(flow, decision.headers())  # never recorded into a cassette
