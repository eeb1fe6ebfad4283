"""Baselines: simple recommenders that the learned model must beat on the same cases.

They sit beside ``training`` in the data flow: each takes the transformed training frame
from ``preprocessing`` in ``fit`` and scores every item for a ``CaseBatch`` from ``cases``,
behind the same ``Recommender`` interface, so ``evaluation`` runs them side by side with the
model. All scoring is vectorized numpy over the whole batch (loops only over history
positions), so they stay cheap enough to run on every evaluation.
"""

from __future__ import annotations

from typing import Any

from ..extras import require
from .base import Recommender
from .cases import CaseBatch, item_timeline

np = require("ml", "numpy")
pd = require("ml", "pandas")

#: Below any real signal, above nothing: how much popularity breaks ties between items.
TIE_BREAK = 1e-6


def _item_events(train: pd.DataFrame) -> pd.DataFrame:
    """Rows that name a known item with an item event type (what cases are built from)."""
    return train[(train["item_idx"].to_numpy() > 0) & (train["type_idx"].to_numpy() > 0)]


def _counts(items: np.ndarray, n_items: int) -> np.ndarray:
    counts = np.bincount(np.asarray(items, dtype=np.int64), minlength=n_items + 1)[: n_items + 1]
    counts = counts.astype(np.float64)
    counts[0] = 0.0
    return counts


def _share(counts: np.ndarray) -> np.ndarray:
    """Counts scaled into [0, 1], for tie-breaking by popularity without changing the order."""
    top = counts.max() if len(counts) else 0.0
    return (counts / top if top > 0 else np.zeros_like(counts)).astype(np.float32)


def _repeat(row: np.ndarray, n: int) -> np.ndarray:
    return np.repeat(row.astype(np.float32)[None, :], n, axis=0)


def recency_weights(cases: CaseBatch, history_weight: float = 0.5) -> np.ndarray:
    """float32 [n, L]: 1 / (1 + distance from the end), lower for training-period history.

    Histories are right-aligned (most recent last), so the distance is ``L - 1 - position``;
    padding gets 0. Events before the current session count ``history_weight`` times less.
    """
    length = cases.history_length
    distance = np.arange(length - 1, -1, -1, dtype=np.float32)
    weights = np.broadcast_to(1.0 / (1.0 + distance), cases.items.shape).astype(np.float32)
    weights = np.where(cases.in_session, weights, weights * np.float32(history_weight))
    return np.where(cases.items > 0, weights, 0.0).astype(np.float32)


def _blocks(n: int, head: np.ndarray, tail: np.ndarray) -> list[np.ndarray]:
    """Connected components of the graph on ``n`` nodes, as [count, size] arrays per size > 1.

    A Gram matrix is block-diagonal over these components, so its inverse is too: inverting
    each block (same-sized blocks stacked in one call) is far cheaper than the whole matrix,
    and items that never co-occur (size 1) need no inverse at all (their weights are 0).
    """
    label = np.arange(n)
    while True:  # min-label propagation with pointer jumping: a few passes over the edges
        new = label.copy()
        np.minimum.at(new, head, label[tail])
        np.minimum.at(new, tail, label[head])
        new = new[new]
        if (new == label).all():
            break
        label = new
    component = np.unique(label, return_inverse=True)[1]
    size = np.bincount(component)[component]
    order = np.lexsort((component, size))
    return [order[size[order] == s].reshape(-1, s) for s in np.unique(size) if s > 1]


class MostPopular(Recommender):
    """Everyone gets the items with the most events in training: the floor any model must clear."""

    name = "popular"

    def fit(self, train: pd.DataFrame, n_items: int) -> MostPopular:
        self.n_items_ = int(n_items)
        self.counts_ = _counts(_item_events(train)["item_idx"].to_numpy(), self.n_items_)
        return self

    def score(self, cases: CaseBatch) -> np.ndarray:
        return _repeat(self.counts_, len(cases))


class RecentPopular(Recommender):
    """Popularity over the last ``days`` of training: catches trends that all-time counts hide.

    Ties (items without recent events) are broken by all-time popularity.
    """

    name = "recent_popular"

    def __init__(self, days: float = 7.0) -> None:
        self.days = days

    def fit(self, train: pd.DataFrame, n_items: int) -> RecentPopular:
        self.n_items_ = int(n_items)
        events = _item_events(train)
        overall = _counts(events["item_idx"].to_numpy(), self.n_items_)
        if len(events):
            self.train_end_ = events["timestamp"].max()
            recent = events[events["timestamp"] >= self.train_end_ - pd.Timedelta(days=self.days)]
        else:
            self.train_end_ = None
            recent = events
        self.counts_ = _counts(recent["item_idx"].to_numpy(), self.n_items_)
        self.scores_ = (self.counts_ + 0.5 * _share(overall)).astype(np.float32)
        return self

    def score(self, cases: CaseBatch) -> np.ndarray:
        return _repeat(self.scores_, len(cases))


class SessionRecency(Recommender):
    """The current session's own items, most recent first, then popularity.

    It shows how far a model gets by echoing the session back: strong on ``all``, useless on
    ``new`` (where session items are excluded), which is why both variants are reported.
    """

    name = "session_recency"

    def fit(self, train: pd.DataFrame, n_items: int) -> SessionRecency:
        self.n_items_ = int(n_items)
        counts = _counts(_item_events(train)["item_idx"].to_numpy(), self.n_items_)
        # Below 0.5: popularity only orders the rest; every session item scores at least 1.
        self.base_ = (0.5 * _share(counts)).astype(np.float32)
        return self

    def score(self, cases: CaseBatch) -> np.ndarray:
        scores = _repeat(self.base_, len(cases))
        rows = np.arange(len(cases))
        for position in range(cases.history_length):  # oldest first: later positions overwrite
            items = cases.items[:, position]
            mask = cases.in_session[:, position] & (items > 0)
            scores[rows[mask], items[mask]] = np.float32(1 + position) + self.base_[items[mask]]
        return scores


class ItemKNN(Recommender):
    """Items that shared sessions with the shopper's recent items (cosine on session co-occurrence).

    Pairs are counted within ``window`` positions of each other in a training session (each
    item once per session), the similarity is ``co(i, j) / sqrt(n_i n_j)`` with ``n_i`` the
    sessions holding ``i``, and the ``neighbours`` most similar items per item are kept as
    dense ``[n_items + 1, neighbours]`` arrays. A case's score sums its history items'
    neighbour similarities, weighted by recency; popularity breaks the remaining ties.
    """

    name = "item_knn"

    def __init__(self, neighbours: int = 100, window: int = 10, history_weight: float = 0.5) -> None:
        self.neighbours = neighbours
        self.window = window
        self.history_weight = history_weight

    def fit(self, train: pd.DataFrame, n_items: int) -> ItemKNN:
        self.n_items_ = int(n_items)
        timeline = item_timeline(train)
        session, items = timeline.visit, timeline.item
        first = ~pd.DataFrame({"s": session, "i": items}).duplicated().to_numpy()
        session, items = session[first], items[first]
        self.popularity_ = _share(_counts(items, self.n_items_))
        sessions_with = _counts(items, self.n_items_)

        size = self.n_items_ + 1
        pairs = []  # head * size + tail, both ways: one array per direction, not four
        for distance in range(1, max(int(self.window), 0) + 1):
            same = session[distance:] == session[:-distance]
            if not same.any():
                break
            earlier, later = items[:-distance][same], items[distance:][same]
            pairs += [earlier * size + later, later * size + earlier]
        k = max(int(self.neighbours), 1)
        self.neighbour_items_ = np.zeros((size, k), dtype=np.int32)
        self.neighbour_scores_ = np.zeros((size, k), dtype=np.float32)
        if not pairs:
            return self
        codes, co = np.unique(np.concatenate(pairs), return_counts=True)
        del pairs
        head, tail = codes // size, codes % size
        similarity = co / np.sqrt(sessions_with[head] * sessions_with[tail])
        order = np.lexsort((-similarity, head))
        head, tail, similarity = head[order], tail[order], similarity[order]
        rank = np.arange(len(head)) - np.searchsorted(head, head, side="left")
        keep = rank < k
        self.neighbour_items_[head[keep], rank[keep]] = tail[keep]
        self.neighbour_scores_[head[keep], rank[keep]] = similarity[keep]
        return self

    def score(self, cases: CaseBatch) -> np.ndarray:
        scores = _repeat(TIE_BREAK * self.popularity_, len(cases))
        weights = recency_weights(cases, self.history_weight)
        rows = np.arange(len(cases))[:, None]
        for position in range(cases.history_length):
            items = cases.items[:, position]
            # Neighbours of one item are distinct; only the padding column 0 repeats (ignored).
            scores[rows, self.neighbour_items_[items]] += (
                weights[:, position, None] * self.neighbour_scores_[items]
            )
        return scores


class EASE(Recommender):
    """EASE (Steck 2019): a linear item-item model with a closed-form solution.

    ``B = -P / diag(P)`` with ``P = (XᵀX + l2·I)⁻¹`` and ``diag(B) = 0``, where ``X`` is the
    binary shopper (user or session) x item matrix of training. ``XᵀX`` is counted from
    item pairs within each shopper's last ``max_shopper_items`` distinct items, so no sparse
    library is needed. The dense ``B`` is quadratic in the catalogue: above ``max_items``
    items only the ``max_items`` most popular are modelled and every other item scores 0
    (so it is never recommended ahead of a modelled item with a positive score). Above
    5,000 modelled items the matrices are float32 to halve memory. Inverting takes about four
    m x m matrices at once: 1.6 GB at the default 10,000 items (at 20,000 it was 6.4 GB, the
    peak of a whole retrain; ``bench scale``).
    A case's score is its history vector (session items, and a known user's earlier items
    at ``history_weight``, weighted by recency) times ``B``.
    """

    name = "ease"

    def __init__(
        self,
        l2: float = 200.0,
        max_items: int = 10000,
        max_shopper_items: int = 200,
        history_weight: float = 0.5,
    ) -> None:
        self.l2 = l2
        self.max_items = max_items
        self.max_shopper_items = max_shopper_items
        self.history_weight = history_weight

    def fit(self, train: pd.DataFrame, n_items: int) -> EASE:
        self.n_items_ = int(n_items)
        events = _item_events(train)
        counts = _counts(events["item_idx"].to_numpy(), self.n_items_)
        self.popularity_ = _share(counts)
        by_popularity = np.argsort(-counts, kind="stable")
        kept = by_popularity[counts[by_popularity] > 0][: int(self.max_items)]
        self.items_ = np.sort(kept).astype(np.int64)
        m = len(self.items_)
        self.local_ = np.full(self.n_items_ + 1, m, dtype=np.int64)  # m: a zero row of B
        self.local_[self.items_] = np.arange(m)

        events = events[["timestamp", "shopper", "item_idx"]].sort_values(
            ["shopper", "timestamp"], kind="stable"
        )
        shopper = pd.factorize(events["shopper"].astype(str))[0]
        local = self.local_[events["item_idx"].to_numpy(np.int64)]
        frame = pd.DataFrame({"u": shopper, "i": local})[local < m]
        frame = frame.drop_duplicates(keep="last").groupby("u", sort=False).tail(int(self.max_shopper_items))
        shopper, local = frame["u"].to_numpy(), frame["i"].to_numpy(np.int64)

        dtype = np.float64 if m <= 5000 else np.float32
        gram = np.zeros((m, m), dtype=dtype)
        heads, tails = [], []
        for distance in range(1, int(self.max_shopper_items)):
            same = shopper[distance:] == shopper[:-distance]
            if not same.any():
                break
            heads.append(local[:-distance][same])
            tails.append(local[distance:][same])
        pairs = np.concatenate(heads) * m + np.concatenate(tails) if heads else np.zeros(0, np.int64)
        codes, co = np.unique(pairs, return_counts=True)
        head, tail = codes // m, codes % m
        np.add.at(gram, (head, tail), co)  # (a, b) and (b, a) may both occur
        np.add.at(gram, (tail, head), co)
        diagonal = np.arange(m)
        gram[diagonal, diagonal] = np.bincount(local, minlength=m)[:m] + self.l2
        self.weights_ = np.zeros((m + 1, m), dtype=np.float32)
        for members in _blocks(m, head, tail):
            block = np.linalg.inv(gram[members[:, :, None], members[:, None, :]])
            block /= -np.diagonal(block, axis1=1, axis2=2)[:, None, :]
            block[:, np.arange(members.shape[1]), np.arange(members.shape[1])] = 0.0
            self.weights_[members[:, :, None], members[:, None, :]] = block
        return self

    def score(self, cases: CaseBatch) -> np.ndarray:
        m = len(self.items_)
        weights = recency_weights(cases, self.history_weight)
        local = np.zeros((len(cases), m), dtype=np.float32)
        for position in range(cases.history_length):
            local += weights[:, position, None] * self.weights_[self.local_[cases.items[:, position]]]
        scores = np.zeros((len(cases), self.n_items_ + 1), dtype=np.float32)
        scores[:, self.items_] = local + TIE_BREAK * self.popularity_[self.items_]
        return scores


def recent_category_weights(cases: CaseBatch, item_category: np.ndarray, n_categories: int) -> np.ndarray:
    """float32 [n, n_categories + 1]: the shopper's categories, the most recent one highest.

    A category scores 1 + the history position where it last appeared (so any recent
    category outranks every other); category 0 (unknown) and absent ones score 0.
    """
    weights = np.zeros((len(cases), n_categories + 1), dtype=np.float32)
    rows = np.arange(len(cases))
    for position in range(cases.history_length):  # oldest first: later positions overwrite
        items = cases.items[:, position]
        categories = item_category[items]
        mask = (items > 0) & (categories > 0)
        weights[rows[mask], categories[mask]] = np.float32(1 + position)
    weights[:, 0] = 0.0
    return weights


class _CategoryAware(Recommender):
    """A baseline that reads each item's category (and price, first sighting) from the preprocessor."""

    def fit(self, train: pd.DataFrame, n_items: int) -> Recommender:
        raise TypeError(f"{self.name} reads item categories: fit it with fit_preprocessed")

    def fit_preprocessed(self, train: pd.DataFrame, preprocessor: Any) -> Recommender:
        self.n_items_ = int(preprocessor.n_items_)
        self.item_category_ = np.asarray(preprocessor.item_category_, dtype=np.int64)[: self.n_items_ + 1]
        self.n_categories_ = int(max(len(preprocessor.category_ids_) - 1, self.item_category_.max(initial=0)))
        self.item_price_ = np.asarray(preprocessor.item_price_, dtype=np.float32)[: self.n_items_ + 1]
        added = getattr(preprocessor, "item_added_", None)
        self.item_added_ = (
            np.full(self.n_items_ + 1, np.nan) if added is None else np.asarray(added, np.float64)
        )
        self.popularity_ = _share(_counts(_item_events(train)["item_idx"].to_numpy(), self.n_items_))
        return self._fit_more(train)

    def _fit_more(self, train: pd.DataFrame) -> Recommender:
        return self

    def _category_scores(self, cases: CaseBatch) -> np.ndarray:
        """[n, n_items + 1]: the recency weight of each item's category (0: not a recent one)."""
        weights = recent_category_weights(cases, self.item_category_, self.n_categories_)
        return np.take(weights, self.item_category_, axis=1)


class CategoryPopular(_CategoryAware):
    """The most popular items of the categories of the shopper's recent items, most recent category first.

    What a shop without a recommender shows ("more from this category"); strong where a
    model knows items only by their ids.
    """

    name = "category_popular"

    def score(self, cases: CaseBatch) -> np.ndarray:
        return self._category_scores(cases) + 0.5 * self.popularity_[None, :]


class KNNCategory(_CategoryAware):
    """Item-kNN, and where it has no neighbour to offer, ``category_popular``'s order below it."""

    name = "knn_category"

    def _fit_more(self, train: pd.DataFrame) -> KNNCategory:
        self.knn_ = ItemKNN().fit(train, self.n_items_)
        return self

    def score(self, cases: CaseBatch) -> np.ndarray:
        knn = self.knn_.score(cases)
        category = self._category_scores(cases) + 0.5 * self.popularity_[None, :]
        # A neighbour's similarity outweighs any tie-break: every kNN item ranks above the fill.
        has_neighbour = knn > 2 * TIE_BREAK
        top = np.maximum(category.max(axis=1, keepdims=True), 1.0)
        return np.where(
            has_neighbour,
            1.0 + knn / np.maximum(knn.max(axis=1, keepdims=True), 1e-9),
            category / (top + 1.0),
        )


class ColdPrice(_CategoryAware):
    """For new arrivals: items of the shopper's recent categories, closest in price to their latest priced item."""

    name = "cold_price"

    def score(self, cases: CaseBatch) -> np.ndarray:
        prices = np.where(cases.items > 0, self.item_price_[cases.items], np.nan)
        latest = np.full(len(cases), np.nan, dtype=np.float32)
        for position in range(cases.history_length):  # the latest priced item wins
            column = prices[:, position]
            latest = np.where(np.isnan(column), latest, column)
        distance = np.abs(np.log1p(self.item_price_[None, :]) - np.log1p(latest[:, None]))
        closeness = np.where(np.isnan(distance), 0.0, 0.5 / (1.0 + distance))  # in (0, 0.5]
        return (self._category_scores(cases) + closeness + TIE_BREAK * self.popularity_[None, :]).astype(
            np.float32
        )


class ColdNewest(_CategoryAware):
    """For new arrivals: the newest items of the shopper's recent categories (by their first sighting)."""

    name = "cold_newest"

    def _fit_more(self, train: pd.DataFrame) -> ColdNewest:
        added = self.item_added_
        known = np.isfinite(added)
        oldest = np.nanmin(added) if known.any() else 0.0
        span = (np.nanmax(added) - oldest) if known.any() else 1.0
        self.newness_ = np.where(known, (added - oldest) / max(span, 1e-9), 0.0)  # in [0, 1]
        return self

    def score(self, cases: CaseBatch) -> np.ndarray:
        return (self._category_scores(cases) + 0.5 * self.newness_[None, :]).astype(np.float32)


#: Every baseline by its ``name``, in the order reports list them.
BASELINES: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (
        MostPopular, RecentPopular, SessionRecency, ItemKNN, EASE, CategoryPopular, KNNCategory, ColdPrice, ColdNewest,
    )
}  # fmt: skip
