"""The budget arithmetic of the ratelimit fault (graph/rate_limits.py): pure, a clock given."""

from __future__ import annotations

import math

import pytest
from helpers import WORK_TENANT, jwt
from hypothesis import given
from hypothesis import strategies as st

from proxy_addons.graph import rate_limits
from proxy_addons.graph.rate_limits import Budget, Budgets, Policy, caller
from proxy_addons.graph.routes import Operation

POLICY = Policy(limit=10, window=60, costs=((Operation.CREATE, 5),))


def test_a_request_spends_its_operations_cost_and_others_cost_the_default():
    budget = Budget()
    assert POLICY.cost(Operation.CREATE) == 5
    assert POLICY.cost(Operation.GET) == 1
    first = budget.spend(POLICY, POLICY.cost(Operation.CREATE), now=100.0)
    second = budget.spend(POLICY, POLICY.cost(Operation.GET), now=110.0)
    assert (first.allowed, first.remaining, first.reset) == (True, 5, 60)
    assert (second.allowed, second.remaining, second.reset) == (True, 4, 50)


def test_over_budget_is_refused_spends_nothing_and_says_when_the_window_turns():
    budget = Budget()
    budget.spend(POLICY, 8, now=0.0)
    refused = budget.spend(POLICY, 5, now=20.5)
    assert (refused.allowed, refused.remaining) == (False, 2)
    assert refused.retry_after == refused.reset == 40  # 39.5 rounded up: never too early
    assert budget.spend(POLICY, 2, now=21.0).allowed  # what was left is still there


def test_the_window_turns_at_its_end_and_the_budget_is_whole_again():
    budget = Budget()
    budget.spend(POLICY, 10, now=0.0)
    assert not budget.spend(POLICY, 1, now=59.999).allowed
    turned = budget.spend(POLICY, 1, now=60.0)
    assert (turned.allowed, turned.remaining, turned.reset) == (True, 9, 60)


def test_reset_is_at_least_one_second_even_at_the_windows_last_instant():
    budget = Budget()
    budget.spend(Policy(limit=1, window=0.5), 1, now=0.0)
    assert budget.spend(Policy(limit=1, window=0.5), 1, now=0.49).reset == 1


def test_decision_headers_are_dev_proxys_ratelimit_names():
    decision = Budget().spend(POLICY, 3, now=0.0)
    assert decision.headers() == [
        ("RateLimit-Limit", "10"),
        ("RateLimit-Remaining", "7"),
        ("RateLimit-Reset", "60"),
    ]


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"appid": "APP-1", "tid": WORK_TENANT}, f"app-1/{WORK_TENANT}"),
        ({"azp": "app-2", "tid": WORK_TENANT}, f"app-2/{WORK_TENANT}"),  # v2.0 tokens
        ({"tid": WORK_TENANT}, "client 127.0.0.1"),  # no app: per address
        ({"appid": "app-1"}, "client 127.0.0.1"),  # no tenant
    ],
)
def test_the_caller_is_app_and_tenant_from_the_token_else_the_address(claims, expected):
    assert caller(f"Bearer {jwt(**claims)}", "127.0.0.1") == expected


@pytest.mark.parametrize("authorization", [None, "Bearer opaque", "Basic dXNlcjpwdw==", "Bearer"])
def test_without_a_jwt_the_caller_is_the_client_address(authorization):
    assert caller(authorization, "10.0.0.7") == "client 10.0.0.7"


def test_each_caller_has_a_budget_of_its_own():
    budgets = Budgets(Policy(limit=1, window=60))
    assert budgets.spend("a/t", Operation.GET, 0.0).allowed
    assert not budgets.spend("a/t", Operation.GET, 1.0).allowed
    assert budgets.spend("b/t", Operation.GET, 1.0).allowed


def test_many_callers_forget_those_whose_window_has_turned(monkeypatch):
    monkeypatch.setattr(rate_limits, "MAX_CALLERS", 3)
    budgets = Budgets(Policy(limit=1, window=10))
    for who in ("a", "b", "c"):
        budgets.spend(who, None, 0.0)
    budgets.spend("d", None, 5.0)  # a, b, c still in their window: the first to start goes
    budgets.spend("e", None, 12.0)  # now b and c have turned and are forgotten
    assert sorted(budgets.callers()) == ["d", "e"]


def test_callers_past_the_cap_in_one_window_do_not_grow_the_budgets(monkeypatch):
    """A client forging a new appid per request within one window: the proxy keeps at most
    MAX_CALLERS budgets, forgetting the one whose window started first."""
    monkeypatch.setattr(rate_limits, "MAX_CALLERS", 3)
    budgets = Budgets(Policy(limit=1, window=60))
    for second, who in enumerate(f"forged-{n}" for n in range(50)):
        budgets.spend(who, None, float(second))
    assert sorted(budgets.callers()) == ["forged-47", "forged-48", "forged-49"]


@given(
    limit=st.integers(1, 50),
    window=st.floats(0.1, 100),
    steps=st.lists(st.tuples(st.integers(1, 50), st.floats(0, 30)), max_size=60),
)
def test_the_budget_never_lets_a_window_spend_past_its_limit(limit, window, steps):
    """Whatever the costs and pauses: what a window lets through stays within the limit,
    Remaining is what is left of it, and a refusal spends nothing."""
    policy, budget, now = Policy(limit, window), Budget(), 0.0
    spent_in_window, window_start = 0, None
    for cost, pause in steps:
        now += pause
        if window_start is None or now >= window_start + window:
            window_start, spent_in_window = now, 0
        decision = budget.spend(policy, min(cost, limit), now)
        if decision.allowed:
            spent_in_window += min(cost, limit)
        assert spent_in_window <= limit
        assert decision.remaining == limit - spent_in_window
        assert 1 <= decision.reset <= max(1, math.ceil(window))
