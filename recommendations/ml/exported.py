"""A saved model version read back: for serving, and as a recommender scored on new cases.

Promotion compares the active version with a candidate on the candidate's own holdout, so
a harder or easier window cannot decide it. The two fits number items differently: each
case is translated into the saved version's numbering (items it does not know drop out of
the history, as they do when it serves), scored by its numpy tower, and the scores are
translated back (an item it does not know is never recommended by it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..extras import MissingExtra, require
from . import item_index
from .base import Recommender
from .cases import CaseBatch
from .features import FeatureSpec, ItemFeatures, featurize
from .item_ids import ItemIds
from .tower import NumpyTower

np = require("ml", "numpy")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavedModel:
    """What a version's files hold, in memory (no Keras: the numpy tower scores)."""

    tower: NumpyTower
    item_ids: ItemIds  # index -> shop item id (index 0 is padding, ""), and back
    category_ids: list[str]  # category index -> category id; index 0 is unknown ("")
    spec: FeatureSpec
    item_features: ItemFeatures

    @classmethod
    def from_bundle(
        cls, weights: dict[str, Any], vocabulary: dict[str, Any], files: dict[str, Path] | None = None
    ) -> SavedModel:
        """Raises ``KeyError``/``ValueError`` on files that do not fit together.

        A version with an item index (``ml.item_index``, a large catalogue) scores a request's
        candidates only where faiss is installed (the ``large`` extra); elsewhere it scores
        every item, as a smaller catalogue does.
        """
        preprocessor = vocabulary["preprocessor"]
        item_ids = ItemIds(["", *preprocessor["item_ids"]])
        index = None
        if item_index.FILE in (files or {}):
            try:
                index = item_index.ItemIndex(files[item_index.FILE], len(item_ids) - 1)
            except MissingExtra:
                logger.warning("Version has an item index but faiss is not installed: scoring every item.")
        tower = NumpyTower(weights, index=index)
        if tower.item_table.shape[0] != len(item_ids):
            raise ValueError(
                f"the item table has {tower.item_table.shape[0]} rows for {len(item_ids)} item ids"
            )
        return cls(
            tower=tower,
            item_ids=item_ids,
            # The vocabulary's list already starts with "" (index 0: unknown), as the
            # preprocessor numbers categories; adding another shifted every name by one.
            category_ids=[str(category) for category in preprocessor["category_ids"]],
            spec=FeatureSpec.from_json(vocabulary["feature_spec"]),
            item_features=ItemFeatures.from_json(vocabulary["item_features"]),
        )


class SavedRecommender(Recommender):
    """A saved version scored on cases numbered by another fit's preprocessor."""

    name = "saved_version"

    def __init__(self, saved: SavedModel) -> None:
        self.saved = saved

    def fit(self, train: Any, n_items: int) -> SavedRecommender:
        raise TypeError(
            "a saved version is already fitted: use fit_preprocessed with the cases' preprocessor"
        )

    def fit_preprocessed(self, train: Any, preprocessor: Any) -> SavedRecommender:
        """Learns nothing: maps the preprocessor's item numbering onto the saved one."""
        ids = [str(item) for item in preprocessor.item_ids_]
        self.to_saved_ = np.concatenate([[0], np.maximum(self.saved.item_ids.indices(ids), 0)])
        self.n_items_ = len(ids)
        return self

    def score(self, cases: CaseBatch) -> np.ndarray:
        items = self.to_saved_[cases.items]
        known = items > 0
        # Unknown items leave the history and the known ones keep their order, right-aligned.
        order = np.argsort(known, axis=1, kind="stable")

        def moved(values: np.ndarray) -> np.ndarray:
            return np.take_along_axis(values, order, axis=1)

        translated = CaseBatch(
            items=moved(np.where(known, items, 0)).astype(np.int32),
            types=moved(np.where(known, cases.types, 0)).astype(np.int8),
            times=moved(np.where(known, cases.times, 0.0)),
            in_session=moved(cases.in_session & known),
            now=cases.now,
            targets=np.zeros(len(cases), np.int32),
            target_types=cases.target_types,
            weights=cases.weights,
            is_new=cases.is_new,
        )
        saved_scores = self.saved.tower.scores(
            featurize(translated, self.saved.spec, self.saved.item_features), now=cases.now
        )
        scores = np.take(saved_scores, self.to_saved_, axis=1).astype(np.float32)
        scores[:, self.to_saved_ == 0] = -np.inf
        return scores
