"""Model inputs from cases: history ids, event type x session flag, age buckets, context.

One function, ``featurize``, serves training, evaluation and serving, so what the model
saw while learning is exactly what it sees when it recommends. Everything here is numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..extras import require
from .cases import N_TYPES, CaseBatch

np = require("ml", "numpy")
pd = require("ml", "pandas")

#: Seconds of the first age bucket; each next bucket doubles (30 s, 1 min, 2 min, ... ~8 months).
AGE_UNIT_SECONDS = 30.0


@dataclass
class ItemFeatures:
    """What the model knows of each item besides its id (index 0 = padding/unknown)."""

    category: np.ndarray  # int32 [n_items + 1], 0 = unknown
    price_bucket: np.ndarray  # int8 [n_items + 1], 0 = unknown
    n_categories: int
    n_price_buckets: int

    def to_json(self) -> dict:
        return {
            "category": self.category.tolist(),
            "price_bucket": self.price_bucket.tolist(),
            "n_categories": self.n_categories,
            "n_price_buckets": self.n_price_buckets,
        }

    @classmethod
    def from_json(cls, data: dict) -> ItemFeatures:
        return cls(
            category=np.asarray(data["category"], dtype=np.int32),
            price_bucket=np.asarray(data["price_bucket"], dtype=np.int8),
            n_categories=int(data["n_categories"]),
            n_price_buckets=int(data["n_price_buckets"]),
        )

    @classmethod
    def from_preprocessor(cls, preprocessor: Any) -> ItemFeatures:
        """The fitted preprocessor's item vocabulary, so training and serving share one numbering."""
        return cls(
            category=np.asarray(preprocessor.item_category_, dtype=np.int32),
            price_bucket=np.asarray(preprocessor.item_price_bucket_, dtype=np.int8),
            n_categories=len(preprocessor.category_ids_),
            n_price_buckets=int(preprocessor.price_buckets),
        )

    @classmethod
    def unknown(cls, n_items: int) -> ItemFeatures:
        """No category or price known for any item (a model fitted on ids alone)."""
        return cls(np.zeros(n_items + 1, np.int32), np.zeros(n_items + 1, np.int8), n_categories=1, n_price_buckets=1)


@dataclass
class FeatureSpec:
    """Shapes and vocabularies of the inputs; saved with the model (JSON)."""

    history_length: int = 20
    n_age_buckets: int = 24
    top_categories: list[int] = field(default_factory=list)  # category indices with their own affinity slot
    n_price_buckets: int = 10

    @property
    def context_dim(self) -> int:
        return len(self.top_categories) + 5

    @property
    def n_type_slots(self) -> int:
        return 2 * N_TYPES  # event type, in or out of the current session

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> FeatureSpec:
        return cls(**data)

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, item_features: ItemFeatures, history_length: int, max_categories: int = 32
    ):
        counts = np.bincount(
            item_features.category[frame.loc[frame["item_idx"] > 0, "item_idx"].to_numpy()],
            minlength=item_features.n_categories,
        )
        counts[0] = 0
        top = [int(c) for c in np.argsort(-counts, kind="stable")[:max_categories] if counts[c] > 0]
        return cls(
            history_length=history_length, top_categories=top, n_price_buckets=item_features.n_price_buckets
        )


def featurize(cases: CaseBatch, spec: FeatureSpec, item_features: ItemFeatures) -> dict[str, np.ndarray]:
    """Model inputs for ``cases``: ``items``, ``types``, ``ages`` [n, L] and ``context`` [n, C]."""
    length = spec.history_length
    items = cases.items[:, -length:].astype(np.int32)
    present = items > 0
    types = np.where(present, cases.types[:, -length:] + N_TYPES * cases.in_session[:, -length:], 0).astype(
        np.int32
    )
    age = np.maximum(cases.now[:, None] - cases.times[:, -length:], 0.0)
    buckets = 1 + np.minimum(np.floor(np.log2(1.0 + age / AGE_UNIT_SECONDS)), spec.n_age_buckets - 2)
    ages = np.where(present, buckets, 0).astype(np.int32)

    n = len(items)
    count = present.sum(axis=1)
    denominator = np.maximum(count, 1)[:, None].astype(np.float32)
    categories = item_features.category[items]
    affinity = np.zeros((n, len(spec.top_categories)), dtype=np.float32)
    for slot, category in enumerate(spec.top_categories):
        affinity[:, slot] = ((categories == category) & present).sum(axis=1)
    affinity /= denominator
    other = 1.0 - affinity.sum(axis=1, keepdims=True)
    prices = item_features.price_bucket[items].astype(np.float32)
    priced = present & (prices > 0)
    price_level = (
        (prices * priced).sum(axis=1) / np.maximum(priced.sum(axis=1), 1) / max(spec.n_price_buckets, 1)
    )
    context = np.concatenate(
        [
            affinity,
            np.clip(other, 0.0, 1.0),
            price_level[:, None],
            (priced.sum(axis=1) > 0)[:, None],
            (np.log1p(count) / np.log1p(length))[:, None],
            ((cases.in_session[:, -length:] & present).sum(axis=1) / denominator[:, 0])[:, None],
        ],
        axis=1,
    ).astype(np.float32)
    return {"items": items, "types": types, "ages": ages, "context": context}
