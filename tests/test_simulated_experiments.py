"""The experiment machinery on the shopper simulator, built from the REES46 slice the repo ships."""

from __future__ import annotations

import numpy as np
import pytest

from bench import simulator
from recommendations.ml import off_policy
from recommendations.ml.experiment_stats import plan_sample_size
from recommendations.ml.frames import normalize_frame
from shop.management.commands.shop_load_demo import DATA_FILE

pytestmark = pytest.mark.no_db


@pytest.fixture(scope="module")
def world():
    import pandas as pd

    raw = pd.read_csv(DATA_FILE, dtype=str)
    frame = normalize_frame(
        pd.DataFrame(
            {
                "timestamp": pd.to_datetime(raw["event_time"], utc=True),
                "session": raw["user_session"],
                "event": raw["event_type"],
                "item": raw["product_id"],
                "category": raw["category_code"].fillna(""),
            }
        )
    )
    return simulator.build(frame)


def test_the_good_version_is_truly_better_and_an_ab_test_at_its_planned_size_finds_it(world):
    good, worse = world.true_ctr("good"), world.true_ctr("worse")
    assert 0.05 < good / worse - 1 < 0.5
    probs = {p: world.click_probabilities(world.lists(p)) for p in ("good", "worse")}
    rng = np.random.default_rng(1)
    pilot = simulator.pilot(world, probs["worse"], 5_000, rng)
    plan = plan_sample_size(pilot.rate, pilot.unit_variance(), good / worse - 1)
    runs = [
        simulator.simulate_ab(world, (probs["worse"], probs["good"]), plan.shoppers, rng, tau=plan.effect)
        for _ in range(30)
    ]
    assert sum(called and difference > 0 for called, difference in runs) >= 20
    assert not any(called and difference < 0 for called, difference in runs)
    same = [
        simulator.simulate_ab(world, (probs["worse"], probs["worse"]), plan.shoppers, rng, tau=plan.effect)
        for _ in range(30)
    ]
    assert sum(called for called, _ in same) <= 2


def test_logs_of_one_version_with_exploration_estimate_the_other(world):
    contexts, log = simulator.explored_log(world, "worse", 20_000, 0.2, 20, seed=3)
    report = off_policy.evaluate(log, simulator.candidate_matrix(world, "good", contexts))
    truth = world.true_ctr("good")
    assert report.logged < world.true_ctr("worse")  # exploration costs clicks
    for estimate in (report.ips, report.snips, report.dr):
        assert estimate.low <= truth <= estimate.high
