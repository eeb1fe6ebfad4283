"""The experiment statistics and off-policy estimators against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recommendations.ml import experiment_stats as stats
from recommendations.ml import off_policy

pytestmark = pytest.mark.no_db


def test_delta_method_variance_of_a_ratio_matches_the_hand_computation():
    # Three shoppers: clicks (1, 0, 2) over lists (2, 1, 3).
    sums = stats.RatioSums.from_arrays([1, 0, 2], [2, 1, 3])
    assert (sums.shoppers, sums.y, sums.n, sums.yy, sums.nn, sums.yn) == (3, 3, 6, 5, 14, 8)
    assert sums.rate == 0.5
    # mean y 1, mean n 2, var y 1, var n 1, cov 1 -> (1 - 2*0.5*1 + 0.25*1) / (3 * 4)
    assert sums.rate_variance() == pytest.approx(0.25 / 12)
    assert stats.RatioSums.from_dict(sums.to_dict()) == sums


def test_delta_method_equals_the_binomial_variance_with_one_list_per_shopper():
    clicks = [1] * 30 + [0] * 70
    sums = stats.RatioSums.from_arrays(clicks, [1] * 100)
    assert sums.rate_variance() == pytest.approx(0.3 * 0.7 / 99)  # sample variance / n


def test_msprt_likelihood_ratio_and_interval_by_hand():
    # V = 1, tau = 1, difference 2: sqrt(1/2) * exp(1 * 4 / (2 * 1 * 2)) = e / sqrt(2).
    assert stats.msprt_likelihood_ratio(2.0, 1.0, 1.0) == pytest.approx(math.e / math.sqrt(2))
    # Half-width: sqrt(V (V + tau^2) / tau^2 * (log((V + tau^2) / V) - 2 log alpha)).
    assert stats.msprt_half_width(1.0, 1.0, 0.05) == pytest.approx(
        math.sqrt(2 * (math.log(2) + 2 * math.log(20)))
    )
    # At the interval's edge the likelihood ratio is exactly 1 / alpha.
    edge = stats.msprt_half_width(0.3, 0.5, 0.05)
    assert stats.msprt_likelihood_ratio(edge, 0.3, 0.5) == pytest.approx(20.0)


def test_always_valid_p_value_never_rises_and_the_interval_only_narrows():
    control = stats.RatioSums.from_arrays([1] * 50 + [0] * 950, [1] * 1000)
    better = stats.RatioSums.from_arrays([1] * 90 + [0] * 910, [1] * 1000)
    first = stats.compare(control, better, tau=0.02)
    assert first is not None and first.difference == pytest.approx(0.04)
    assert first.low < first.fixed_low < first.difference < first.fixed_high < first.high
    same = stats.RatioSums.from_arrays([1] * 50 + [0] * 950, [1] * 1000)
    later = stats.compare(control, same, tau=0.02, earlier=first)
    assert later.p_value == first.p_value  # the evidence seen stays seen
    assert later.low >= first.low and later.high <= first.high


def test_chi2_survival_matches_known_values():
    assert stats.chi2_survival(3.841458820694124, 1) == pytest.approx(0.05, rel=1e-9)
    assert stats.chi2_survival(5.991464547107979, 2) == pytest.approx(0.05, rel=1e-9)
    assert stats.chi2_survival(0.0, 3) == 1.0


def test_a_broken_split_is_a_sample_ratio_mismatch_and_a_fair_one_is_not():
    assert stats.sample_ratio([5000, 5030], [50, 50]).mismatch is False
    broken = stats.sample_ratio([5000, 4500], [50, 50])
    assert broken.mismatch is True
    assert broken.chi2 == pytest.approx(2 * 250**2 / 4750)


def test_plan_sizes_the_msprt_so_that_it_has_the_power_asked_for():
    plan = stats.plan_sample_size(0.05, 0.05 * 0.95, 0.10, daily_shoppers=10_000)
    assert plan.effect == pytest.approx(0.005)
    # A fixed-horizon test would need (1.96 + 0.84)^2 * spread * 0.0475 / 0.005^2 shoppers, the
    # spread 1/0.5 + 1.1/0.5 (the other arm's variance grows with its rate).
    spread = 2 + 2 * 1.1
    assert plan.fixed_horizon_shoppers == pytest.approx(
        spread * 0.0475 * (1.959964 + 0.841621) ** 2 / 0.005**2, rel=1e-3
    )
    assert plan.fixed_horizon_shoppers < plan.shoppers < 3 * plan.fixed_horizon_shoppers
    variance = 0.0475 * spread / plan.shoppers
    assert stats.msprt_power(0.005, variance, 0.005, 0.05) >= 0.8
    assert plan.days == pytest.approx(plan.shoppers / 10_000)
    with pytest.raises(ValueError):
        stats.plan_sample_size(0.0, 0.1, 0.1)


def small_log():
    # Two lists of two places. List 1 showed a (p 0.9, clicked), b (p 0.05);
    # list 2 showed c (p 0.9), a (p 0.1, clicked).
    return off_policy.Logged.from_lists([["a", "b"], ["c", "a"]], [[0.9, 0.05], [0.9, 0.1]], [[1, 0], [0, 1]])


def test_ips_snips_and_dr_by_hand():
    logged = small_log()
    candidate = np.array([["a", "x"], ["y", "a"]], dtype=object)
    # IPS: list 1: 1/0.9; list 2: 1/0.1 -> mean (1.111 + 10) / 2
    assert off_policy.ips(logged, candidate).value == pytest.approx((1 / 0.9 + 10) / 2)
    # SNIPS per place: place 0: (1/0.9 * 1) / (1/0.9) = 1; place 1: (10 * 1) / 10 = 1.
    assert off_policy.snips(logged, candidate).value == pytest.approx(2.0)
    report = off_policy.evaluate(logged, candidate)
    assert report.matched == 2 and report.lists == 2 and report.logged == 1.0
    # Effective lists: (1.111 + 10)^2 / (1.111^2 + 10^2)
    assert report.effective_lists == pytest.approx((1 / 0.9 + 10) ** 2 / ((1 / 0.9) ** 2 + 100))


def test_doubly_robust_with_a_given_click_model_by_hand():
    logged = small_log()
    candidate = np.array([["a", "x"], ["y", "a"]], dtype=object)
    model = off_policy.ClickModel(np.array([0.5, 0.5]), {"a": 1.0, "b": 1.0, "c": 1.0})
    # Direct part: 0.5 per place (x, y unknown: factor 1) -> 1.0 per list.
    # Correction: list 1 place 0: (1/0.9)(1 - 0.5); list 2 place 1: 10 (1 - 0.5).
    expected = ((1.0 + 0.5 / 0.9) + (1.0 + 5.0)) / 2
    assert off_policy.doubly_robust(logged, candidate, model).value == pytest.approx(expected)


def test_off_policy_estimates_cover_the_truth_of_a_simulated_candidate():
    """Logs of one ranking, explored as serving explores, estimate another's true clicks per list."""
    import random

    from recommendations.serving.exploration import explore
    from recommendations.serving.rules import Recommendation

    rng, draw = np.random.default_rng(7), random.Random(7)
    items = np.array([f"i{j}" for j in range(30)], dtype=object)
    attraction = dict(zip(items, rng.uniform(0.02, 0.6, len(items)), strict=True))
    place_bias = 1.0 / (1.0 + np.arange(4))
    noisy = sorted(items, key=lambda item: -attraction[item] + rng.normal(0, 0.3))
    ranking = [Recommendation(item, 1.0, "") for item in noisy[:14]]  # 4 places and a pool of 10
    # The candidate puts the same 14 items in the order of their true attraction.
    best = sorted(noisy[:14], key=lambda item: -attraction[item])[:4]
    truth = float(sum(attraction[item] * place_bias[k] for k, item in enumerate(best)))
    shown, chances, clicks = [], [], []
    for _ in range(20_000):
        shown_list, p = explore(ranking, 4, 0.3, draw)
        shown.append([rec.item_id for rec in shown_list])
        chances.append(p)
        clicks.append(
            [int(rng.random() < attraction[rec.item_id] * place_bias[k]) for k, rec in enumerate(shown_list)]
        )
    logged = off_policy.Logged.from_lists(shown, chances, clicks)
    report = off_policy.evaluate(logged, np.tile(np.array(best, dtype=object), (logged.lists, 1)))
    assert report.logged < truth  # the candidate is better than what was served
    for estimate in (report.ips, report.snips, report.dr):
        assert estimate.low <= truth <= estimate.high, (estimate, truth)
        assert estimate.high - estimate.low < 0.25 * truth
