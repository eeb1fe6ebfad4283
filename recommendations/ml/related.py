"""Lists about one item: "similar items", with the evidence behind each one.

A similar list is the for-you model asked about one item: the history is a single view of
it, so the scores say what shoppers who view it view next (the transitions, EASE and
content priors, the category match and popularity, all learned on the shop's events).
What a shopper is shown must also look related, so only candidates with **evidence** are
kept (a shorter list rather than an unrelated one): shoppers co-viewed the two (the
anchor's neighbours in the co-view priors, or the live co-views serving counts), or the
two share a category, or at least its top level. Each item's reason names its strongest
evidence. Everything here is numpy: serving calls it (``item_to_item`` measures it).
"""

from __future__ import annotations

from enum import IntEnum

from ..extras import require
from .tower import NumpyTower

np = require("ml", "numpy")

#: Priors learned from what shoppers viewed together or next: evidence of a co-view.
CO_VIEW_PRIORS = ("transitions", "cooccurrence", "ease")


class Evidence(IntEnum):
    """Why an item is in a list about another, strongest first (a lower value wins)."""

    CO_VIEW = 1  # shoppers viewed both (counted by distinct sessions)
    SAME_CATEGORY = 2
    SAME_TOP_CATEGORY = 3  # the same top level of the category path ("electronics")
    NONE = 9


def co_view_neighbours(tower: NumpyTower, anchor: int) -> np.ndarray:
    """The items the model's co-view priors list for ``anchor``."""
    items, scores = tower.neighbours(CO_VIEW_PRIORS, anchor)
    found = np.unique(items[(items > 0) & (scores > 0)])
    return found[found != anchor].astype(np.int64)


def evidence(
    anchor: int,
    candidates: np.ndarray,
    category: np.ndarray,
    top_category: np.ndarray,
    co_viewed: np.ndarray,
) -> np.ndarray:
    """``Evidence`` of each candidate (int8 [J]) for a list about ``anchor``.

    ``category`` and ``top_category`` are per-item codes (0: unknown, never a match);
    ``co_viewed`` the items with co-view evidence (the priors' neighbours, live co-views).
    """
    candidates = np.asarray(candidates, np.int64)
    result = np.full(len(candidates), Evidence.NONE, np.int8)
    top = top_category[anchor]
    result[(top > 0) & (top_category[candidates] == top)] = Evidence.SAME_TOP_CATEGORY
    leaf = category[anchor]
    result[(leaf > 0) & (category[candidates] == leaf)] = Evidence.SAME_CATEGORY
    result[np.isin(candidates, co_viewed)] = Evidence.CO_VIEW
    return result


def top_levels(category_ids: list[str], item_category: np.ndarray) -> np.ndarray:
    """Each item's top category level as a code (0: unknown); a category without a path
    ("2053013552326770905") is its own top level."""
    tops = [str(c).split(".")[0] for c in category_ids]
    codes: dict[str, int] = {}
    table = np.array([codes.setdefault(top, len(codes) + 1) if top else 0 for top in tops], np.int32)
    return table[np.asarray(item_category, np.int64)]
