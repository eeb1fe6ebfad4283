"""Off-policy evaluation: a candidate ranking's click-through, estimated from lists it never served.

The log holds, for each shown list (impression) i and place k, the item shown, the chance
``p[i, k]`` it had of being shown there (``serving/exploration.py``), and whether it was
clicked. The candidate says which item *it* would have put in each place, ``e[i, k]``.
Under the position-based click model (a click at a place depends on the item and the place,
not on the rest of the list), the candidate's clicks per list are estimated by

- **IPS** (inverse propensity scoring): the mean over lists of
  ``sum_k 1[shown == e] click / p``; unbiased when every item the candidate would place
  had a chance of being shown there;
- **SNIPS** (self-normalized): per place, ``sum_i w click / sum_i w`` with
  ``w = 1[shown == e] / p``: slightly biased, much steadier when weights are large;
- **DR** (doubly robust): a click model ``q(item, place)`` fitted on the log, corrected by
  IPS where the candidate agrees with what was shown; unbiased if either part is right.

Intervals are normal, from the per-list terms (SNIPS by the delta method). ``matched`` says
how many places the candidate agreed with the log and ``effective_lists`` the effective
sample size of the weights: few matches mean a wide interval, never a confident guess.
References: Horvitz and Thompson (1952); Swaminathan and Joachims, "The Self-Normalized
Estimator for Counterfactual Learning" (NeurIPS 2015); Dudík, Langford and Li, "Doubly
Robust Policy Evaluation and Learning" (ICML 2011); Li et al., "Counterfactual Estimation
and Optimization of Click Metrics in Search Engines" (WWW 2015) for the per-place form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Logged:
    """Logged lists as arrays [lists, places]; ``shown`` "" where a list was shorter."""

    shown: np.ndarray  # object (item ids)
    propensity: np.ndarray  # float, 1 where nothing was shown
    clicked: np.ndarray  # float 0/1

    @classmethod
    def from_lists(
        cls,
        shown: Sequence[Sequence[str]],
        propensities: Sequence[Sequence[float]],
        clicks: Sequence[Sequence[int]],
    ) -> Logged:
        width = max((len(row) for row in shown), default=0)
        items = np.full((len(shown), width), "", dtype=object)
        chance = np.ones((len(shown), width))
        click = np.zeros((len(shown), width))
        for i, (row, p, c) in enumerate(zip(shown, propensities, clicks, strict=True)):
            items[i, : len(row)], chance[i, : len(p)], click[i, : len(c)] = row, p, c
        return cls(items, chance, click)

    @property
    def lists(self) -> int:
        return int(self.shown.shape[0])


@dataclass(frozen=True)
class Estimate:
    value: float  # clicks per list
    low: float
    high: float

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class OffPolicyReport:
    ips: Estimate
    snips: Estimate
    dr: Estimate
    logged: float  # the logging policy's own clicks per list
    lists: int
    matched: int  # places where the candidate shows what was shown
    effective_lists: float  # (sum w)^2 / sum w^2 over lists

    def to_dict(self) -> dict:
        return {
            "ips": self.ips.to_dict(),
            "snips": self.snips.to_dict(),
            "dr": self.dr.to_dict(),
            "logged": self.logged,
            "lists": self.lists,
            "matched": self.matched,
            "effective_lists": self.effective_lists,
        }


def _normal(terms: np.ndarray) -> Estimate:
    n = len(terms)
    value = float(terms.mean()) if n else 0.0
    half = Z95 * float(terms.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    return Estimate(value, value - half, value + half)


def weights(logged: Logged, candidate: np.ndarray) -> np.ndarray:
    """``1[shown == candidate] / p`` per list and place (0 where the candidate differs)."""
    match = (logged.shown == candidate[:, : logged.shown.shape[1]]) & (logged.shown != "")
    return np.where(match, 1.0 / logged.propensity, 0.0)


def ips(logged: Logged, candidate: np.ndarray) -> Estimate:
    return _normal((weights(logged, candidate) * logged.clicked).sum(axis=1))


def snips(logged: Logged, candidate: np.ndarray) -> Estimate:
    """Per place: sum(w * click) / sum(w); the interval by the delta method, summed over places
    as the per-list terms of the linearization."""
    w = weights(logged, candidate)
    n = w.shape[0]
    totals = w.sum(axis=0)
    rates = np.divide((w * logged.clicked).sum(axis=0), totals, out=np.zeros(w.shape[1]), where=totals > 0)
    mean_w = totals / max(n, 1)
    # Influence of each list on each place's ratio: w (click - rate) / mean(w).
    influence = np.divide(w * (logged.clicked - rates), mean_w, out=np.zeros_like(w), where=mean_w > 0)
    terms = influence.sum(axis=1)
    value = float(rates.sum())
    half = Z95 * float(terms.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    return Estimate(value, value - half, value + half)


@dataclass(frozen=True)
class ClickModel:
    """q(item, place) = place's click rate x the item's smoothed click-through relative to it."""

    place_rate: np.ndarray
    item_factor: dict[str, float]

    @classmethod
    def fit(cls, logged: Logged, smoothing: float = 5.0) -> ClickModel:
        present = logged.shown != ""
        shown_at = present.sum(axis=0)
        place_rate = np.divide(
            (logged.clicked * present).sum(axis=0),
            shown_at,
            out=np.zeros(present.shape[1]),
            where=shown_at > 0,
        )
        expected: dict[str, float] = {}
        clicks: dict[str, float] = {}
        for (i, k), item in np.ndenumerate(logged.shown):
            if item:
                expected[item] = expected.get(item, 0.0) + place_rate[k]
                clicks[item] = clicks.get(item, 0.0) + logged.clicked[i, k]
        prior = smoothing * max(float(place_rate.mean()) if len(place_rate) else 0.0, 1e-6)
        factor = {item: (clicks[item] + prior) / (expected[item] + prior) for item in expected}
        return cls(place_rate, factor)

    def predict(self, items: np.ndarray) -> np.ndarray:
        width = min(items.shape[1], len(self.place_rate))
        q = np.zeros(items.shape)
        for (i, k), item in np.ndenumerate(items[:, :width]):
            if item:
                q[i, k] = min(self.place_rate[k] * self.item_factor.get(item, 1.0), 1.0)
        return q


def doubly_robust(logged: Logged, candidate: np.ndarray, model: ClickModel | None = None) -> Estimate:
    model = model or ClickModel.fit(logged)
    w = weights(logged, candidate)
    direct = model.predict(candidate[:, : logged.shown.shape[1]])
    correction = w * (logged.clicked - model.predict(logged.shown))
    return _normal((direct + correction).sum(axis=1))


def evaluate(logged: Logged, candidate: np.ndarray) -> OffPolicyReport:
    """Every estimate of the candidate's clicks per list, with the log's own figure beside them."""
    candidate = _widen(candidate, logged.shown.shape[1])
    w = weights(logged, candidate)
    per_list = w.sum(axis=1)
    square = float((per_list**2).sum())
    return OffPolicyReport(
        ips=ips(logged, candidate),
        snips=snips(logged, candidate),
        dr=doubly_robust(logged, candidate),
        logged=float(logged.clicked.sum(axis=1).mean()) if logged.lists else 0.0,
        lists=logged.lists,
        matched=int((w > 0).sum()),
        effective_lists=float(per_list.sum() ** 2 / square) if square > 0 else 0.0,
    )


def _widen(candidate: np.ndarray, width: int) -> np.ndarray:
    candidate = np.asarray(candidate, dtype=object)
    if candidate.shape[1] >= width:
        return candidate
    wide = np.full((candidate.shape[0], width), "", dtype=object)
    wide[:, : candidate.shape[1]] = candidate
    return wide
