"""Statistics of an A/B test that stay valid when the owner looks every day.

The unit of an experiment is the shopper (arms are assigned per shopper), so every rate
(clicks per shown list, say) is a ratio of two per-shopper sums, and its variance comes from
the delta method over shoppers (Deng, Knoblich and Lu, "Applying the Delta Method in Metric
Analytics", KDD 2018): treating each shown list as independent would understate it.

The test is a **mixture sequential probability ratio test** (mSPRT) with a normal mixture
(Johari, Koomen, Pekelis and Walsh, "Always Valid Inference: Continuous Monitoring of A/B
Tests", Operations Research 2022; the method behind Optimizely's stats engine). Its p-value
and confidence interval are *always valid*: the chance of a false alarm stays at most
``alpha`` however often the figures are read, so a shop owner may look every day and stop
when it says so. A fixed-horizon test read daily would raise a false alarm far more often.
The mixture's spread ``tau`` is the effect the owner planned for (the minimum detectable
effect): the test is most powerful near it. The price of always-valid inference is width:
the plan (``plan_sample_size``) accounts for it by sizing the test for the mSPRT itself.

A sample ratio mismatch (arms whose shopper counts do not match their shares) means the
split is broken (a redirect losing shoppers, a bot, a cached page): it is flagged with a
chi-square test at p < 0.001, and the figures are then not read as a result.

The standard library only (no numpy, no scipy): the admin and the outcomes task import it in
a shop that runs without the ``ml`` extra.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_NORMAL = NormalDist()
#: Below this p-value the split is called broken (the usual threshold for SRM checks).
SRM_P_VALUE = 0.001


@dataclass(frozen=True)
class RatioSums:
    """Per-shopper sums of a ratio metric: numerator y (clicks) over denominator n (lists)."""

    shoppers: int
    y: float
    n: float
    yy: float
    nn: float
    yn: float

    @classmethod
    def from_arrays(cls, y: Sequence[float], n: Sequence[float]) -> RatioSums:
        y, n = [float(v) for v in y], [float(v) for v in n]
        return cls(
            len(y),
            math.fsum(y),
            math.fsum(n),
            math.fsum(v * v for v in y),
            math.fsum(v * v for v in n),
            math.fsum(a * b for a, b in zip(y, n, strict=True)),
        )

    @classmethod
    def from_dict(cls, data: dict) -> RatioSums:
        return cls(**{key: data[key] for key in ("shoppers", "y", "n", "yy", "nn", "yn")})

    def to_dict(self) -> dict:
        return {
            "shoppers": self.shoppers,
            "y": self.y,
            "n": self.n,
            "yy": self.yy,
            "nn": self.nn,
            "yn": self.yn,
        }

    @property
    def rate(self) -> float | None:
        return self.y / self.n if self.n > 0 else None

    def rate_variance(self) -> float | None:
        """Variance of ``rate`` by the delta method over shoppers (None below 2 shoppers)."""
        k = self.shoppers
        if k < 2 or self.n <= 0:
            return None
        mean_y, mean_n = self.y / k, self.n / k
        var_y = (self.yy - k * mean_y**2) / (k - 1)
        var_n = (self.nn - k * mean_n**2) / (k - 1)
        cov = (self.yn - k * mean_y * mean_n) / (k - 1)
        ratio = mean_y / mean_n
        return max((var_y - 2 * ratio * cov + ratio**2 * var_n) / (k * mean_n**2), 0.0)

    def unit_variance(self) -> float | None:
        """The per-shopper variance behind ``rate_variance`` (= rate_variance x shoppers)."""
        variance = self.rate_variance()
        return None if variance is None else variance * self.shoppers


@dataclass(frozen=True)
class Comparison:
    """An arm against the control on one rate, as always-valid inference reads it today."""

    control: float
    treatment: float
    difference: float  # treatment - control
    variance: float
    low: float  # always-valid confidence interval of the difference
    high: float
    p_value: float  # always-valid p-value
    fixed_low: float  # the fixed-horizon interval, for reference only (not valid under peeking)
    fixed_high: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def msprt_likelihood_ratio(difference: float, variance: float, tau: float) -> float:
    """The normal-mixture likelihood ratio of "an effect" against "none" (Johari et al., eq. 11)."""
    if variance <= 0:
        return math.inf if difference != 0 else 1.0
    tau2 = tau * tau
    exponent = tau2 * difference**2 / (2 * variance * (variance + tau2))
    return math.sqrt(variance / (variance + tau2)) * math.exp(min(exponent, 700.0))


def msprt_half_width(variance: float, tau: float, alpha: float) -> float:
    """Half-width of the always-valid (1 - alpha) interval: the differences the test
    cannot yet tell from zero (where the likelihood ratio stays below 1 / alpha)."""
    if variance <= 0:
        return 0.0
    tau2 = tau * tau
    return math.sqrt(
        variance * (variance + tau2) / tau2 * (math.log((variance + tau2) / variance) - 2 * math.log(alpha))
    )


def compare(
    control: RatioSums,
    treatment: RatioSums,
    *,
    tau: float,
    alpha: float = 0.05,
    earlier: Comparison | None = None,
) -> Comparison | None:
    """Treatment against control; ``earlier`` (the previous look) keeps the p-value and the
    interval always valid: the p-value never rises, the interval only narrows."""
    var_c, var_t = control.rate_variance(), treatment.rate_variance()
    if var_c is None or var_t is None or control.rate is None or treatment.rate is None or tau <= 0:
        return None
    difference = treatment.rate - control.rate
    variance = var_c + var_t
    ratio = msprt_likelihood_ratio(difference, variance, tau)
    p_value = min(1.0, 1.0 / ratio) if ratio > 0 else 1.0
    half = msprt_half_width(variance, tau, alpha)
    low, high = difference - half, difference + half
    if earlier is not None:
        p_value = min(p_value, earlier.p_value)
        low, high = max(low, earlier.low), min(high, earlier.high)
        if low > high:  # the running intersection emptied: keep the newest interval
            low, high = difference - half, difference + half
    z = _NORMAL.inv_cdf(1 - alpha / 2)
    fixed = z * math.sqrt(variance)
    return Comparison(
        control.rate,
        treatment.rate,
        difference,
        variance,
        low,
        high,
        p_value,
        difference - fixed,
        difference + fixed,
    )


def msprt_power(effect: float, variance: float, tau: float, alpha: float) -> float:
    """Chance that a test with this variance at its end has crossed, for a true ``effect``.

    Only the last look is counted (a crossing earlier counts too), so this is a lower bound:
    a test sized by it has at least this power."""
    if variance <= 0:
        return 1.0
    half = msprt_half_width(variance, tau, alpha)
    sd = math.sqrt(variance)
    return _NORMAL.cdf((effect - half) / sd) + _NORMAL.cdf((-effect - half) / sd)


@dataclass(frozen=True)
class Plan:
    """How many shoppers the test needs, and how long that takes at the shop's traffic."""

    shoppers: int  # in all arms together
    days: float | None  # None when the shop's daily shoppers are unknown
    fixed_horizon_shoppers: int  # what a test read once, at its end, would need (reference)
    baseline_rate: float
    effect: float  # absolute


def plan_sample_size(
    baseline_rate: float,
    unit_variance: float,
    relative_effect: float,
    *,
    shares: Sequence[float] = (0.5, 0.5),
    alpha: float = 0.05,
    power: float = 0.8,
    daily_shoppers: float | None = None,
) -> Plan:
    """Shoppers needed to find ``relative_effect`` (0.1: 10 % of the control's rate) with
    ``power`` by the mSPRT, for a control (``shares[0]``) against its smallest other arm."""
    effect = abs(relative_effect * baseline_rate)
    if effect <= 0 or unit_variance <= 0 or len(shares) < 2:
        raise ValueError("a plan needs a positive baseline rate, effect and variance, and two arms")
    total = float(sum(shares))
    w_control, w_other = shares[0] / total, min(shares[1:]) / total
    # The other arm's spread grows with its rate (clicks are counts: variance ~ mean), so a
    # plan that gave it the control's would fall short of its power for a rise.
    spread = 1 / w_control + (1 + abs(relative_effect)) / w_other

    def variance(shoppers: float) -> float:
        return unit_variance * spread / shoppers

    z_alpha, z_power = _NORMAL.inv_cdf(1 - alpha / 2), _NORMAL.inv_cdf(power)
    fixed = math.ceil(unit_variance * spread * (z_alpha + z_power) ** 2 / effect**2)
    low, high = 1.0, float(max(fixed, 2))
    while msprt_power(effect, variance(high), effect, alpha) < power:
        low, high = high, high * 2
        if high > 1e12:
            raise ValueError("the effect is too small to find with any traffic")
    while high - low > max(1.0, 0.001 * high):
        middle = (low + high) / 2
        if msprt_power(effect, variance(middle), effect, alpha) >= power:
            high = middle
        else:
            low = middle
    shoppers = math.ceil(high)
    days = shoppers / daily_shoppers if daily_shoppers else None
    return Plan(shoppers, days, fixed, baseline_rate, effect)


@dataclass(frozen=True)
class SampleRatio:
    """Whether the arms' shopper counts match their shares (chi-square goodness of fit)."""

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    chi2: float
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_P_VALUE


def sample_ratio(observed: Sequence[int], shares: Sequence[float]) -> SampleRatio:
    total, weight = float(sum(observed)), float(sum(shares))
    expected = tuple(total * share / weight for share in shares)
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True) if e > 0)
    dof = max(len(observed) - 1, 1)
    return SampleRatio(tuple(int(o) for o in observed), expected, chi2, chi2_survival(chi2, dof))


def chi2_survival(x: float, dof: int) -> float:
    """P(X > x) for a chi-square X with ``dof`` degrees of freedom (regularized upper gamma)."""
    if x <= 0:
        return 1.0
    return _upper_gamma(dof / 2.0, x / 2.0)


def _upper_gamma(a: float, x: float) -> float:
    """Q(a, x), by its series below a + 1 and its continued fraction above (Numerical Recipes 6.2)."""
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        n = a
        for _ in range(1000):
            n += 1.0
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * h)
