"""Experiments on a simulator built from real data: A/B power and false alarms, off-policy estimates.

For each log (the learning suite's REES46 and Diginetica files) ``bench/simulator.py`` builds
shoppers who replay the later part's sessions and click by a hidden position-based click
model fitted to what real shoppers did next; the versions are rankings fitted on the earlier
part (``good``; ``worse``: its best item shown third). Then:

1. **Plan**: the control (``worse``) serves a pilot of shoppers, as a shop's own traffic
   before a test; ``plan_sample_size`` sizes the always-valid test (mSPRT) to find the true
   relative effect of ``good`` with 80 % power.
2. **Power**: ``REPEATS`` A/B tests of ``good`` against ``worse`` at the planned size, each
   read every day for 14 days; power = the share that called ``good`` better at any look.
3. **False alarms**: as many A/A tests (``worse`` against itself) at the same size and looks.
4. **Off-policy**: ``OPE_RUNS`` logs of ``worse`` served with exploration (serving's own
   ``explore``), each estimating ``good``'s clicks per list by IPS, SNIPS and DR; coverage =
   the share of runs whose 95 % interval holds ``good``'s true value. Exploration's cost is
   the logging policy's clicks per list with exploration against without it (exact values).
   For information: the same from logs of ``stale`` (an old version whose items often
   differ), where a candidate's items can be unsupported by the log.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from bench import common, learning, simulator
from bench.report import Part, Section, Table, decimals, strong, verdict

REPEATS = 200
OPE_RUNS = 100
OPE_LISTS = 50_000
PILOT_SHOPPERS = 20_000
EXPLORATION = 0.1
POOL = 20
LOOKS = 14


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The 95 % Wilson interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    z, p = 1.959964, successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def measure(dataset: learning.Dataset, quick: bool) -> dict[str, Any]:
    from recommendations.ml import off_policy
    from recommendations.ml.experiment_stats import plan_sample_size

    started = time.perf_counter()
    world = simulator.build(common.read_events(dataset.path, dataset.format))
    common.progress(f"{dataset.label}: {len(world.last):,} lists of {world.shoppers:,} shoppers")
    truth = {policy: world.true_ctr(policy) for policy in ("good", "worse", "stale")}
    probs = {policy: world.click_probabilities(world.lists(policy)) for policy in ("good", "worse")}
    rng = np.random.default_rng(11)
    pilot_shoppers = PILOT_SHOPPERS // (10 if quick else 1)
    pilot = simulator.pilot(world, probs["worse"], pilot_shoppers, rng)
    relative = truth["good"] / truth["worse"] - 1
    plan = plan_sample_size(pilot.rate, pilot.unit_variance(), relative, daily_shoppers=None)
    repeats = 20 if quick else REPEATS
    ab = [
        simulator.simulate_ab(
            world, (probs["worse"], probs["good"]), plan.shoppers, rng, tau=plan.effect, looks=LOOKS
        )
        for _ in range(repeats)
    ]
    aa = [
        simulator.simulate_ab(
            world, (probs["worse"], probs["worse"]), plan.shoppers, rng, tau=plan.effect, looks=LOOKS
        )
        for _ in range(repeats)
    ]
    common.progress(f"{dataset.label}: {repeats} A/B and {repeats} A/A tests of {plan.shoppers:,} shoppers")
    ope: dict[str, Any] = {}
    runs = 10 if quick else OPE_RUNS
    for logging, candidate in (("worse", "good"), ("good", "stale")):
        covered = dict.fromkeys(("ips", "snips", "dr"), 0)
        widths: dict[str, list[float]] = {name: [] for name in covered}
        values: dict[str, list[float]] = {name: [] for name in covered}
        logged = []
        for run in range(runs):
            contexts, log = simulator.explored_log(
                world, logging, OPE_LISTS // (4 if quick else 1), EXPLORATION, POOL, run
            )
            report = off_policy.evaluate(log, simulator.candidate_matrix(world, candidate, contexts))
            logged.append(report.logged)
            for name in covered:
                estimate = getattr(report, name)
                covered[name] += estimate.low <= truth[candidate] <= estimate.high
                widths[name].append(estimate.high - estimate.low)
                values[name].append(estimate.value)
        ope[(logging, candidate)] = {
            "runs": runs,
            "covered": covered,
            "width": {name: float(np.median(w)) for name, w in widths.items()},
            "mean": {name: float(np.mean(v)) for name, v in values.items()},
            "logged": float(np.mean(logged)),
        }
        common.progress(f"{dataset.label}: {runs} off-policy runs, logs of {logging}, estimating {candidate}")
    return {
        "dataset": dataset,
        "lists": len(world.last),
        "shoppers": world.shoppers,
        "truth": truth,
        "relative": relative,
        "pilot_rate": pilot.rate,
        "pilot_shoppers": pilot_shoppers,
        "plan": plan,
        "power": sum(1 for called, difference in ab if called and difference > 0),
        "wrong_way": sum(1 for called, difference in ab if called and difference < 0),
        "false_alarms": sum(1 for called, _ in aa if called),
        "repeats": repeats,
        "ope": ope,
        "seconds": time.perf_counter() - started,
    }


def part(run: dict[str, Any]) -> tuple[Part, bool]:
    plan, repeats = run["plan"], run["repeats"]
    power, alarms = run["power"] / repeats, run["false_alarms"] / repeats
    p_low, p_high = wilson(run["power"], repeats)
    a_low, a_high = wilson(run["false_alarms"], repeats)
    ab_ok = power >= 0.8 and alarms <= 0.05
    truth = run["truth"]
    blocks: list[Any] = [
        f"{run['lists']:,} lists of {run['shoppers']:,} later shoppers. True clicks per list: `good` "
        f"{decimals(truth['good'])}, `worse` {decimals(truth['worse'])} (good is {100 * run['relative']:.1f} % "
        f"better), `stale` {decimals(truth['stale'])}.",
        Table(
            ["test", "figure", "95% interval", "target", "verdict"],
            [
                [
                    f"plan from a {run['pilot_shoppers']:,}-shopper pilot of `worse` (rate {decimals(run['pilot_rate'])})",
                    f"{plan.shoppers:,} shoppers (fixed horizon: {plan.fixed_horizon_shoppers:,})",
                    "-",
                    "-",
                    "-",
                ],
                [
                    f"power: `good` called better at the planned size, {LOOKS} daily looks ({repeats} tests)",
                    strong(f"{100 * power:.1f}%"),
                    f"{100 * p_low:.1f}% to {100 * p_high:.1f}%",
                    ">= 80%",
                    verdict(power >= 0.8),
                ],
                [
                    f"false alarms: A/A tests called different at any of {LOOKS} looks ({repeats} tests)",
                    strong(f"{100 * alarms:.1f}%"),
                    f"{100 * a_low:.1f}% to {100 * a_high:.1f}%",
                    "<= 5%",
                    verdict(alarms <= 0.05),
                ],
                ["A/B tests that called the wrong arm better", f"{run['wrong_way']}", "-", "0", "-"],
            ],
        ),
    ]
    rows = []
    ope_ok = True
    for (logging, candidate), found in run["ope"].items():
        for name, label in (("ips", "IPS"), ("snips", "SNIPS"), ("dr", "doubly robust")):
            share = found["covered"][name] / found["runs"]
            main = (logging, candidate) == ("worse", "good")
            if main:
                ope_ok = ope_ok and share >= 0.9
            rows.append(
                [
                    f"logs of `{logging}`, estimating `{candidate}`: {label}",
                    decimals(found["mean"][name]),
                    decimals(truth[candidate]),
                    decimals(found["width"][name]),
                    strong(f"{100 * share:.0f}%") if main else f"{100 * share:.0f}%",
                    verdict(share >= 0.9) if main else "for information",
                ]
            )
    main = run["ope"][("worse", "good")]
    cost = 1 - main["logged"] / truth["worse"]
    blocks += [
        Table(
            [
                "estimate",
                "mean estimate",
                "true value",
                "median interval width",
                "runs covering the truth",
                "target >= 90%",
            ],
            rows,
        ),
        f"Exploration ({100 * EXPLORATION:.0f} % of lists drawn at random from the best {simulator.LIST_LENGTH} + "
        f"{POOL}) cost `worse` {100 * cost:.1f} % of its clicks per list ({decimals(main['logged'])} against "
        f"{decimals(truth['worse'])} without it). The rows of logs of `good` estimating `stale` are for "
        "information: `stale` often shows items that `good` never ranks near the top, and a log holds no "
        "evidence on those, so how often the truth is covered there depends on how much the two overlap (the "
        "reason a shop explores before it judges a very different version).",
    ]
    return Part(run["dataset"].label, blocks), ab_ok and ope_ok


def run(quick: bool) -> Section:
    common.setup_django()
    datasets = learning.DATASETS[:1] if quick else learning.DATASETS
    parts = [part(measure(dataset, quick)) for dataset in datasets]
    met = sum(ok for _, ok in parts)
    summary = (
        f"Targets (power >= 80 % at the planned size, false alarms <= 5 %, off-policy intervals covering the "
        f"truth in >= 90 % of runs) met on {met} of {len(parts)} logs. Nothing here runs on the request path: the "
        "capture and serving sections measure pages and the API with experiments' code in place."
    )
    method = (
        "a shopper simulator built from each real log (`bench/simulator.py`: later sessions replayed, clicks "
        "by a hidden position-based model fitted to what real shoppers did next), the app's own statistics "
        "(`ml.experiment_stats`), exploration (`serving.exploration.explore`) and estimators "
        "(`ml.off_policy`). Details: docstring of `bench/experiments.py`."
    )
    return common.section(
        "Experiments: A/B tests and off-policy estimates on a simulator",
        method,
        [summary, *(p for p, _ in parts)],
        quick=quick,
    )
