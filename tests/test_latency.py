"""Latency distributions (graph/latency.py): the percentiles asked for, drawn from a seed."""

from __future__ import annotations

import random
import statistics

import pytest

from proxy_addons.graph import latency

SAMPLES = 20_000


def draws(delay: latency.DistributedDelay, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return sorted(delay.milliseconds(rng) for _ in range(SAMPLES))


def percentile(values: list[float], fraction: float) -> float:
    return values[int(fraction * (len(values) - 1))]


def test_lognormal_draws_have_the_median_and_p99_asked_for():
    values = draws(latency.lognormal(200, 2000, cap_ms=600_000))
    assert percentile(values, 0.5) == pytest.approx(200, rel=0.05)
    assert percentile(values, 0.99) == pytest.approx(2000, rel=0.1)
    assert min(values) > 0


def test_normal_from_median_and_p99_has_them():
    values = draws(latency.normal_from_percentiles(300, 500, cap_ms=600_000))
    assert percentile(values, 0.5) == pytest.approx(300, rel=0.03)
    assert percentile(values, 0.99) == pytest.approx(500, rel=0.03)


def test_normal_from_mean_and_stddev_has_them():
    values = draws(latency.normal(1000, 100, cap_ms=600_000))
    assert statistics.fmean(values) == pytest.approx(1000, rel=0.01)
    assert statistics.stdev(values) == pytest.approx(100, rel=0.05)


def test_a_normal_never_waits_less_than_zero_nor_past_the_cap():
    values = draws(latency.normal(10, 1000, cap_ms=500))
    assert min(values) == 0.0
    assert max(values) == 500.0


def test_the_same_seed_draws_the_same_delays_and_another_does_not():
    delay = latency.lognormal(100, 1000, cap_ms=600_000)
    assert draws(delay, seed=1) == draws(delay, seed=1)
    assert draws(delay, seed=1) != draws(delay, seed=2)


def test_a_median_equal_to_p99_is_a_fixed_delay():
    rng = random.Random(0)
    fixed = latency.lognormal(250, 250, cap_ms=600_000)
    assert [fixed.milliseconds(rng) for _ in range(5)] == pytest.approx([250] * 5)


@pytest.mark.parametrize(("median", "p99"), [(0, 10), (100, 50), (-1, 10)])
def test_lognormal_refuses_percentiles_no_lognormal_has(median, p99):
    with pytest.raises(ValueError, match="median"):
        latency.lognormal(median, p99, cap_ms=600_000)
