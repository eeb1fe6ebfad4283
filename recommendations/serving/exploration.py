"""Exploration: some places of a list show an item from just past it, with the chance logged.

A ranking only ever learns about what it shows. With ``EXPLORATION["SHARE"]`` = ε, each
place of a list (pinned and sponsored ones aside) is, independently with probability ε,
given to an item drawn at random from the *pool*: the next ``EXPLORATION["POOL"]`` items
of the same ranking, past the same rules (live, not hidden, diverse). This is ε-greedy on
positions; it was chosen over Thompson sampling on the model's scores because its chances
are exact and cheap to log, and because it keeps the list's top order (a shopper sees the
same best items, with an occasional near-miss among them).

The chance each shown item had of being shown in its place is logged with the impression:
``1 - ε`` for the ranked item, ``ε / |pool|`` for a pool item (each draw without
replacement is, on its own, uniform over the pool), 1 for a fixed place; exact also when a
short pool runs dry (see ``explore``). With it, traffic
served by one version estimates another's click-through (``ml.off_policy``).
"""

from __future__ import annotations

import math
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
    shown, pool = list(results[:limit]), list(results[limit:])
    if share <= 0.0 or not pool:
        return shown, [1.0] * len(shown)
    rng = rng or _random
    size = len(pool)
    left = list(range(size))
    chances = [1.0] * len(shown)
    before = 0  # explorable places before this one
    for k, rec in enumerate(shown):
        if rec.fixed:
            continue
        # The pool runs dry once ``size`` earlier places were explored: the chance a draw
        # still happens here is P(Binomial(before, ε) < size).
        draws_left = _binomial_below(before, share, size)
        before += 1
        if rng.random() < share and left:
            shown[k] = replace(pool[left.pop(rng.randrange(len(left)))], explored=True)
            chances[k] = share * draws_left / size
        else:
            chances[k] = 1.0 - share * draws_left
    return shown, chances


def _binomial_below(n: int, p: float, bound: int) -> float:
    """P(X < bound) for X ~ Binomial(n, p)."""
    if bound > n:
        return 1.0
    return sum(math.comb(n, i) * p**i * (1.0 - p) ** (n - i) for i in range(bound))
