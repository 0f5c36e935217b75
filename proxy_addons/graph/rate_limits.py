"""Rate limits as Graph keeps them: a budget per window, per app and tenant.

Graph throttles by what a caller spent over time, not request by request: each app in each
tenant has a budget that a window of time refills, an operation can cost more than another,
and a caller over budget gets ``429`` with a ``Retry-After`` that says when the window turns.
Dev Proxy's RateLimitingPlugin tells the caller where it stands on every answer with the
``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` headers (the IETF
draft's names); so does the ``ratelimit`` fault.

The caller is read from the bearer token, unverified, as Graph's throttling is: ``appid``
(v1.0 tokens) or ``azp`` (v2.0) and ``tid``; a request whose token is not a JWT (or that has
none) is counted per client address instead. Nothing here knows mitmproxy or a clock: the
caller passes ``now`` (any monotonic seconds), so tests and ``--seed`` runs repeat exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from proxy_addons.graph.permissions import bearer_token, jwt_claims
from proxy_addons.graph.replies import Reply, error_reply
from proxy_addons.graph.routes import Operation

LIMIT_HEADER = "RateLimit-Limit"
REMAINING_HEADER = "RateLimit-Remaining"
RESET_HEADER = "RateLimit-Reset"


@dataclass(frozen=True)
class Policy:
    """``limit`` units per ``window`` seconds; an operation costs ``costs[op]``, else
    ``default_cost``."""

    limit: int
    window: float
    costs: tuple[tuple[Operation, int], ...] = ()
    default_cost: int = 1

    def cost(self, operation: Operation | None) -> int:
        return next((n for op, n in self.costs if op is operation), self.default_cost)


@dataclass(frozen=True)
class Decision:
    """What the budget says of one request: let through or not, and the headers to send."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # whole seconds until the window turns (at least 1)

    def headers(self) -> list[tuple[str, str]]:
        return [
            (LIMIT_HEADER, str(self.limit)),
            (REMAINING_HEADER, str(self.remaining)),
            (RESET_HEADER, str(self.reset)),
        ]

    @property
    def retry_after(self) -> int:
        """Seconds until the window turns: a refused caller may try again then."""
        return self.reset


class Budget:
    """One caller's window: when it started and how much of it is spent.

    A window starts with the caller's first request and lasts ``policy.window`` seconds; a
    request that would spend past the limit is refused and spends nothing (as a throttled
    request at Graph does no work). Whole seconds are what the headers carry, rounded up, so
    a client that waits ``Retry-After`` always finds the new window.
    """

    __slots__ = ("start", "used")

    def __init__(self) -> None:
        self.start: float | None = None
        self.used = 0

    def spend(self, policy: Policy, cost: int, now: float) -> Decision:
        if self.start is None or now >= self.start + policy.window:
            self.start, self.used = now, 0
        allowed = self.used + cost <= policy.limit
        if allowed:
            self.used += cost
        # window - elapsed, not start + window - now: the latter rounds past the window itself
        reset = max(1, math.ceil(policy.window - (now - self.start)))
        return Decision(allowed, policy.limit, max(policy.limit - self.used, 0), reset)


def caller(authorization: str | None, client_address: str) -> str:
    """Whose budget a request spends: ``app/tenant`` from a JWT's ``appid`` (or ``azp``) and
    ``tid`` claims, else ``client <address>``."""
    token = bearer_token(authorization)
    claims = jwt_claims(token) if token else None
    if claims is not None:
        app = claims.get("appid") or claims.get("azp")
        tenant = claims.get("tid")
        if isinstance(app, str) and app and isinstance(tenant, str) and tenant:
            return f"{app.lower()}/{tenant.lower()}"
    return f"client {client_address}"


# Callers kept at most: past it, windows that have turned are forgotten (a new caller's
# request then costs one pass over them) and, if none has, the one that started first; so a
# proxy that meets many client addresses or forged tokens in one window stays small.
MAX_CALLERS = 1024


class Budgets:
    """Every caller's :class:`Budget` under one policy (one ``ratelimit`` rule)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._by_caller: dict[str, Budget] = {}

    def spend(self, who: str, operation: Operation | None, now: float) -> Decision:
        budget = self._by_caller.get(who)
        if budget is None:
            if len(self._by_caller) >= MAX_CALLERS:
                self._make_room(now)
            budget = self._by_caller[who] = Budget()
        return budget.spend(self.policy, self.policy.cost(operation), now)

    def _make_room(self, now: float) -> None:
        """Forget the callers whose window has turned; when every one is still in its window
        (more callers in one window than MAX_CALLERS: a crowd of addresses, forged tokens),
        forget the one nearest its turn, whose next request starts a window afresh. Keeping
        them all would let a client grow the proxy without bound, one made-up appid a request.
        """
        window = self.policy.window
        self._by_caller = {
            who: budget
            for who, budget in self._by_caller.items()
            if budget.start is not None and now < budget.start + window
        }
        if len(self._by_caller) >= MAX_CALLERS:
            del self._by_caller[min(self._by_caller, key=self._started)]

    def _started(self, who: str) -> float:
        start = self._by_caller[who].start
        return -math.inf if start is None else start

    def callers(self) -> Mapping[str, Budget]:
        return self._by_caller


@dataclass(frozen=True)
class RateLimit:
    """The ``ratelimit`` fault's effect: a :class:`Policy`, and the 429 Graph answers a caller
    over budget (the ``throttle`` fault's code and message unless the rule says otherwise)."""

    policy: Policy
    code: str
    message: str

    def refusal(self, decision: Decision, request_headers: Mapping[str, str]) -> Reply:
        extra = [("Retry-After", str(decision.retry_after)), *decision.headers()]
        return error_reply(429, self.code, self.message, request_headers, extra)
