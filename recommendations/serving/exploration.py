"""Exploration: some lists are drawn at random from the ranking's best, with the chance logged.

A ranking only ever learns about what it shows. With ``EXPLORATION["SHARE"]`` = ε, each
list is, with probability ε, replaced by a uniformly random ordering of items drawn from
the ranking's best ``limit + EXPLORATION["POOL"]`` (past the same rules: live, not hidden,
diverse); pinned and sponsored places stay as they are. ε of all places are explored, as
in ε-greedy on positions, but a whole list at a time: that way every one of those N items
has the same chance, 1/N, of *every* place, so logged traffic can judge a candidate that
merely reorders the best items (the common case between two versions), which place-by-place
ε-greedy, where a ranked item only ever appears in its own place, cannot. Thompson sampling
on the model's scores was the other option; its chances have no closed form (they need
Monte Carlo per list), and logged chances must be exact for unbiased estimates.

The chance each shown item had of its place is logged with the impression: for item x in
place k, ``(1 - ε) [x is the ranked item of k] + ε / N``, and 1 for a fixed place. With it,
traffic served by one version estimates another's clicks per list (``ml.off_policy``).
"""

from __future__ import annotations

import random
from dataclasses import replace

from ..conf import app_settings
from .rules import Recommendation

_random = random.Random()


def pool_size(scenario: str) -> int:
    """How many items past the limit a list of ``scenario`` needs for exploration (0: none)."""
    settings = app_settings.EXPLORATION
    if float(settings.get("SHARE") or 0.0) <= 0.0 or scenario not in settings.get("SCENARIOS", ()):
        return 0
    return max(int(settings.get("POOL") or 0), 0)


def explore(
    results: list[Recommendation], limit: int, share: float, rng: random.Random | None = None
) -> tuple[list[Recommendation], list[float]]:
    """The ``limit`` items to show out of ``results`` (the list, then its pool), and the
    probability with which each was chosen for its place."""
    ranked = list(results[:limit])
    if share <= 0.0 or len(results) <= limit:
        return ranked, [1.0] * len(ranked)
    rng = rng or _random
    places = [k for k, rec in enumerate(ranked) if not rec.fixed]
    fixed = {rec.item_id for rec in ranked if rec.fixed}
    choices = [rec for rec in results if not rec.fixed and rec.item_id not in fixed]
    shown = list(ranked)
    if places and rng.random() < share:
        for k, rec in zip(places, rng.sample(choices, len(places)), strict=True):
            shown[k] = replace(rec, explored=rec.item_id != ranked[k].item_id)
    uniform = share / len(choices)
    chances = [
        1.0 if rec.fixed else (1.0 - share) * (rec.item_id == ranked[k].item_id) + uniform
        for k, rec in enumerate(shown)
    ]
    return shown, chances
