"""Latency drawn from a distribution, as services really answer: mostly quick, sometimes slow.

A fixed or uniform delay (``latency:ms=100-300``) never produces the long tail that finds a
client's missing timeout. Measured service latencies are close to log-normal: a median, and a
tail that a high percentile describes. So a ``latency`` rule can say
``dist=lognormal,median=MS,p99=MS`` and the delays it draws have that median and that 99th
percentile; ``dist=normal`` takes ``mean=MS,stddev=MS`` or, like the log-normal, ``median`` and
``p99`` (a normal's median is its mean). Draws come from the rule's own seeded
``random.Random``, so ``--seed`` repeats them exactly. A normal draw below zero waits zero; any
draw is capped at ``cap_ms``. Nothing here knows mitmproxy.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

# The standard normal's 99th percentile: p99 = median * exp(Z99 * sigma) for a log-normal,
# mean + Z99 * stddev for a normal.
Z99 = NormalDist().inv_cdf(0.99)


class Distribution(StrEnum):
    UNIFORM = "uniform"  # ms=N or ms=MIN-MAX: the plain latency rule
    LOGNORMAL = "lognormal"
    NORMAL = "normal"


@dataclass(frozen=True)
class DistributedDelay:
    """Hold each request for a delay drawn from a log-normal or normal distribution.

    ``location`` and ``scale`` are the distribution's own parameters in milliseconds: for
    ``lognormal``, mu and sigma of the underlying normal (of ln(ms)); for ``normal``, the mean
    and the standard deviation.
    """

    dist: Distribution
    location: float
    scale: float
    cap_ms: int

    def milliseconds(self, rng: random.Random) -> float:
        if self.dist is Distribution.LOGNORMAL:
            drawn = rng.lognormvariate(self.location, self.scale)
        else:
            drawn = rng.gauss(self.location, self.scale)
        return min(max(drawn, 0.0), float(self.cap_ms))

    def seconds(self, rng: random.Random) -> float:
        return self.milliseconds(rng) / 1000


def lognormal(median_ms: float, p99_ms: float, cap_ms: int) -> DistributedDelay:
    """The log-normal with this median and 99th percentile (``0 < median <= p99``)."""
    if not 0 < median_ms <= p99_ms:
        raise ValueError(f"expected 0 < median <= p99, got median={median_ms}, p99={p99_ms}")
    return DistributedDelay(
        Distribution.LOGNORMAL, math.log(median_ms), math.log(p99_ms / median_ms) / Z99, cap_ms
    )


def normal(mean_ms: float, stddev_ms: float, cap_ms: int) -> DistributedDelay:
    if mean_ms < 0 or stddev_ms < 0:
        raise ValueError(f"expected mean and stddev >= 0, got {mean_ms} and {stddev_ms}")
    return DistributedDelay(Distribution.NORMAL, mean_ms, stddev_ms, cap_ms)


def normal_from_percentiles(median_ms: float, p99_ms: float, cap_ms: int) -> DistributedDelay:
    """The normal whose median (its mean) and 99th percentile are these (``median <= p99``)."""
    if not 0 <= median_ms <= p99_ms:
        raise ValueError(f"expected 0 <= median <= p99, got median={median_ms}, p99={p99_ms}")
    return normal(median_ms, (p99_ms - median_ms) / Z99, cap_ms)
