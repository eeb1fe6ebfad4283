"""The item-to-item evaluation: how well a list about one item finds what shoppers view next.

Cases come from the usual evaluation cases (``cases.evaluation_cases``): given an item a
shopper viewed, the next different item they viewed, with the history cut to that one view
(``anchor_cases``), so any ``Recommender`` scores them as a list about the item.
``SimilarItems`` is what a similar list shows (``related``): a fitted model's scores kept to
candidates with evidence. ``python -m bench lists`` runs it beside co-views, BM25 item-kNN
and same-category popularity.
"""

from __future__ import annotations

from ..extras import require
from .base import Recommender
from .cases import TYPE_INDEX, CaseBatch
from .related import Evidence, co_view_neighbours, evidence, top_levels

np = require("ml", "numpy")

#: Added to the scores of the anchor's category when it comes first (scores are log-probabilities).
CATEGORY_FIRST = 1e6


def anchor_cases(cases: CaseBatch) -> tuple[CaseBatch, np.ndarray]:
    """Item-to-item cases, and the rows of ``cases`` they come from: given an item a shopper
    viewed, the next different item they viewed.

    From evaluation cases whose latest history event is a view in the current session and
    whose next event is a view of another item; each history is cut to that one view, so a
    model scores what follows the item itself (as a similar list asks), not the shopper.
    """
    last = cases.items[:, -1]
    view = TYPE_INDEX["view"]
    keep = (
        (last > 0)
        & cases.in_session[:, -1]
        & (cases.types[:, -1] == view)
        & (cases.target_types == view)
        & (cases.targets != last)
        & (cases.targets > 0)
    )
    rows = np.flatnonzero(keep)
    chosen = cases.take(rows)
    alone = np.zeros_like(chosen.items, dtype=bool)
    alone[:, -1] = True

    def only_last(values: np.ndarray) -> np.ndarray:
        return np.where(alone, values, np.zeros((), values.dtype))

    alone_cases = CaseBatch(
        items=only_last(chosen.items),
        types=only_last(chosen.types),
        times=only_last(chosen.times),
        in_session=alone.copy(),
        now=chosen.now,
        targets=chosen.targets,
        target_types=chosen.target_types,
        weights=chosen.weights,
        is_new=np.ones(len(chosen), bool),  # the target is never the anchor
    )
    return alone_cases, rows


class SimilarItems(Recommender):
    """A fitted model's scores for one-item histories, kept to candidates with evidence.

    What a similar list shows, for the item-to-item evaluation: everything without
    evidence scores -inf (the list comes out shorter instead). ``same_category_first`` puts
    the anchor's category ahead of the rest, an order the shop does not use: on the dev
    splits it changed nothing the model's order does not already do (``bench lists``).
    """

    name = "similar_items"

    def __init__(self, model: Recommender, same_category_first: bool = False) -> None:
        self.model = model
        self.same_category_first = same_category_first

    def fit(self, train, n_items: int) -> SimilarItems:
        raise TypeError("fit the wrapped model, then call fit_preprocessed")

    def fit_preprocessed(self, train, preprocessor) -> SimilarItems:
        """Reads the already fitted model's priors and the items' categories (fits nothing)."""
        self.category_ = np.asarray(preprocessor.item_category_, np.int64)
        self.top_category_ = top_levels(list(preprocessor.category_ids_), self.category_)
        return self

    def score(self, cases: CaseBatch) -> np.ndarray:
        scores = self.model.score(cases)
        everything = np.arange(scores.shape[1])
        for row, anchor in enumerate(cases.items[:, -1]):
            found = evidence(
                int(anchor),
                everything,
                self.category_,
                self.top_category_,
                co_view_neighbours(self.model.tower_, int(anchor)),
            )
            scores[row, found == Evidence.NONE] = -np.inf
            if self.same_category_first and self.category_[anchor] > 0:
                scores[row, self.category_ == self.category_[anchor]] += CATEGORY_FIRST
        return scores
