"""Model inputs from cases: history ids, event type x session flag, age buckets, context.

One function, ``featurize``, serves training, evaluation and serving, so what the model
saw while learning is exactly what it sees when it recommends. Everything here is numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..extras import lazy, require
from .cases import N_TYPES, CaseBatch, item_timeline

np = require("ml", "numpy")
#: pandas only where frames are handled: serving imports this module without it.
pd = lazy("ml", "pandas")

#: Seconds of the first age bucket; each next bucket doubles (30 s, 1 min, 2 min, ... ~8 months).
AGE_UNIT_SECONDS = 30.0


@dataclass
class ItemFeatures:
    """What the model knows of each item besides its id (index 0 = padding/unknown)."""

    category: np.ndarray  # int32 [n_items + 1], 0 = unknown
    price_bucket: np.ndarray  # int8 [n_items + 1], 0 = unknown
    n_categories: int
    n_price_buckets: int
    #: float [n_items + 1], NaN = unknown. Read at fit time only (the content prior's price
    #: closeness, finer than a bucket); not saved, so a loaded version has None.
    price: np.ndarray | None = None
    #: int [n_items + 1], 0 = unknown: the brand's code, at fit time only (as ``price``).
    brand: np.ndarray | None = None
    #: int [n_items + 1], 0 = unknown: the top level of the category path ("electronics" of
    #: "electronics.smartphone"), at fit time only.
    top_category: np.ndarray | None = None
    #: float64 [n_items + 1], NaN = unknown: when each item entered the catalogue (Unix
    #: seconds; its first event where the catalogue does not say), at fit time only: the
    #: tower's freshness term for new products is exported with the weights.
    added: np.ndarray | None = None

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
            price=np.asarray(preprocessor.item_price_, dtype=np.float64),
            brand=_codes(getattr(preprocessor, "item_brand_", None)),
            top_category=_top_levels(preprocessor.category_ids_, preprocessor.item_category_),
            added=_added(getattr(preprocessor, "item_added_", None)),
        )

    @classmethod
    def unknown(cls, n_items: int) -> ItemFeatures:
        """No category or price known for any item (a model fitted on ids alone)."""
        return cls(
            np.zeros(n_items + 1, np.int32), np.zeros(n_items + 1, np.int8), n_categories=1, n_price_buckets=1
        )


def _added(seconds: Any) -> np.ndarray | None:
    return None if seconds is None else np.asarray(seconds, dtype=np.float64)


def _codes(labels: Any) -> np.ndarray | None:
    """Integer codes of text labels ("" -> 0), or None when there are none."""
    if labels is None:
        return None
    codes, _ = pd.factorize(pd.Series(labels, dtype=object).replace("", None), use_na_sentinel=True)
    return (codes + 1).astype(np.int32)


def _top_levels(category_ids: Any, item_category: np.ndarray) -> np.ndarray | None:
    """Each item's top category level as a code (0: none), for dotted category paths only."""
    tops = [str(c).split(".")[0] if "." in str(c) else "" for c in category_ids]
    if not any(tops):
        return None
    codes = _codes(tops)
    return codes[np.asarray(item_category, np.int64)]


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

    count = present.sum(axis=1)
    denominator = np.maximum(count, 1)[:, None].astype(np.float32)
    categories = np.where(present, item_features.category[items], -1)
    top = np.asarray(spec.top_categories, dtype=np.int64)
    affinity = (categories[:, :, None] == top[None, None, :]).sum(axis=1, dtype=np.float32)
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


def featurize_one(
    items: list[int],
    types: list[int],
    times: list[float],
    in_session: list[bool],
    now: float,
    spec: FeatureSpec,
    item_features: ItemFeatures,
) -> dict[str, np.ndarray]:
    """``featurize`` of one case (a request), from its known history events, oldest first.

    The same numbers as ``featurize`` on a one-row ``CaseBatch`` (a test compares them), in
    a handful of array calls instead of some thirty: a request's history is twenty events,
    and numpy's per-call overhead, not the arithmetic, was a sixth of a request's compute.
    """
    length = spec.history_length
    items, types, times, in_session = items[-length:], types[-length:], times[-length:], in_session[-length:]
    n, pad = len(items), length - len(items)
    age = np.maximum(now - np.asarray(times, np.float64), 0.0)
    buckets = 1 + np.minimum(np.floor(np.log2(1.0 + age / AGE_UNIT_SECONDS)), spec.n_age_buckets - 2)
    ids = np.zeros((1, length), np.int32)
    ids[0, pad:] = items
    slots = np.zeros((1, length), np.int32)
    slots[0, pad:] = [kind + N_TYPES * bool(flag) for kind, flag in zip(types, in_session, strict=True)]
    ages = np.zeros((1, length), np.int32)
    ages[0, pad:] = buckets
    known = ids[0, pad:]
    denominator = np.float32(max(n, 1))
    counts: dict[int, int] = {}
    for category in item_features.category[known].tolist():
        counts[category] = counts.get(category, 0) + 1
    affinity = np.array([counts.get(c, 0) for c in spec.top_categories], np.float32) / denominator
    prices = [p for p in item_features.price_bucket[known].tolist() if p > 0]
    context = [
        *affinity.tolist(),
        min(max(float(np.float32(1.0) - affinity.sum(dtype=np.float32)), 0.0), 1.0),
        sum(prices) / max(len(prices), 1) / max(spec.n_price_buckets, 1),
        float(len(prices) > 0),
        float(np.log1p(n) / np.log1p(length)),
        sum(map(bool, in_session)) / float(denominator),
    ]
    return {"items": ids, "types": slots, "ages": ages, "context": np.array([context], np.float32)}


def _top_k(head: np.ndarray, tail: np.ndarray, score: np.ndarray, n_items: int, k: int):
    """Dense [n_items + 1, k] (items, scores): each head's ``k`` best tails (0-padded)."""
    items = np.zeros((n_items + 1, k), dtype=np.int32)
    scores = np.zeros((n_items + 1, k), dtype=np.float32)
    if len(head) == 0 or k == 0:
        return items, scores
    order = np.lexsort((tail, -score, head))  # ties by item id: deterministic
    head, tail, score = head[order], tail[order], score[order]
    rank = np.arange(len(head)) - np.searchsorted(head, head, side="left")
    keep = rank < k
    items[head[keep], rank[keep]] = tail[keep]
    scores[head[keep], rank[keep]] = score[keep]
    return items, scores


def _no_neighbours(n_items: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A prior table where no item has a neighbour."""
    return _top_k(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), n_items, k)


def cooccurrence_prior(
    frame: pd.DataFrame,
    n_items: int,
    k: int = 20,
    window: int = 10,
    *,
    item_features: ItemFeatures | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """[n_items + 1, k] (items, scores): cosine of session co-occurrence within ``window``
    positions (as ``baselines.ItemKNN``)."""
    timeline = item_timeline(frame)
    size = n_items + 1
    session, items = timeline.visit, timeline.item
    first = ~pd.DataFrame({"s": session, "i": items}).duplicated().to_numpy()
    s_session, s_items = session[first], items[first]
    n_with = np.bincount(s_items, minlength=size).astype(np.float64)
    pairs = []
    for distance in range(1, window + 1):
        same = s_session[distance:] == s_session[:-distance]
        if not same.any():
            break
        pairs += [s_items[:-distance][same] * size + s_items[distance:][same]]
        pairs += [s_items[distance:][same] * size + s_items[:-distance][same]]
    codes, co = (
        np.unique(np.concatenate(pairs), return_counts=True) if pairs else (np.zeros(0, np.int64),) * 2
    )
    head, tail = codes // size, codes % size
    cosine = co / np.sqrt(np.maximum(n_with[head] * n_with[tail], 1.0))
    return _top_k(head, tail, cosine, n_items, k)


def transition_prior(
    frame: pd.DataFrame,
    n_items: int,
    k: int = 20,
    steps: int = 3,
    *,
    item_features: ItemFeatures | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """[n_items + 1, k] (items, scores): what follows an item within ``steps`` events of a
    shopper's timeline (weighted 1 / distance), as a share of the item's transitions; order
    matters for the next item."""
    timeline = item_timeline(frame)
    order = np.lexsort((timeline.time, timeline.shopper))  # each shopper's events in time order
    size = n_items + 1
    shopper, items = timeline.shopper[order], timeline.item[order]
    change = np.r_[True, (items[1:] != items[:-1]) | (shopper[1:] != shopper[:-1])]
    shopper, items = shopper[change], items[change]
    codes_list, weights = [], []
    for distance in range(1, steps + 1):
        same = shopper[distance:] == shopper[:-distance]
        codes_list.append(items[:-distance][same] * size + items[distance:][same])
        weights.append(np.full(int(same.sum()), 1.0 / distance))
    codes = np.concatenate(codes_list) if codes_list else np.zeros(0, np.int64)
    weight = np.concatenate(weights) if weights else np.zeros(0)
    keep = codes // size != codes % size
    codes, weight = codes[keep], weight[keep]
    unique, inverse = np.unique(codes, return_inverse=True)
    total = np.bincount(inverse, weights=weight, minlength=len(unique))
    head, tail = unique // size, unique % size
    out = np.bincount(head, weights=total, minlength=size)
    return _top_k(head, tail, total / (out[head] + 1.0), n_items, k)


def ease_prior(
    frame: pd.DataFrame,
    n_items: int,
    k: int = 20,
    max_items: int = 5000,
    *,
    item_features: ItemFeatures | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """[n_items + 1, k] (items, scores): EASE's item-item weights.

    EASE (``baselines.EASE``) is the strongest baseline on ``new`` next items: a linear model
    whose score is the history times ``B``. Its ``k`` largest positive weights per row, over the
    ``max_items`` most popular items (``B`` is dense and quadratic), make a prior the model
    weighs like the others. One scale for the whole table (the mean best weight becomes 1, as
    for the other priors), so the learned prior weights start in the same range.
    """
    from .baselines import EASE  # pandas: features is on the serving path, EASE is training only

    ease = EASE(max_items=max_items).fit(frame, n_items)
    weights = ease.weights_[: len(ease.items_)]  # [m, m] over local ids
    width = min(k, weights.shape[1])
    if width == 0:
        return _no_neighbours(n_items, k)
    best = np.argpartition(-weights, width - 1, axis=1)[:, :width]
    score = np.take_along_axis(weights, best, axis=1).reshape(-1)
    head, tail = np.repeat(ease.items_, width), ease.items_[best.reshape(-1)]
    keep = score > 0
    items, scores = _top_k(head[keep], tail[keep], score[keep], n_items, k)
    tops = scores[:, 0][scores[:, 0] > 0]
    return items, scores / np.float32(tops.mean() if len(tops) else 1.0)


#: Added to the content prior's score of a neighbour of the same brand (closeness is in (0, 1]).
BRAND_BONUS = 0.5


def content_prior(
    frame: pd.DataFrame, n_items: int, k: int = 20, *, item_features: ItemFeatures | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """[n_items + 1, k] (items, scores): items of the same category, nearest in price.

    Half the ``k`` slots go to items with events in ``frame``, half to items without any
    (catalogue items nobody has chosen yet), so a new product has a way into a shopper's
    list from the moment it is on sale. Score 1 / (1 + distance), the distance in log price
    (in price buckets where the features carry no prices); 0.5 when either price is
    unknown; plus ``BRAND_BONUS`` for the same brand. Sorted windows, no pairwise matrix:
    O(items x k).
    """
    size = n_items + 1
    if item_features is None or k < 2:
        return _no_neighbours(n_items, k)
    category = np.asarray(item_features.category, np.int64)[:size]
    if item_features.price is not None:
        price = np.asarray(item_features.price, np.float64)[:size]
        known_price = np.isfinite(price) & (price >= 0)
        position = np.where(known_price, np.log1p(np.where(known_price, price, 0.0)), 0.0)
    else:
        known_price = np.asarray(item_features.price_bucket, np.int64)[:size] > 0
        position = np.asarray(item_features.price_bucket, np.float64)[:size]
    seen = np.zeros(size, bool)
    items_seen = frame["item_idx"].to_numpy(np.int64)
    seen[items_seen[(items_seen > 0) & (frame["type_idx"].to_numpy() > 0)]] = True
    items = np.arange(size)
    has_category = (items > 0) & (category > 0)
    brand = None if item_features.brand is None else np.asarray(item_features.brand, np.int64)[:size]
    # Sort keys: the category, then the price position (unknown prices after the known); with
    # brands, a second pass within (category, brand), so same-brand items are found too.
    span = float(position.max(initial=0.0)) + 2.0
    placed = np.where(known_price, position, span - 1.0)
    keys = [category * span + placed]
    if brand is not None and (brand > 0).any():
        keys.append((category * (int(brand.max()) + 1) + brand) * span + placed)
    heads = items[has_category]
    tables = []
    for members, width in ((has_category & seen, k - k // 2), (has_category & ~seen, k // 2)):
        found = [np.zeros(0, np.int64)] * 2
        for key in keys if width else []:
            pool = items[members]
            pool = pool[np.argsort(key[pool], kind="stable")]
            if not len(pool):
                continue
            start = np.searchsorted(key[pool], key[heads])
            index = start[:, None] + np.arange(-width, width + 1)[None, :]
            valid = (index >= 0) & (index < len(pool))
            tail = pool[np.clip(index, 0, len(pool) - 1)]
            valid &= (category[tail] == category[heads][:, None]) & (tail != heads[:, None])
            head = np.broadcast_to(heads[:, None], tail.shape)
            found = [np.concatenate([found[0], head[valid]]), np.concatenate([found[1], tail[valid]])]
        head, tail = found
        if len(keys) > 1 and len(head):  # a pair found by both passes counts once
            pairs = np.unique(np.stack([head, tail]), axis=1)
            head, tail = pairs[0], pairs[1]
        known = known_price[tail] & known_price[head]
        score = np.where(known, 1.0 / (1.0 + np.abs(position[tail] - position[head])), 0.5)
        if brand is not None:
            score = score + BRAND_BONUS * ((brand[tail] == brand[head]) & (brand[head] > 0))
        tables.append(_top_k(head, tail, score, n_items, width))
    return np.concatenate([t[0] for t in tables], axis=1), np.concatenate([t[1] for t in tables], axis=1)


def category_prior(
    frame: pd.DataFrame, n_items: int, k: int = 20, *, item_features: ItemFeatures | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """[n_items + 1, k] (items, scores): the most popular other items of the item's category.

    Popularity counts distinct sessions (one shopper cannot lift an item), scored relative to
    the category's best. The "category_popular" baseline as a prior: on new items it was the
    strongest of all on Diginetica, and the model now learns how much it counts.
    """
    size = n_items + 1
    if item_features is None:
        return _no_neighbours(n_items, k)
    category = np.asarray(item_features.category, np.int64)[:size]
    timeline = item_timeline(frame)
    visits = pd.DataFrame({"visit": timeline.visit, "item": timeline.item}).drop_duplicates()
    sessions = np.bincount(visits["item"].to_numpy(np.int64), minlength=size)[:size].astype(np.float64)
    sessions[0] = 0.0
    known = np.flatnonzero((category > 0) & (sessions > 0))
    # Each category's k + 1 best (one more, since an item is never its own neighbour).
    order = known[np.lexsort((known, -sessions[known], category[known]))]
    rank = np.arange(len(order)) - np.searchsorted(category[order], category[order], side="left")
    best = order[rank <= k]
    top = np.zeros(int(category.max(initial=0)) + 1)
    top[category[order[rank == 0]]] = sessions[order[rank == 0]]  # each category's best
    heads = np.flatnonzero(category > 0)
    pairs = pd.DataFrame({"category": category[heads], "head": heads}).merge(
        pd.DataFrame({"category": category[best], "tail": best}), on="category"
    )
    pairs = pairs[pairs["head"] != pairs["tail"]]
    tail = pairs["tail"].to_numpy(np.int64)
    return _top_k(
        pairs["head"].to_numpy(np.int64),
        tail,
        sessions[tail] / np.maximum(top[category[tail]], 1.0),
        n_items,
        k,
    )


#: The item-item priors a model can blend into its scores, by name, each called as
#: ``prior(frame, n_items, k, item_features=...)`` (only "content" reads the features). Each maps the item a
#: shopper interacted with to ``k`` neighbours and a score (about 1 for the best); the model
#: learns how much each counts by event type, age and position, and the arrays travel in its
#: exported weights.
PRIORS = {
    "cooccurrence": cooccurrence_prior,
    "transitions": transition_prior,
    "ease": ease_prior,
    "content": content_prior,
    "category": category_prior,
}


def item_priors(
    frame: pd.DataFrame,
    n_items: int,
    names: tuple[str, ...],
    k: int,
    item_features: ItemFeatures | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The priors ``names`` stacked, [len(names), n_items + 1, k] (items, scores)."""
    tables = [PRIORS[name](frame, n_items, k, item_features=item_features) for name in names]
    return np.stack([t[0] for t in tables]), np.stack([t[1] for t in tables])
