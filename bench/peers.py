"""Peer libraries a shop would otherwise pick, behind our ``Recommender`` interface (benchmark only).

They are evaluated by ``bench/learning.py`` on the same cases as our model and baselines
(``evaluation.run_evaluation``), so the comparison is like for like. They need the
``implicit`` and ``scipy`` packages of ``bench/requirements.txt``; neither is a dependency of
the project.

Both fit on a sparse shopper x item matrix of the transformed training frame (rows: the
frame's ``shopper``, columns: ``item_idx``, column 0 = padding and empty), each event counting
its event-type weight (``preprocessing.DEFAULT_EVENT_WEIGHTS``: view 1, cart 3, purchase 5),
repeats summed. Both score a ``CaseBatch`` from its history items only, each history event
weighted by its event type and by ``baselines.recency_weights`` (the last item most, the
session before a known user's earlier items), exactly as our item-kNN and EASE baselines
weight them; items that score nothing are ordered by training popularity (the baselines'
tie-break), so every list has k items.

- ``implicit_bm25_knn``: ``implicit.nearest_neighbours.BM25Recommender`` (item-item kNN on
  BM25-weighted co-occurrence, ``K`` neighbours per item); a case's scores are its history
  vector times the library's item-item similarity matrix, which is what the library's own
  ``recommend`` computes for a user row.
- ``implicit_als``: ``implicit.als.AlternatingLeastSquares`` (Hu, Koren and Volinsky's
  implicit-feedback matrix factorization, conjugate-gradient solver, CPU). A case is a new
  user: its factors come from the library's ``recalculate_user`` (the exact least-squares
  fold-in ``(YᵀCY + λI)⁻¹ YᵀCp`` on the item factors, as ``recommend(recalculate_user=True)``
  does), with confidence ``1 + weight`` per history item, so every history item counts at
  least as much as one training event and recent ones up to twice as much; scores are the
  user factors times the item factors.

BLAS is limited to one thread while ``implicit`` fits, as the library asks.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import sparse

from recommendations.ml.base import Recommender
from recommendations.ml.baselines import TIE_BREAK, recency_weights
from recommendations.ml.cases import TYPE_INDEX, CaseBatch
from recommendations.ml.preprocessing import DEFAULT_EVENT_WEIGHTS

#: Weight of each ``type_idx`` (0 = padding): the default event weights of preprocessing.
TYPE_WEIGHTS = np.zeros(max(TYPE_INDEX.values()) + 1, dtype=np.float32)
for _event, _index in TYPE_INDEX.items():
    TYPE_WEIGHTS[_index] = DEFAULT_EVENT_WEIGHTS.get(_event, 1.0)


def shopper_item_matrix(train: pd.DataFrame, n_items: int) -> sparse.csr_matrix:
    """float32 CSR [shoppers, n_items + 1]: summed event-type weights of each shopper's items."""
    item = train["item_idx"].to_numpy(np.int64)
    kind = train["type_idx"].to_numpy(np.int64)
    keep = (item > 0) & (kind > 0)
    shopper = pd.factorize(train["shopper"].to_numpy(dtype=object)[keep])[0]
    data = TYPE_WEIGHTS[kind[keep]]
    n_shoppers = int(shopper.max()) + 1 if len(shopper) else 1
    matrix = sparse.coo_matrix((data, (shopper, item[keep])), shape=(n_shoppers, n_items + 1))
    return matrix.tocsr().astype(np.float32)  # duplicates summed


def history_matrix(cases: CaseBatch, n_items: int, history_weight: float = 0.5) -> sparse.csr_matrix:
    """float32 CSR [cases, n_items + 1]: each history event's type weight x recency weight, summed."""
    weights = recency_weights(cases, history_weight) * TYPE_WEIGHTS[cases.types.astype(np.int64)]
    rows = np.repeat(np.arange(len(cases)), cases.history_length)
    items = cases.items.reshape(-1).astype(np.int64)
    values = weights.reshape(-1)
    keep = (items > 0) & (values > 0)
    matrix = sparse.coo_matrix(
        (values[keep], (rows[keep], items[keep])), shape=(len(cases), n_items + 1), dtype=np.float32
    )
    return matrix.tocsr()


def _popularity_share(train: pd.DataFrame, n_items: int) -> np.ndarray:
    item = train["item_idx"].to_numpy(np.int64)
    item = item[(item > 0) & (train["type_idx"].to_numpy() > 0)]
    counts = np.bincount(item, minlength=n_items + 1)[: n_items + 1].astype(np.float64)
    counts[0] = 0.0
    top = counts.max() if len(counts) else 0.0
    return (counts / top if top > 0 else counts).astype(np.float32)


def _one_blas_thread():
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, "blas")


class ImplicitBM25KNN(Recommender):
    """``implicit``'s BM25 item-item kNN; score = history vector @ the library's similarity."""

    name = "implicit_bm25_knn"

    def __init__(self, neighbours: int = 100, k1: float = 1.2, b: float = 0.75, history_weight: float = 0.5):
        self.neighbours = neighbours
        self.k1 = k1
        self.b = b
        self.history_weight = history_weight

    def fit(self, train: pd.DataFrame, n_items: int) -> ImplicitBM25KNN:
        from implicit.nearest_neighbours import BM25Recommender

        self.n_items_ = int(n_items)
        self.popularity_ = _popularity_share(train, self.n_items_)
        with _one_blas_thread(), warnings.catch_warnings():
            # The library's own BM25 weighting hands its kNN a COO matrix and warns about it.
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            model = BM25Recommender(K=self.neighbours, K1=self.k1, B=self.b)
            model.fit(shopper_item_matrix(train, self.n_items_), show_progress=False)
        self.similarity_ = sparse.csr_matrix(model.similarity, dtype=np.float32)
        return self

    def score(self, cases: CaseBatch) -> np.ndarray:
        history = history_matrix(cases, self.n_items_, self.history_weight)
        scores = np.asarray((history @ self.similarity_).todense(), dtype=np.float32)
        return scores + TIE_BREAK * self.popularity_[None, :]


class ImplicitALS(Recommender):
    """``implicit``'s ALS; a case's factors are folded in from its history by least squares."""

    name = "implicit_als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        iterations: int = 15,
        alpha: float = 1.0,
        random_state: int = 0,
        history_weight: float = 0.5,
    ):
        self.factors = factors
        self.regularization = regularization
        self.iterations = iterations
        self.alpha = alpha
        self.random_state = random_state
        self.history_weight = history_weight

    def fit(self, train: pd.DataFrame, n_items: int) -> ImplicitALS:
        from implicit.als import AlternatingLeastSquares

        self.n_items_ = int(n_items)
        self.popularity_ = _popularity_share(train, self.n_items_)
        with _one_blas_thread():
            self.model_ = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.random_state,
                use_gpu=False,
            )
            self.model_.fit(shopper_item_matrix(train, self.n_items_), show_progress=False)
        self.item_factors_ = np.asarray(self.model_.item_factors, dtype=np.float32)
        return self

    def user_factors(self, cases: CaseBatch) -> np.ndarray:
        """float32 [n, factors]: each case folded in as a new user (``recalculate_user``)."""
        history = history_matrix(cases, self.n_items_, self.history_weight)
        history.data = 1.0 + history.data  # confidence: at least one training event's worth
        with _one_blas_thread():
            return np.asarray(self.model_.recalculate_user(np.arange(len(cases)), history), dtype=np.float32)

    def score(self, cases: CaseBatch) -> np.ndarray:
        scores = self.user_factors(cases) @ self.item_factors_.T
        return scores.astype(np.float32) + TIE_BREAK * self.popularity_[None, :]


#: The peers by ``name``, in the order reports list them.
PEERS: dict[str, type[Recommender]] = {cls.name: cls for cls in (ImplicitBM25KNN, ImplicitALS)}
