"""What each arm of an experiment earned, read from the event table, and the test's verdict.

Run by the Celery task ``recommendations.experiment_outcomes`` (beat, hourly by default) and
by the admin's "Compute now". Nothing is written per request: a list's impression already
names its arm and ``list_id``; a click counts for an arm only when it names a list that arm
showed *to the same shopper*, within ``attribution_hours`` (each place of a list counts
once), so a forged or replayed click cannot move another arm's figures. A cart or purchase
counts when the same shopper carts or buys the clicked item within that time after the click.

Figures are per shopper (the unit arms are assigned by), cumulative since the start, kept
as one ``ExperimentResult`` per day; the test reads them with ``ml.experiment_stats``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

from ..identity import row_shopper, same_shopper
from ..ml.experiment_stats import Comparison, RatioSums, compare, plan_sample_size, sample_ratio
from ..models import Arm, Event, EventType, Experiment

logger = logging.getLogger(__name__)

#: The rates a test can read: numerator of each per shown list (revenue per thousand lists).
METRICS = ("ctr", "cart_rate", "purchase_rate", "revenue_per_mille")
NAMES = {
    "ctr": "click-through rate",
    "cart_rate": "add-to-cart rate",
    "purchase_rate": "purchase rate",
    "revenue_per_mille": "revenue per thousand lists",
}


@dataclass
class _Shopper:
    lists: int = 0
    clicks: int = 0
    carts: int = 0
    purchases: int = 0
    revenue: float = 0.0
    clicked: list[tuple[str, Any, dict]] = field(default_factory=list)  # (item, when, the impression)


def measure(experiment: Experiment, until: Any = None) -> dict[str, dict[str, Any]]:
    """Per arm: shoppers, lists, clicks, carts, purchases, revenue and each metric's sums."""
    start = experiment.started_at
    end = until or experiment.stopped_at or timezone.now()
    impressions = Event.objects.filter(
        experiment_id=experiment.pk, event_type=EventType.IMPRESSION, timestamp__gte=start, timestamp__lte=end
    )
    return figures(impressions, start, end, timedelta(hours=experiment.attribution_hours))


def traffic(scenarios: list[str], days: int = 14, attribution_hours: int = 24) -> dict[str, Any] | None:
    """The shop's own recent traffic on these lists, as one arm: what a plan starts from."""
    end = timezone.now()
    start = end - timedelta(days=days)
    impressions = Event.objects.filter(
        event_type=EventType.IMPRESSION, scenario__in=scenarios, timestamp__gte=start, timestamp__lte=end
    )
    found = figures(impressions, start, end, timedelta(hours=attribution_hours), by=lambda row: "all")
    if "all" not in found:
        return None
    first = impressions.order_by("timestamp").values_list("timestamp", flat=True).first()
    span = max((end - first).total_seconds() / 86400, 1.0) if first else float(days)
    return {**found["all"], "days": span}


def figures(
    impressions: Any, start: Any, end: Any, window: timedelta, by: Any = None
) -> dict[str, dict[str, Any]]:
    """Per group of impressions (``by(row)``; default their arm): each shopper's lists, clicks
    on them, and the carts and purchases those clicks led to, summed for the statistics."""
    by = by or (lambda row: row["arm"])
    fields = (
        "user_id",
        "session_key",
        "arm",
        "list_id",
        "timestamp",
        "item_id",
        "position",
        "price",
        "quantity",
    )
    impressions = list(impressions.values(*fields))
    by_list = {row["list_id"]: row for row in impressions if row["list_id"]}
    shoppers: dict[str, dict[str, _Shopper]] = defaultdict(dict)
    for row in impressions:
        row["group"] = by(row)
        shoppers[row["group"]].setdefault(row_shopper(row), _Shopper()).lists += 1
    counted: set[tuple[str, int | None]] = set()
    clicks = (
        Event.objects.filter(
            event_type=EventType.CLICK,
            timestamp__gte=start,
            timestamp__lte=end + window,
            list_id__in=list(by_list),
        ).values(*fields)
        if by_list
        else []
    )
    for click in clicks:
        shown = by_list.get(click["list_id"])
        key = (click["list_id"], click["position"])
        if (
            shown is None
            or key in counted
            or not same_shopper(shown, click)
            or not shown["timestamp"] <= click["timestamp"] <= shown["timestamp"] + window
        ):
            continue
        counted.add(key)
        shopper = shoppers[shown["group"]][row_shopper(shown)]
        shopper.clicks += 1
        shopper.clicked.append((click["item_id"], click["timestamp"], shown))
    _attribute(shoppers, start, end + 2 * window, window)
    result = {}
    for group, rows in shoppers.items():
        values = list(rows.values())
        lists = [s.lists for s in values]
        result[group] = {
            "shoppers": len(values),
            "lists": sum(lists),
            "clicks": sum(s.clicks for s in values),
            "carts": sum(s.carts for s in values),
            "purchases": sum(s.purchases for s in values),
            "revenue": round(sum(s.revenue for s in values), 2),
            "sums": {
                "ctr": RatioSums.from_arrays([s.clicks for s in values], lists).to_dict(),
                "cart_rate": RatioSums.from_arrays([s.carts for s in values], lists).to_dict(),
                "purchase_rate": RatioSums.from_arrays([s.purchases for s in values], lists).to_dict(),
                "revenue_per_mille": RatioSums.from_arrays(
                    [1000 * s.revenue for s in values], lists
                ).to_dict(),
            },
        }
    return result


def _attribute(shoppers: dict[str, dict[str, _Shopper]], start: Any, end: Any, window: timedelta) -> None:
    """Carts and purchases of a clicked item by the same shopper within the window after the click."""
    clicked = [
        (figures, item, when, shown)
        for rows in shoppers.values()
        for figures in rows.values()
        for item, when, shown in figures.clicked
    ]
    if not clicked:
        return
    items = {item for _, item, _, _ in clicked}
    later = Event.objects.filter(
        event_type__in=(EventType.CART, EventType.PURCHASE),
        timestamp__gte=start,
        timestamp__lte=end,
        item_id__in=items,
    ).values("user_id", "session_key", "item_id", "timestamp", "event_type", "price", "quantity")
    by_item: dict[str, list[dict]] = defaultdict(list)
    for row in later:
        by_item[row["item_id"]].append(row)
    for figures, item, when, shown in clicked:
        followed = [
            row
            for row in by_item.get(item, ())
            if when <= row["timestamp"] <= when + window and same_shopper(shown, row)
        ]
        if any(row["event_type"] == EventType.CART for row in followed):
            figures.carts += 1
        bought = [row for row in followed if row["event_type"] == EventType.PURCHASE]
        if bought:
            figures.purchases += 1
            row = bought[0]
            figures.revenue += float(row["price"] or 0) * (row["quantity"] or 1)


def analyse(
    experiment: Experiment, arms: dict[str, dict[str, Any]], earlier: dict | None = None
) -> dict[str, Any]:
    """The test's reading of ``arms`` (from ``measure``): comparisons to the control with
    always-valid intervals and p-values (kept valid across looks by ``earlier``, the
    previous day's analysis), the sample ratio check, and the plan."""
    plan_arms = list(experiment.arms.all())
    control = next((arm for arm in plan_arms if arm.is_control), None)
    if control is None:
        return {"error": "no control arm"}
    observed = [int(arms.get(arm.name, {}).get("shoppers", 0)) for arm in plan_arms]
    ratio = sample_ratio(observed, [arm.share for arm in plan_arms]) if sum(observed) else None
    base = arms.get(control.name)
    comparisons: dict[str, dict[str, Any]] = {}
    for arm in plan_arms:
        if arm.is_control or base is None or arm.name not in arms:
            continue
        comparisons[arm.name] = {}
        for metric in METRICS:
            c = RatioSums.from_dict(base["sums"][metric])
            t = RatioSums.from_dict(arms[arm.name]["sums"][metric])
            tau = abs(experiment.minimum_detectable_effect * (c.rate or 0.0))
            before = ((earlier or {}).get("comparisons", {}).get(arm.name, {}) or {}).get(metric)
            found = compare(
                c, t, tau=tau, alpha=experiment.alpha, earlier=Comparison(**before) if before else None
            )
            if found is not None:
                comparisons[arm.name][metric] = found.__dict__.copy()
    analysis: dict[str, Any] = {
        "control": control.name,
        "comparisons": comparisons,
        "sample_ratio": None
        if ratio is None
        else {
            "observed": list(ratio.observed),
            "expected": list(ratio.expected),
            "p_value": ratio.p_value,
            "mismatch": ratio.mismatch,
        },
    }
    analysis["plan"] = _plan(experiment, base, plan_arms)
    return analysis


def _plan(experiment: Experiment, base: dict | None, arms: list[Arm]) -> dict[str, Any] | None:
    """Shoppers the test needs at the control's rate and variance so far, and days at its pace."""
    if base is None or not experiment.started_at:
        return None
    days = max((timezone.now() - experiment.started_at).total_seconds() / 86400, 1 / 24)
    return plan(experiment, base, days, arms)


def plan(
    experiment: Experiment,
    base: dict[str, Any] | None = None,
    days: float | None = None,
    arms: list | None = None,
) -> dict[str, Any] | None:
    """The sample size and duration of ``experiment`` for its minimum detectable effect, from
    ``base`` (one arm's figures over ``days``; default: the shop's own recent traffic on the
    experiment's lists). None when there is no traffic to plan from."""
    if base is None:
        base = traffic(list(experiment.scenarios or []), attribution_hours=experiment.attribution_hours)
        if base is None:
            return None
        days = base["days"]
    arms = arms if arms is not None else list(experiment.arms.all())
    control = next((arm for arm in arms if arm.is_control), None)
    shares = [arm.share for arm in arms if arm.is_control] + [arm.share for arm in arms if not arm.is_control]
    if control is None or len(shares) < 2 or min(shares) <= 0:
        shares = [50, 50]
    sums = RatioSums.from_dict(base["sums"][experiment.primary_metric])
    variance = sums.unit_variance()
    if not sums.rate or not variance:
        return None
    # The base is one arm (the control: its share of the shoppers) or all of the traffic.
    seen = sums.shoppers * (sum(shares) / shares[0] if control is not None and experiment.started_at else 1.0)
    try:
        found = plan_sample_size(
            sums.rate,
            variance,
            experiment.minimum_detectable_effect,
            shares=shares,
            alpha=experiment.alpha,
            power=experiment.power,
            daily_shoppers=seen / days if days else None,
        )
    except ValueError:
        return None
    return {
        "shoppers": found.shoppers,
        "days": found.days,
        "fixed_horizon_shoppers": found.fixed_horizon_shoppers,
        "baseline_rate": found.baseline_rate,
        "effect": found.effect,
    }


def _points(metric: str, value: float) -> str:
    """A difference in the metric's own words: points of a rate, money per thousand lists."""
    if metric == "revenue_per_mille":
        return f"{value:,.2f} per thousand lists"
    return f"{100 * value:.2f} points"


def verdict(experiment: Experiment, analysis: dict[str, Any]) -> str:
    """The test's reading of the primary metric, in words a shop owner can act on."""
    if analysis.get("error"):
        return f"Not readable: {analysis['error']}."
    ratio = analysis.get("sample_ratio")
    if ratio and ratio["mismatch"]:
        counts = ", ".join(f"{o:,}" for o in ratio["observed"])
        expected = ", ".join(f"{e:,.0f}" for e in ratio["expected"])
        return (
            f"The split is broken: the arms got {counts} shoppers where their shares expect {expected} "
            f"(sample ratio mismatch, p = {ratio['p_value']:.1e}). The figures are not a result until "
            "the cause is found (a cached page, a redirect, a bot)."
        )
    metric, control = experiment.primary_metric, analysis.get("control", "the control")
    level = round(100 * (1 - experiment.alpha))
    lines = []
    for arm, metrics in sorted(analysis.get("comparisons", {}).items()):
        found = metrics.get(metric)
        if found is None:
            lines.append(f"{arm}: not enough data yet.")
            continue
        name = NAMES[metric]
        if metric != "revenue_per_mille" and found["high"] - found["low"] > 2.0:
            # Wider than any rate can differ: too few shoppers yet for the always-valid bound.
            interval = f"too few shoppers yet for an always-valid {level} % interval"
        else:
            interval = f"always-valid {level} % interval {_points(metric, found['low'])} to {_points(metric, found['high'])}"
        if found["low"] > 0:
            lines.append(
                f"{arm} is better than {control} by {_points(metric, found['difference'])} of {name} "
                f"({interval}); enough data."
            )
        elif found["high"] < 0:
            lines.append(
                f"{arm} is worse than {control} by {_points(metric, -found['difference'])} of {name} "
                f"({interval}); enough data."
            )
        else:
            plan = analysis.get("plan") or {}
            more = ""
            if plan.get("shoppers"):
                days = f", about {plan['days']:.0f} days at this pace" if plan.get("days") else ""
                more = (
                    f" The plan for a change of {100 * experiment.minimum_detectable_effect:.0f} % needs "
                    f"{plan['shoppers']:,} shoppers{days}."
                )
            lines.append(
                f"No difference found yet between {arm} and {control} in {name}: "
                f"{_points(metric, found['difference'])} so far ({interval}).{more}"
            )
    return " ".join(lines) or "No shown lists yet."
