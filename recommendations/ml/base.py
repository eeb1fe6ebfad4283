"""The interface every recommender implements, so one evaluation runs them all side by side."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from ..extras import require
from .cases import CaseBatch

if TYPE_CHECKING:  # pandas is for training: serving imports this module without it
    import pandas as pd

np = require("ml", "numpy")


class Recommender(ABC):
    """Scores every item for each case; higher is better.

    scikit-learn conventions: ``__init__`` stores parameters only, ``fit`` returns ``self``,
    learned state ends in ``_``.
    """

    name: str = "recommender"

    @abstractmethod
    def fit(self, train: pd.DataFrame, n_items: int) -> Recommender:
        """Learn from a transformed training frame; items are indexed 1..``n_items``."""

    @abstractmethod
    def score(self, cases: CaseBatch) -> np.ndarray:
        """float32 [len(cases), n_items + 1]; column 0 (padding) is ignored."""

    def fit_preprocessed(self, train: pd.DataFrame, preprocessor: Any) -> Recommender:
        """Fit on a frame transformed by ``preprocessor`` (models that use item features override)."""
        return self.fit(train, int(preprocessor.n_items_))
