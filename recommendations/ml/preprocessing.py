"""Preprocessing: the step between the canonical events frame and everything that learns.

``frames`` (or ``events.events_frame``) gives a canonical events frame; ``Preprocessor``
cleans it (duplicates, robots, inactive items, events that name nothing), learns the id
vocabularies and item features from the training period, and turns any frame, training
or later, into the same indexed, weighted layout that ``cases`` turns into model inputs.
What it learned is a plain JSON dict (``vocabulary()``), saved with the model, so serving
and evaluation index items exactly as training did. Every rule is a numpy/pandas operation
on integer codes: no Python loop per event or per shopper.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from ..extras import require
from .cases import TYPE_INDEX
from .frames import FRAME_COLUMNS, normalize_catalogue, normalize_frame

pd = require("ml", "pandas")
np = require("ml", "numpy")

DEFAULT_EVENT_WEIGHTS = {"view": 1.0, "click": 1.0, "cart": 3.0, "purchase": 5.0}
#: Events that may (and do) come without an item.
ITEMLESS_EVENTS = frozenset({"search", "category_view"})
#: A session key is a visitor id that can live for weeks, so the robot rule looks at visits:
#: a session's events split where the shopper was inactive for longer than this.
VISIT_GAP_SECONDS = 30 * 60
#: The median-gap robot rule needs at least this many events in a visit.
ROBOT_MIN_EVENTS = 20
VOCABULARY_FORMAT = 1

_STRING_COLUMNS = ("user", "session", "event", "item", "category", "query")
_NS = 1_000_000_000
_NS_PER_DAY = 86_400 * _NS


class NotFittedError(RuntimeError):
    """``transform`` or ``vocabulary`` was called before ``fit``."""


@dataclass(frozen=True)
class _Codes:
    """A frame as integer codes in time order, so each cleaning rule is a numpy mask."""

    rows: np.ndarray  # positions in the input frame, in time order
    time: np.ndarray  # int64 ns since the epoch (UTC)
    shopper: np.ndarray  # codes into shopper_labels
    session: np.ndarray  # codes into the frame's session ids
    event: np.ndarray  # codes into events
    item: np.ndarray  # codes into items
    query: np.ndarray
    category: np.ndarray  # codes into categories
    user: np.ndarray  # codes into users
    shopper_labels: pd.Index  # text: "u:<user>" / "s:<session>"
    events: np.ndarray  # object: unique event types
    items: np.ndarray  # object: unique item ids
    categories: np.ndarray  # object: unique category ids
    users: pd.Index  # text: unique user ids ("" included where a row has none)
    sessions: pd.Index  # text: unique session ids
    queries: pd.Index  # text: unique queries
    empty_item: int  # code of "" in items (-1 when none)
    empty_category: int

    _ROW_FIELDS = ("rows", "time", "shopper", "session", "event", "item", "query", "category", "user")

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, keep: np.ndarray) -> _Codes:
        if keep.all():
            return self
        return replace(self, **{name: getattr(self, name)[keep] for name in self._ROW_FIELDS})

    def event_is(self, names: Iterable[str]) -> np.ndarray:
        """Bool per row: the row's event type is one of ``names``."""
        return np.isin(self.events.astype(str), list(names))[self.event]

    def has_item(self) -> np.ndarray:
        return self.item != self.empty_item

    def interactions(self) -> np.ndarray:
        """Rows the model learns from: an item event (``TYPE_INDEX``) naming an item."""
        return self.event_is(TYPE_INDEX) & self.has_item()


def _code_of(uniques: np.ndarray, value: str) -> int:
    found = np.flatnonzero(uniques == value)
    return int(found[0]) if len(found) else -1


def _factorize(values: pd.Series, *, as_objects: bool = True) -> tuple[np.ndarray, Any]:
    """Codes and unique values of a string column; a missing value counts as "".

    A text column in Arrow buffers is factorized there. The distinct values come back as
    Python strings, or with ``as_objects=False`` as a text ``pd.Index`` that stays in Arrow
    (users and sessions: 5.7M distinct values at 10M events, 400 MB as Python strings)."""
    codes, uniques = pd.factorize(
        values if isinstance(values.dtype, pd.StringDtype) else values.to_numpy(dtype=object)
    )
    codes = codes.astype(np.int32)  # half of int64's bytes
    uniques = np.asarray(uniques, dtype=object) if as_objects else pd.Index(uniques, dtype="str")
    missing = codes < 0
    if missing.any():
        empty = _code_of(uniques, "")
        if empty < 0:
            empty = len(uniques)
            if as_objects:
                uniques = np.append(uniques, np.array([""], dtype=object))
            else:
                uniques = uniques.append(pd.Index([""], dtype="str"))
        codes[missing] = empty
    return codes, uniques


def _dictionary(codes: np.ndarray, uniques: np.ndarray) -> pd.Categorical:
    """``uniques[codes]`` as a categorical whose categories are sorted (as text sorts)."""
    names = pd.Index(uniques, dtype="str")
    order = names.argsort()
    rank = np.empty(len(order), np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return pd.Categorical.from_codes(rank[codes], names[order])


def _group_ids(*codes: np.ndarray) -> np.ndarray:
    """One int64 key per row for a tuple of non-negative codes (mixed radix, no overflow)."""
    n = len(codes[0])
    key = np.zeros(n, dtype=np.int64)
    span = 1
    for column in codes:
        column = np.asarray(column, dtype=np.int64)
        radix = int(column.max()) + 1 if n else 1
        if span * radix >= 2**62:
            key = pd.factorize(key)[0].astype(np.int64)
            span = int(key.max()) + 1
        key = key * radix + column
        span *= radix
    return key


def _is_canonical(frame: pd.DataFrame) -> bool:
    if any(column not in frame.columns for column in FRAME_COLUMNS):
        return False
    timestamp = frame["timestamp"].dtype
    if not isinstance(timestamp, pd.DatetimeTZDtype):
        return False
    if any(frame[column].dtype.kind != "f" for column in ("price", "quantity")):
        return False
    for column in _STRING_COLUMNS:
        series = frame[column]
        if not isinstance(series.dtype, pd.StringDtype):
            return False  # (a missing value in a string column is read as "" by _factorize)
    return True


def _to_utc(moment: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _check_fitted(preprocessor: Preprocessor) -> None:
    if not hasattr(preprocessor, "item_ids_"):
        raise NotFittedError("This Preprocessor is not fitted yet: call fit() or from_vocabulary() first.")


class Preprocessor:
    """Clean events, learn id vocabularies and item features, index and weight any frame.

    scikit-learn conventions: ``__init__`` stores parameters only, ``fit`` returns
    ``self``, learned state ends in ``_``. Nothing is random: ``random_state`` is kept for
    the interface (and saved in the vocabulary) but two runs always give the same output.
    """

    def __init__(
        self,
        *,
        dedupe_seconds: float = 5.0,
        max_session_events: int = 500,
        min_seconds_per_event: float = 0.3,
        min_item_count: int = 1,
        min_shopper_events: int = 1,
        event_weights: dict[str, float] | None = None,
        half_life_days: float = 30.0,
        price_buckets: int = 10,
        random_state: int | None = 0,
    ) -> None:
        self.dedupe_seconds = dedupe_seconds
        self.max_session_events = max_session_events
        self.min_seconds_per_event = min_seconds_per_event
        self.min_item_count = min_item_count
        self.min_shopper_events = min_shopper_events
        self.event_weights = event_weights
        self.half_life_days = half_life_days
        self.price_buckets = price_buckets
        self.random_state = random_state

    def get_params(self) -> dict[str, Any]:
        return {
            "dedupe_seconds": self.dedupe_seconds,
            "max_session_events": self.max_session_events,
            "min_seconds_per_event": self.min_seconds_per_event,
            "min_item_count": self.min_item_count,
            "min_shopper_events": self.min_shopper_events,
            "event_weights": None if self.event_weights is None else dict(self.event_weights),
            "half_life_days": self.half_life_days,
            "price_buckets": self.price_buckets,
            "random_state": self.random_state,
        }

    def __repr__(self) -> str:
        params = ", ".join(f"{key}={value!r}" for key, value in self.get_params().items())
        return f"Preprocessor({params})"

    # ----------------------------------------------------------------- public API

    def clean(self, events: pd.DataFrame, active_items: Iterable[Any] | None = None) -> pd.DataFrame:
        """The cleaned canonical frame (every rule, min counts included); nothing is learned."""
        frame, codes = self._encode(events)
        codes = self._min_counts(self._clean(codes, active_items))
        return self._output(frame, codes)

    def fit(
        self,
        events: pd.DataFrame,
        active_items: Iterable[Any] | None = None,
        catalogue: pd.DataFrame | None = None,
    ) -> Preprocessor:
        """Learn vocabularies and item features from the cleaned training events.

        ``catalogue`` (``frames.CATALOGUE_COLUMNS``): products the shop has, with or without
        events. Those without training events get indices after the others (their
        training popularity is 0: the ``cold`` items), with the catalogue's category and
        price; it also fills a category or price the events did not give.
        """
        frame, codes = self._encode(events)
        self._learn(frame, self._min_counts(self._clean(codes, active_items)), n_given=len(frame))
        if catalogue is not None:
            self._add_catalogue(catalogue)
        return self

    def transform(
        self, events: pd.DataFrame, active_items: Iterable[Any] | None = None, now: Any = None
    ) -> pd.DataFrame:
        """Cleaned events (without the min-count rules) with shopper, indices and weights.

        The ids (``user``, ``session``, ``event``, ``item``, ``category``, ``query`` and
        ``shopper``) are categoricals: the same values, one small code per row (text copies
        of them were most of a 10M-event retrain's peak); ``.astype(str)`` gives text.
        """
        _check_fitted(self)
        frame, codes = self._encode(events)
        return self._transformed(frame, self._clean(codes, active_items), now)

    def fit_transform(
        self,
        events: pd.DataFrame,
        active_items: Iterable[Any] | None = None,
        now: Any = None,
        catalogue: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Same result as ``fit(...).transform(...)``, cleaning the events only once."""
        frame, codes = self._encode(events)
        cleaned = self._clean(codes, active_items)
        del codes  # (the cleaned codes are copies where a rule dropped rows)
        self._learn(frame, self._min_counts(cleaned), n_given=len(frame))
        if catalogue is not None:
            self._add_catalogue(catalogue)
        return self._transformed(frame, cleaned, now)

    def item_indices(self, item_ids: Iterable[Any]) -> np.ndarray:
        """int32 index of each raw item id (0 when unknown), for serving and adapters."""
        _check_fitted(self)
        values = pd.Index([str(item) for item in item_ids], dtype=object)
        return (pd.Index(self.item_ids_, dtype=object).get_indexer(values) + 1).astype(np.int32)

    def price_bucket(self, prices: Iterable[float] | np.ndarray) -> np.ndarray:
        """int8 quantile bucket (1..price_buckets) of prices by the training edges; 0 for NaN."""
        _check_fitted(self)
        prices = np.asarray(prices, dtype=np.float64)
        buckets = np.searchsorted(self.price_edges_, prices, side="right") + 1
        return np.where(np.isnan(prices), 0, buckets).astype(np.int8)

    def vocabulary(self) -> dict[str, Any]:
        """Everything learned, as JSON-safe lists and numbers (NaN written as null)."""
        _check_fitted(self)
        prices = self.item_price_.astype(np.float64)
        return {
            "format": VOCABULARY_FORMAT,
            "params": self.get_params(),
            "item_ids": [str(item) for item in self.item_ids_],
            "category_ids": [str(category) for category in self.category_ids_],
            "item_category": self.item_category_.tolist(),
            "item_price": [None if np.isnan(p) else float(p) for p in prices],
            "item_price_bucket": self.item_price_bucket_.tolist(),
            "item_popularity": self.item_popularity_.astype(np.float64).tolist(),
            "item_added": [None if np.isnan(t) else float(t) for t in self.item_added_],
            "item_brand": [str(brand) for brand in self.item_brand_],
            "price_edges": self.price_edges_.tolist(),
            "train_end": self.train_end_.isoformat(),
            "n_events": int(self.n_events_),
            "event_weights": {key: float(value) for key, value in self.event_weights_.items()},
        }

    @classmethod
    def from_vocabulary(cls, data: dict[str, Any]) -> Preprocessor:
        """A fitted preprocessor restored from ``vocabulary()``, identical to the saved one."""
        if data.get("format") != VOCABULARY_FORMAT:
            raise ValueError(f"Unknown preprocessing vocabulary format {data.get('format')!r}.")
        params = dict(data["params"])
        preprocessor = cls(**params)
        preprocessor.item_ids_ = np.array(data["item_ids"], dtype=object)
        preprocessor.item_index_ = {item: i + 1 for i, item in enumerate(preprocessor.item_ids_)}
        preprocessor.n_items_ = len(preprocessor.item_ids_)
        preprocessor.category_ids_ = np.array(data["category_ids"], dtype=object)
        preprocessor.item_category_ = np.asarray(data["item_category"], dtype=np.int32)
        preprocessor.item_price_ = np.array(
            [np.nan if p is None else p for p in data["item_price"]], dtype=np.float32
        )
        preprocessor.item_price_bucket_ = np.asarray(data["item_price_bucket"], dtype=np.int8)
        preprocessor.item_popularity_ = np.asarray(data["item_popularity"], dtype=np.float32)
        added = data.get("item_added") or [None] * len(preprocessor.item_popularity_)
        preprocessor.item_added_ = np.array([np.nan if t is None else t for t in added], dtype=np.float64)
        brands = data.get("item_brand") or [""] * len(preprocessor.item_popularity_)
        preprocessor.item_brand_ = np.array(brands, dtype=object)
        preprocessor.price_edges_ = np.asarray(data["price_edges"], dtype=np.float64)
        preprocessor.train_end_ = _to_utc(data["train_end"])
        preprocessor.n_events_ = int(data["n_events"])
        preprocessor.event_weights_ = {key: float(value) for key, value in data["event_weights"].items()}
        return preprocessor

    # ----------------------------------------------------------------- cleaning

    def _encode(self, events: pd.DataFrame) -> tuple[pd.DataFrame, _Codes]:
        """Canonical frame and its codes in time order (stable)."""
        frame = events if _is_canonical(events) else normalize_frame(events)
        time = frame["timestamp"].dt.tz_convert("UTC").dt.as_unit("ns").array.asi8
        in_order = bool((time[1:] >= time[:-1]).all())
        order = np.arange(len(frame)) if in_order else np.argsort(time, kind="stable")
        order = order.astype(np.int32) if len(order) < 2**31 else order

        def ordered(values: np.ndarray) -> np.ndarray:
            # Frames come in time order (the reader sorts): no copy of each code column then.
            return values if in_order else values[order]

        users, user_uniques = _factorize(frame["user"], as_objects=False)
        sessions, session_uniques = _factorize(frame["session"], as_objects=False)
        has_user = users != _code_of(user_uniques, "")
        shopper_key = np.where(has_user, users, len(user_uniques) + sessions)
        del has_user
        shoppers, key_uniques = pd.factorize(ordered(shopper_key))
        del shopper_key
        labels = ("u:" + user_uniques).append("s:" + session_uniques)[key_uniques]  # text in Arrow
        event, event_uniques = _factorize(frame["event"])
        item, item_uniques = _factorize(frame["item"])
        query, query_uniques = _factorize(frame["query"], as_objects=False)
        category, category_uniques = _factorize(frame["category"])
        codes = _Codes(
            rows=order,
            time=ordered(time),
            shopper=shoppers.astype(np.int32),
            session=ordered(sessions),
            event=ordered(event),
            item=ordered(item),
            query=ordered(query),
            category=ordered(category),
            user=ordered(users),
            shopper_labels=labels,
            events=event_uniques,
            items=item_uniques,
            users=user_uniques,
            sessions=session_uniques,
            queries=query_uniques,
            categories=category_uniques,
            empty_item=_code_of(item_uniques, ""),
            empty_category=_code_of(category_uniques, ""),
        )
        return frame, codes

    def _clean(self, codes: _Codes, active_items: Iterable[Any] | None) -> _Codes:
        """Rules 5 (and no identity), 1 (duplicates), 2 (robots), 4 (inactive items), in that order."""
        anonymous = codes.shopper_labels == "s:"  # neither a user nor a session: nobody to learn about
        codes = codes.subset(~anonymous[codes.shopper] & (codes.has_item() | codes.event_is(ITEMLESS_EVENTS)))
        codes = codes.subset(self._not_repeated(codes))
        codes = codes.subset(self._not_robot(codes))
        if active_items is not None:
            active = {str(item) for item in active_items}
            sold = np.array([item in active for item in codes.items], dtype=bool)
            codes = codes.subset(~codes.has_item() | sold[codes.item])
        return codes

    def _not_repeated(self, codes: _Codes) -> np.ndarray:
        """False for an event identical to the shopper's previous one within ``dedupe_seconds``."""
        n = len(codes)
        if n < 2 or self.dedupe_seconds is None or self.dedupe_seconds < 0:
            return np.ones(n, dtype=bool)
        is_search = codes.event_is({"search"})
        query = np.where(is_search, codes.query + 1, 0)
        category = np.where(codes.has_item(), 0, codes.category + 1)
        key = _group_ids(codes.shopper, codes.event, codes.item, query, category)
        order = np.argsort(key, kind="stable")  # rows are in time order, so: by key, then time
        key, time = key[order], codes.time[order]
        repeated = (key[1:] == key[:-1]) & (np.diff(time) <= self.dedupe_seconds * _NS)
        keep = np.ones(n, dtype=bool)
        keep[order[1:][repeated]] = False
        return keep

    def _not_robot(self, codes: _Codes) -> np.ndarray:
        """False for the events of robot-like visits: too many events, or too fast for a human."""
        n = len(codes)
        if n == 0:
            return np.ones(0, dtype=bool)
        key = _group_ids(codes.shopper, codes.session)
        order = np.argsort(key, kind="stable")
        key, time = key[order], codes.time[order]
        gap = np.zeros(n, dtype=np.int64)
        gap[1:] = np.diff(time)
        starts = np.ones(n, dtype=bool)
        starts[1:] = (key[1:] != key[:-1]) | (gap[1:] > VISIT_GAP_SECONDS * _NS)
        visit = np.cumsum(starts) - 1
        size = np.bincount(visit)
        robot = size > self.max_session_events
        candidates = size >= ROBOT_MIN_EVENTS
        if self.min_seconds_per_event and candidates.any():
            inner = ~starts & candidates[visit]
            median = pd.Series(gap[inner]).groupby(visit[inner]).median()
            fast = median.index.to_numpy()[median.to_numpy() < self.min_seconds_per_event * _NS]
            robot[fast] = True
        keep = np.empty(n, dtype=bool)
        keep[order] = ~robot[visit]
        return keep

    def _min_counts(self, codes: _Codes) -> _Codes:
        """Rule 3 (fit only): rare items first, then shoppers left with too few events."""
        # An item's count is its interactions: an item only ever shown (impressions) has none,
        # so it never enters the vocabulary, whatever ``min_item_count``.
        counts = np.bincount(codes.item[codes.interactions()], minlength=len(codes.items))
        codes = codes.subset(~codes.has_item() | (counts[codes.item] >= max(self.min_item_count, 1)))
        if self.min_shopper_events > 1:
            counts = np.bincount(codes.shopper, minlength=len(codes.shopper_labels))
            codes = codes.subset(counts[codes.shopper] >= self.min_shopper_events)
        return codes

    # ----------------------------------------------------------------- learning

    def _learn(self, frame: pd.DataFrame, codes: _Codes, n_given: int) -> None:
        if not 1 <= self.price_buckets <= 127:
            raise ValueError("price_buckets must be between 1 and 127 (stored as int8).")
        if not self.half_life_days > 0:
            raise ValueError("half_life_days must be positive.")
        if len(codes) == 0:
            raise ValueError(f"No events left to learn from after cleaning ({n_given} given).")

        # Items: every item with an interaction, most popular first (index 1), ties by id.
        interactions = codes.interactions()
        counts = np.bincount(codes.item[interactions], minlength=len(codes.items))
        present = np.flatnonzero(counts > 0)
        ranking = pd.DataFrame({"n": -counts[present], "id": codes.items[present].astype(str)})
        present = present[ranking.sort_values(["n", "id"], kind="stable").index.to_numpy()]
        n_items = len(present)
        index_of_code = np.zeros(len(codes.items), dtype=np.int32)
        index_of_code[present] = np.arange(1, n_items + 1, dtype=np.int32)
        item_idx = index_of_code[codes.item]

        # Categories: every non-empty category seen, sorted; index 0 = unknown.
        seen = np.unique(codes.category[codes.category != codes.empty_category])
        category_ids = np.sort(codes.categories[seen].astype(str))
        category_index = np.zeros(len(codes.categories), dtype=np.int32)
        category_index[seen] = np.searchsorted(category_ids, codes.categories[seen].astype(str)) + 1
        cat_idx = category_index[codes.category]

        # Item category: the most frequent non-empty one; ties go to the smaller category id.
        item_category = np.zeros(n_items + 1, dtype=np.int32)
        pairs = (item_idx > 0) & (cat_idx > 0)
        if pairs.any():
            key = item_idx[pairs].astype(np.int64) * (len(category_ids) + 1) + cat_idx[pairs]
            unique, n = np.unique(key, return_counts=True)
            items, cats = unique // (len(category_ids) + 1), unique % (len(category_ids) + 1)
            best = np.lexsort((cats, -n, items))
            first = np.ones(len(best), dtype=bool)
            first[1:] = items[best][1:] != items[best][:-1]
            item_category[items[best][first]] = cats[best][first]

        # Item price: median of the prices seen; bucket: quantile of those medians.
        prices = frame["price"].to_numpy(dtype=np.float64)[codes.rows]
        priced = (item_idx > 0) & ~np.isnan(prices)
        item_price = np.full(n_items + 1, np.nan, dtype=np.float32)
        median = pd.Series(prices[priced]).groupby(item_idx[priced]).median()
        item_price[median.index.to_numpy()] = median.to_numpy()
        known = median.to_numpy(dtype=np.float64)
        if len(known):
            edges = np.quantile(known, np.linspace(0, 1, self.price_buckets + 1)[1:-1])
        else:
            edges = np.zeros(0)
        item_price_bucket = np.zeros(n_items + 1, dtype=np.int8)
        item_price_bucket[median.index.to_numpy()] = np.searchsorted(edges, known, side="right") + 1

        popularity = np.zeros(n_items + 1, dtype=np.float32)
        popularity[1:] = counts[present]
        # When each item was first seen (Unix seconds): the "newest items" baseline reads it.
        item_added = np.full(n_items + 1, np.nan)
        known_rows = item_idx > 0
        first = pd.Series(codes.time[known_rows]).groupby(item_idx[known_rows]).min()
        item_added[first.index.to_numpy()] = first.to_numpy() / _NS

        self.item_ids_ = codes.items[present].astype(str).astype(object)
        self.item_index_ = {item: i + 1 for i, item in enumerate(self.item_ids_)}
        self.n_items_ = n_items
        self.category_ids_ = np.concatenate([np.array([""], dtype=object), category_ids.astype(object)])
        self.item_category_ = item_category
        self.item_price_ = item_price
        self.item_price_bucket_ = item_price_bucket
        self.item_popularity_ = popularity
        self.item_added_ = item_added
        # Brands come from a catalogue (events do not carry them): "" until one says.
        self.item_brand_ = np.full(n_items + 1, "", dtype=object)
        self.price_edges_ = np.asarray(edges, dtype=np.float64)
        self.train_end_ = pd.Timestamp(int(codes.time.max()), unit="ns", tz="UTC")
        self.n_events_ = len(codes)
        self.event_weights_ = {
            str(key): float(value)
            for key, value in (
                DEFAULT_EVENT_WEIGHTS if self.event_weights is None else self.event_weights
            ).items()
        }

    def _add_catalogue(self, catalogue: pd.DataFrame) -> None:
        """Append the catalogue's items without training events; fill missing features."""
        catalogue = normalize_catalogue(catalogue)
        known = pd.Index(self.item_ids_, dtype=object)
        position = known.get_indexer(pd.Index(catalogue["item"], dtype=object))
        new = catalogue[position < 0].sort_values("item", kind="stable")
        old = catalogue[position >= 0]
        old_index = position[position >= 0] + 1

        categories = set(self.category_ids_[1:]) | set(catalogue.loc[catalogue["category"] != "", "category"])
        category_ids = np.array(sorted(categories), dtype=object)
        remap = np.searchsorted(category_ids, self.category_ids_[1:].astype(str)) + 1
        lookup = np.concatenate([[0], remap]).astype(np.int32)
        item_category = lookup[self.item_category_]

        def category_index(values: pd.Series) -> np.ndarray:
            index = np.searchsorted(category_ids, values.to_numpy(dtype=object).astype(str)) + 1
            return np.where(values.to_numpy(dtype=object) == "", 0, index).astype(np.int32)

        fill = (item_category[old_index] == 0) & (old["category"].to_numpy(dtype=object) != "")
        item_category[old_index[fill]] = category_index(old["category"])[fill]
        item_price = self.item_price_.copy()
        item_price_bucket = self.item_price_bucket_.copy()
        old_price = old["price"].to_numpy(np.float64)
        fill = np.isnan(item_price[old_index]) & ~np.isnan(old_price)
        item_price[old_index[fill]] = old_price[fill]
        item_price_bucket[old_index[fill]] = self.price_bucket(old_price[fill])

        n_new = len(new)
        self.item_ids_ = np.concatenate([self.item_ids_, new["item"].to_numpy(dtype=object)])
        self.item_index_ = {item: i + 1 for i, item in enumerate(self.item_ids_)}
        self.n_items_ = len(self.item_ids_)
        self.category_ids_ = np.concatenate([np.array([""], dtype=object), category_ids])
        self.item_category_ = np.concatenate([item_category, category_index(new["category"])])
        self.item_price_ = np.concatenate([item_price, new["price"].to_numpy(np.float32)])
        self.item_price_bucket_ = np.concatenate([item_price_bucket, self.price_bucket(new["price"])])
        self.item_popularity_ = np.concatenate([self.item_popularity_, np.zeros(n_new, np.float32)])
        epoch = pd.Timestamp(0, tz="UTC")
        added = (new["added_at"] - epoch).dt.total_seconds().to_numpy(np.float64)  # NaN: unknown
        self.item_added_ = np.concatenate([self.item_added_, added])
        item_brand = self.item_brand_.copy()
        old_brand = old["brand"].to_numpy(dtype=object)
        fill = (item_brand[old_index] == "") & (old_brand != "")
        item_brand[old_index[fill]] = old_brand[fill]
        self.item_brand_ = np.concatenate([item_brand, new["brand"].to_numpy(dtype=object)])

    # ----------------------------------------------------------------- output

    def _output(self, frame: pd.DataFrame, codes: _Codes) -> pd.DataFrame:
        out = frame[list(FRAME_COLUMNS)].take(codes.rows).reset_index(drop=True)
        out["timestamp"] = pd.DatetimeIndex(codes.time.view("M8[ns]")).tz_localize("UTC")
        return out

    def _transformed(self, frame: pd.DataFrame, codes: _Codes, now: Any) -> pd.DataFrame:
        # The ids are dictionary-encoded (categoricals, categories in sorted order, so sorting
        # and factorizing order them as the text did) from the codes already made: copying the
        # text columns took 1.7 GB at 10M events, the retrain's peak.
        numbers = {name: frame[name].to_numpy()[codes.rows] for name in ("price", "quantity")}
        out = pd.DataFrame(
            {
                "timestamp": pd.DatetimeIndex(codes.time.view("M8[ns]"), copy=True).tz_localize("UTC"),
                "user": _dictionary(codes.user, codes.users),
                "session": _dictionary(codes.session, codes.sessions),
                "event": _dictionary(codes.event, codes.events),
                "item": _dictionary(codes.item, codes.items),
                "category": _dictionary(codes.category, codes.categories),
                "price": numbers["price"],
                "quantity": numbers["quantity"],
                "query": _dictionary(codes.query, codes.queries),
                "shopper": _dictionary(codes.shopper, codes.shopper_labels),
            },
            copy=False,  # each column is already its own new array
        )

        lookup = pd.Index(self.item_ids_, dtype=object).get_indexer(pd.Index(codes.items, dtype=object)) + 1
        out["item_idx"] = lookup.astype(np.int32)[codes.item] if len(codes) else np.zeros(0, np.int32)

        events = [str(event) for event in codes.events]
        types = np.array([TYPE_INDEX.get(event, 0) for event in events] or [0], dtype=np.int8)
        out["type_idx"] = types[codes.event] if len(codes) else np.zeros(0, np.int8)

        base = np.array([self.event_weights_.get(event, 1.0) for event in events] or [1.0])
        moment = self.train_end_ if now is None else _to_utc(now)
        age_days = np.maximum(moment.as_unit("ns").value - codes.time, 0) / _NS_PER_DAY
        weight = base[codes.event] * np.power(0.5, age_days / self.half_life_days)
        out["weight"] = weight.astype(np.float32)
        return out
