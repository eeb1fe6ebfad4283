"""How strongly baskets tie items together: the ranking of "bought together", in plain Python.

Lift (the association-rule measure) divides by how common the other item is, so a product
bought once, with anything, tops every list. Confidence alone, P(b | a), is popularity
again. Between the two, each anchor ``a`` adds the smoothed log-ratio of P(b | a) to P(b)
to b's log-popularity, weighted by ``ASSOCIATION_WEIGHT``:

    score(b) = log p(b) + w · sum over a [log((C(a, b) + s p(b)) / (C(a) + s)) - log p(b)]

(a naive-Bayes posterior, tempered by w). With no co-count the bracket tends to
log(s / (C(a) + s)), so a pair seen once among many baskets weighs little. The counts are
distinct shoppers (``popularity.basket_evidence``), never raw events; the constants were
chosen on a dev split of the earlier Groceries baskets (``python -m bench lists``), never on
the later ones the section reports.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

#: w: how much the co-counts move an item away from its popularity (0: popularity alone).
ASSOCIATION_WEIGHT = 0.5
#: s: pseudo-baskets of smoothing towards independence, scaled by p(b).
SMOOTHING = 30.0


def association_scores(
    anchors: Iterable[tuple[float, Mapping[str, float]]],
    popularity: Mapping[str, float],
    total: float,
    candidates: Iterable[str] | None = None,
    *,
    weight: float = ASSOCIATION_WEIGHT,
    smoothing: float = SMOOTHING,
) -> dict[str, float]:
    """Item -> score for a basket of ``anchors``, each ``(C(a), {b: C(a, b)})``.

    ``popularity``: b -> baskets (shoppers) that had b, out of ``total``. ``candidates``:
    the items to score (default: every item some anchor was seen with).
    """
    anchors = [(float(n), dict(pairs)) for n, pairs in anchors]
    if candidates is None:
        candidates = {item for _, pairs in anchors for item in pairs}
    n_items = max(len(popularity), 1)
    scores = {}
    for item in candidates:
        p = (float(popularity.get(item, 0.0)) + 1.0) / (float(total) + n_items)
        log_p = math.log(p)
        tie = sum(
            math.log((pairs.get(item, 0.0) + smoothing * p) / (n + smoothing)) - log_p for n, pairs in anchors
        )
        scores[item] = log_p + weight * tie
    return scores
