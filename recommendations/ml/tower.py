"""The user tower in numpy, from exported weights: what serving and evaluation run.

It repeats ``NextItemModel.user_vector`` operation for operation (a test proves the two
agree), so a web process scores items with one float32 matrix product and never imports
TensorFlow.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..extras import require
from .item_index import sorted_unique

np = require("ml", "numpy")

#: The freshness term counts a new product's age in hours: -log(1 + hours since it was listed).
FRESHNESS_UNIT_SECONDS = 3600.0
#: The age of a product whose listing date nobody knows: a year, old enough to rank below new arrivals.
UNKNOWN_AGE_SECONDS = 365 * 24 * 3600.0


class PriorTable:
    """Each item's neighbours in each prior, without the empty slots (compressed rows).

    The exported tables are dense, [n_priors, n_items + 1, k], zero-padded: an item with three
    neighbours still takes k slots, and EASE (at most 10,000 items modelled) leaves every other
    row empty. At a million items the dense tables were 458 MB of a worker; here a row's
    neighbours are a slice of one array, found by an offset per (prior, item).
    """

    #: The exported arrays of a compressed table (``exported``), as a version's files hold them.
    NAMES = ("prior_offsets", "prior_neighbours", "prior_neighbour_scores")

    def __init__(self, items: np.ndarray, scores: np.ndarray) -> None:
        items, scores = np.asarray(items), np.asarray(scores)
        filled = items > 0  # top-k rows are filled from the first slot on
        counts = filled.sum(axis=2).ravel()
        index = np.int32 if counts.sum() < 2**31 else np.int64
        offsets = np.zeros(len(counts) + 1, index)
        np.cumsum(counts, out=offsets[1:])
        # row by row, each row in rank order
        self._set(offsets, items[filled].astype(np.int32), scores[filled].astype(np.float32), items.shape)

    def _set(self, offsets: np.ndarray, items: np.ndarray, scores: np.ndarray, shape: tuple) -> None:
        self.n_priors, self.size = int(shape[0]), int(shape[1])
        if len(offsets) != self.n_priors * self.size + 1 or not len(items) == len(scores) == offsets[-1]:
            raise ValueError("the prior table's offsets do not fit its rows")
        self.offsets, self.items, self.scores = offsets, items, scores

    @classmethod
    def from_exported(cls, weights: dict[str, np.ndarray]) -> PriorTable:
        """The table from ``exported`` arrays, used as they are (mapped from a version's file,
        they stay shared by every process that serves it)."""
        table = cls.__new__(cls)
        offsets, items, scores = (weights[name] for name in cls.NAMES)
        table._set(offsets, items, scores, tuple(weights["prior_shape"]))
        return table

    def exported(self) -> dict[str, np.ndarray]:
        """The arrays a version saves (a fraction of the dense tables' bytes)."""
        arrays = dict(zip(self.NAMES, (self.offsets, self.items, self.scores), strict=True))
        return {**arrays, "prior_shape": np.asarray([self.n_priors, self.size], np.int64)}

    def entries(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(owner, neighbour, score) of every neighbour of ``rows`` (prior x size + item),
        ``owner`` being the position in ``rows`` each came from, in the order of ``rows``."""
        rows = np.asarray(rows, np.int64).ravel()
        starts = self.offsets[rows].astype(np.int64)
        lengths = self.offsets[rows + 1] - starts
        owner = np.repeat(np.arange(len(rows)), lengths)
        firsts = np.cumsum(lengths) - lengths
        flat = np.arange(int(lengths.sum())) + np.repeat(starts - firsts, lengths)
        return owner, self.items[flat], self.scores[flat]

    def rows_of(self, priors: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Row numbers of ``items`` (any shape) in each of ``priors``: [len(priors), *items.shape]."""
        priors = np.asarray(priors, np.int64).reshape((-1,) + (1,) * np.ndim(items))
        return priors * self.size + np.asarray(items, np.int64)[None]

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + self.items.nbytes + self.scores.nbytes


class _Sample(NamedTuple):
    items: np.ndarray
    rows: np.ndarray
    bias: np.ndarray
    category: np.ndarray


#: Members of a boosted category scored beside the index's candidates (larger categories'
#: members reach the list through the index alone).
CATEGORY_CANDIDATES = 5000


class NumpyTower:
    def __init__(self, weights: dict[str, np.ndarray], index=None) -> None:
        self.weights = {name: np.asarray(value) for name, value in weights.items()}
        #: ``ml.item_index.ItemIndex`` of a large catalogue: a request scores its candidates only.
        self.index = index
        self.n_hidden = sum(
            1 for name in self.weights if name.startswith("hidden_") and name.endswith("_kernel")
        )
        self.item_table = self.weights["item_embedding"].astype(np.float32, copy=False)
        self.item_bias = self.weights["item_bias"].astype(np.float32, copy=False)
        # Which items had training events (older versions: all); the others are known by content.
        self.item_trained = np.asarray(self.weights.get("item_trained", np.ones(len(self.item_bias)))) > 0
        self.mixture = bool(int(weights.get("mixture", 0)))
        # New products (no training events) and when each was listed: the freshness term.
        self.freshness = float(weights.get("freshness", 0.0))
        added = np.asarray(weights.get("item_added", np.full(len(self.item_bias), np.nan)), np.float64)
        self.fresh_items = np.flatnonzero(~self.item_trained[: len(added)])
        self.fresh_items = self.fresh_items[self.fresh_items > 0]
        self.fresh_added = added[self.fresh_items]
        w = self.weights
        # Items of each category, contiguous: a shopper's few categories are boosted by adding
        # to their members only, not by gathering a boost for every item of the catalogue.
        category = np.asarray(w.get("item_category", np.zeros(len(self.item_bias), np.int64)))
        self.category_members = np.argsort(category, kind="stable").astype(np.int32)
        # Each item's category as the gather of a large boost wants it (a large catalogue's
        # requests score the index's candidates only and never gather over every item).
        self.item_category = category.astype(np.intp) if index is None else None
        # The index's uniform sample with its rows in one block: read at every request, where
        # the table's scattered rows would each cost a page.
        self.sample = None
        if index is not None:
            items = index.sample
            self.sample = _Sample(
                items, np.ascontiguousarray(self.item_table[items]), self.item_bias[items], category[items]
            )
        self.category_starts = np.searchsorted(
            category[self.category_members], np.arange(len(w.get("category_embedding", [0])) + 1)
        )
        # The repeat/explore mixture makes every row of scores a distribution (log-probabilities).
        self.normalized = self.mixture and "repeat_type" in w
        self.priors = None
        if "prior_offsets" in w:
            self.priors = PriorTable.from_exported(w)
        elif "prior_items" in w:  # versions saved before the compressed form
            self.priors = PriorTable(w.pop("prior_items"), w.pop("prior_scores"))
        if "repeat_type" in w:
            # Term 0 is the repeat logit, terms 1.. the priors' weights: one gather serves all.
            self.term_type = np.concatenate([w["repeat_type"][None], w["prior_type"]])
            self.term_age = np.concatenate([w["repeat_age"][None], w["prior_age"]])
            self.term_position = np.concatenate([w["repeat_position"][None], w["prior_position"]])

    def user_vectors(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.forward(inputs)[0]

    def forward(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(user vectors [n, D], mix [n, 1 + n_priors]) as ``NextItemModel.tower``."""
        user, mix, _ = self.forward_with_attention(inputs)
        return user, mix

    def forward_with_attention(
        self, inputs: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``forward`` plus the attention weight of each history position [n, L] (for reasons)."""
        w = self.weights
        items = inputs["items"]
        mask = (items > 0).astype(np.float32)
        history = (
            w["item_embedding"][items]
            + w["category_embedding"][w["item_category"][items]]
            + w["type_embedding"][inputs["types"]]
            + w["age_embedding"][inputs["ages"]]
        ) * mask[..., None]
        hidden = np.tanh(history @ w["attention_hidden_kernel"] + w["attention_hidden_bias"])
        scores = (hidden @ w["attention_score_kernel"])[..., 0]
        scores = np.where(mask > 0, scores, -1e9)
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights = scores / scores.sum(axis=1, keepdims=True) * mask
        pooled = (history * weights[..., None]).sum(axis=1)
        hidden = np.concatenate([pooled, history[:, -1, :], inputs["context"].astype(np.float32)], axis=1)
        for i in range(self.n_hidden):
            hidden = np.maximum(hidden @ w[f"hidden_{i}_kernel"] + w[f"hidden_{i}_bias"], 0.0)
        user = (hidden @ w["user_projection_kernel"] + w["user_projection_bias"]).astype(np.float32)
        mix = hidden @ w["mix_kernel"] + w["mix_bias"] if "mix_kernel" in w else np.zeros((len(items), 1))
        return user, mix.astype(np.float32), weights

    def history_terms(
        self, inputs: dict[str, np.ndarray], mix: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(repeat logit [n, L], prior weights [n_priors, n, L]) of each history position,
        or None for a model without the repeat and prior mechanisms."""
        if not hasattr(self, "term_type"):
            return None
        items = inputs["items"]
        length, slots = items.shape[1], self.term_position.shape[1]
        offsets = mix.T[:, :, None].copy()
        if self.mixture:
            offsets[0] = 0.0  # mix column 0 is the gate, not an offset of the repeat logit
        terms = (
            self.term_type[:, inputs["types"]]
            + self.term_age[:, inputs["ages"]]
            + self.term_position[:, None, slots - length :]
            + offsets
        ) * (items > 0)
        priors = terms[1:]
        window = self.prior_window(length)
        if window < length:
            priors[:, :, : length - window] = 0.0
        return terms[0], priors

    def category_weights(self, inputs: dict[str, np.ndarray]) -> np.ndarray | None:
        """[n, L]: what each history position adds to every item of its category, or None
        for a model without the category match."""
        w = self.weights
        if "category_type" not in w:
            return None
        items = inputs["items"]
        length = items.shape[1]
        weight = (
            w["category_type"][inputs["types"]]
            + w["category_age"][inputs["ages"]]
            + w["category_position"][None, len(w["category_position"]) - length :]
        )
        return weight * ((items > 0) & (w["item_category"][items] > 0))

    def category_boost(self, inputs: dict[str, np.ndarray]) -> np.ndarray | None:
        """[n, n_categories + 1] as ``NextItemModel.category_boost``."""
        weight = self.category_weights(inputs)
        if weight is None:
            return None
        w, items = self.weights, inputs["items"]
        boost = np.zeros((len(items), len(w["category_embedding"])), np.float32)
        rows = np.broadcast_to(np.arange(len(items))[:, None], items.shape)
        np.add.at(boost, (rows, w["item_category"][items]), weight.astype(np.float32))
        return boost

    def prior_window(self, length: int) -> int:
        """How many of the last history positions the priors read (all, for older models)."""
        return min(int(self.weights.get("prior_window", length)), length)

    def scores(
        self,
        inputs: dict[str, np.ndarray],
        forward: tuple[np.ndarray, np.ndarray] | None = None,
        terms: tuple[np.ndarray, np.ndarray] | None = None,
        now: np.ndarray | None = None,
    ) -> np.ndarray:
        """float32 [n, n_items + 1]: every item scored; column 0 (padding) is -inf.

        Besides the matrix product, history items get their repeat logits and their
        co-occurrence neighbours the priors' (one gather and one unbuffered add for all).
        ``forward`` and ``terms`` pass ``forward(inputs)`` and ``history_terms`` when the
        caller already has them. ``now`` (Unix seconds of each case) adds the freshness
        term of new products (``add_freshness``).
        """
        scores = self._scores(inputs, forward, terms)
        if now is not None:
            self.add_freshness(scores, now)
        return scores

    def add_freshness(self, scores: np.ndarray, now: np.ndarray) -> None:
        """New arrivals first among new products: each item without training events gets
        ``freshness`` x -log(1 + hours since it was listed) at each case's moment.

        The model cannot learn this weight (a product nobody has chosen is never a training
        target), so it is a setting chosen on the dev splits, like ``gate_shift``. It is the
        signal of the ``cold_newest`` baseline: what was listed an hour ago is what shoppers
        are finding now. An unknown listing date counts as a year old; one in the future as now.
        """
        if not self.freshness or not len(self.fresh_items):
            return
        scores[:, self.fresh_items] -= self._freshness_penalty(
            np.asarray(now, np.float64)[:, None], self.fresh_added[None, :]
        )

    def _freshness_penalty(self, now: np.ndarray | float, added: np.ndarray) -> np.ndarray:
        """``freshness`` x log(1 + hours since listed), float32, broadcast over ``now`` and ``added``."""
        age = now - added
        age = np.where(np.isnan(age), UNKNOWN_AGE_SECONDS, np.maximum(age, 0.0))
        return (self.freshness * np.log1p(age / FRESHNESS_UNIT_SECONDS)).astype(np.float32)

    def _scores(
        self,
        inputs: dict[str, np.ndarray],
        forward: tuple[np.ndarray, np.ndarray] | None,
        terms: tuple[np.ndarray, np.ndarray] | None,
    ) -> np.ndarray:
        user, mix = forward if forward is not None else self.forward(inputs)
        if terms is None:
            terms = self.history_terms(inputs, mix)
        if len(user) == 1:
            return self._scores_one(inputs, user, mix, terms)[None]
        scores = user.astype(np.float32, copy=False) @ self.item_table.T  # the one product over all items
        scores += self.item_bias
        boost = self.category_boost(inputs)
        if boost is not None:
            scores += boost[:, self.weights["item_category"]]
        if terms is not None:
            repeat, priors = terms
            items = inputs["items"]
            window = self.prior_window(items.shape[1])
            prior_items, priors = items[:, -window:], priors[:, :, -window:]
            if self.priors is not None and len(priors):
                # Each history position adds its weight x the prior score to its item's
                # neighbours, for every prior in one unbuffered add (the same neighbour may come
                # from two positions). Padding (item 0) has no neighbours.
                rows = self.priors.rows_of(np.arange(len(priors)), prior_items)  # [n_priors, n, window]
                owner, neighbours, values = self.priors.entries(rows)
                case = np.broadcast_to(np.arange(len(items))[None, :, None], rows.shape).ravel()[owner]
                np.add.at(scores, (case, neighbours), priors.ravel()[owner] * values)
            if self.mixture:
                scores[:, 0] = -np.inf
                return self.mix_repeat(scores, items, repeat, mix)
            np.add.at(scores, (np.broadcast_to(np.arange(len(items))[:, None], items.shape), items), repeat)
        scores[:, 0] = -np.inf
        return scores

    def _scores_one(
        self,
        inputs: dict[str, np.ndarray],
        user: np.ndarray,
        mix: np.ndarray,
        terms: tuple[np.ndarray, np.ndarray] | None,
    ) -> np.ndarray:
        """``_scores`` of one case (a request), [n_items + 1]: the same sums, each a few calls
        on the history's twenty values instead of the batch's broadcasts over [n, ...].

        Everything that reads the history only is worked out before the product over the
        catalogue: the product streams the item table through the CPU's caches, and small
        arrays read after it come back from memory."""
        items = inputs["items"][0]
        boost = self._category_boost_plan(inputs)
        prior_adds = mass = None
        if terms is not None:
            repeat, priors = terms
            if self.priors is not None and len(priors):
                window = self.prior_window(len(items))
                owner, neighbours, values = self.priors.entries(
                    self.priors.rows_of(np.arange(len(priors)), items[-window:])  # [n_priors, window]
                )
                prior_adds = neighbours, priors[:, 0, -window:].ravel()[owner] * values
            present = items > 0
            if self.mixture:
                mass = self._repeat_mass(items[present], repeat[0][present], float(mix[0, 0]))
        row = (user.astype(np.float32, copy=False) @ self.item_table.T)[0]  # the one product over all items
        row += self.item_bias
        if boost is not None:
            self._add_category_boost(row, *boost)
        if prior_adds is not None:
            np.add.at(row, *prior_adds)
        if terms is not None and not self.mixture:
            np.add.at(row, items, repeat[0])
        row[0] = -np.inf
        if mass is not None:
            self._mix_repeat_one(row, mass)
        return row

    #: A category boost touching more than this share of the catalogue is added by one gather
    #: over every item (0.7 ns an item) rather than to its members (6 ns a member).
    GATHER_ABOVE = 1 / 8

    def _category_boost_plan(self, inputs: dict[str, np.ndarray]) -> tuple | None:
        """(boost, categories it touches, their sizes) of case 0, or None when nothing to add."""
        boost = self.category_boost_one(inputs)
        if boost is None:
            return None
        touched = np.flatnonzero(boost)
        if not len(touched):
            return None
        starts = self.category_starts
        return boost, touched, starts[touched + 1] - starts[touched]

    def _add_category_boost(
        self, row: np.ndarray, boost: np.ndarray, touched: np.ndarray, sizes: np.ndarray
    ) -> None:
        """Each touched category's boost added to its members, or, when they are much of the
        catalogue, every item's by one gather."""
        if sizes.sum() > self.GATHER_ABOVE * len(row):
            np.add(row, boost.take(self.item_category), out=row)
            return
        starts = self.category_starts
        members = np.concatenate([self.category_members[starts[c] : starts[c + 1]] for c in touched.tolist()])
        row[members] += np.repeat(boost[touched], sizes)

    def scores_and_normalizer(
        self,
        inputs: dict[str, np.ndarray],
        forward: tuple[np.ndarray, np.ndarray] | None = None,
        terms: tuple[np.ndarray, np.ndarray] | None = None,
        now: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(``scores``, log of each row's softmax denominator over the real items [n]).

        The repeat/explore mixture's scores are log-probabilities already (each row sums to
        1), so the denominator needs no pass over the catalogue: only the freshness term moves
        it, by what it changes on new products. Other models: one log-sum-exp per row.
        """
        scores = self._scores(inputs, forward, terms)
        if not self.normalized:
            if now is not None:
                self.add_freshness(scores, now)
            real = scores[:, 1:]
            top = real.max(axis=1, keepdims=True)
            top = np.where(np.isfinite(top), top, 0.0)
            return scores, (top + np.log(np.exp(real - top).sum(axis=1, keepdims=True)))[:, 0]
        if now is None or not self.freshness or not len(self.fresh_items):
            return scores, np.zeros(len(scores))  # log 1: the rows are distributions as they are
        fresh = self.fresh_items
        before = np.exp(scores[:, fresh].astype(np.float64))
        self.add_freshness(scores, now)
        mass = 1.0 + (np.exp(scores[:, fresh].astype(np.float64)) - before).sum(axis=1)
        return scores, np.log(mass)

    def candidate_scores(
        self,
        inputs: dict[str, np.ndarray],
        forward: tuple[np.ndarray, np.ndarray],
        terms: tuple[np.ndarray, np.ndarray] | None,
        now: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """One case (a request) scored on the index's candidates: (items, ascending; their
        scores; the log of the softmax denominator over every real item).

        The candidates are the index's best dense scores, the history, its neighbours in the
        priors and the members of its categories (up to ``CATEGORY_CANDIDATES`` each): every
        term of ``scores_and_normalizer`` reaches them exactly, and an item outside them has
        only its dense score, below the index's candidates. Every sum over the catalogue
        (the explore softmax, the normalizer, the freshness term's change of mass) is the
        candidates' exact part plus the index's uniform sample of the other items, each
        standing for its share of them.
        """
        user, mix = forward
        items = inputs["items"][0]
        present = items > 0
        window = self.prior_window(len(items))
        parts = [self.index.search(user[0]), items[present]]
        entries = None
        if terms is not None and self.priors is not None and len(terms[1]):
            rows = self.priors.rows_of(np.arange(len(terms[1])), items[-window:])  # [n_priors, window]
            entries = self.priors.entries(rows)
            parts.append(entries[1])
        boost = self.category_boost_one(inputs)
        touched = np.flatnonzero(boost) if boost is not None else np.zeros(0, np.int64)
        starts = self.category_starts
        parts += [
            self.category_members[starts[c] : starts[c + 1]]
            for c in touched.tolist()
            if starts[c + 1] - starts[c] <= CATEGORY_CANDIDATES
        ]
        columns = sorted_unique(np.concatenate(parts).astype(np.int64))
        columns = columns[columns > 0]
        sample = self.sample
        # the sample's items outside them (``columns`` is sorted: one binary search each)
        found = np.minimum(np.searchsorted(columns, sample.items), max(len(columns) - 1, 0))
        others = columns[found] != sample.items if len(columns) else np.ones(len(sample.items), bool)
        n_items = len(self.item_bias) - 1
        share = (n_items - len(columns)) / max(int(others.sum()), 1)
        at = np.concatenate([columns, sample.items[others]])
        weight = np.concatenate([np.ones(len(columns)), np.full(int(others.sum()), share)])
        vector = user[0].astype(np.float32)
        row = np.concatenate(
            [
                self.item_table[columns] @ vector + self.item_bias[columns],
                sample.rows[others] @ vector + sample.bias[others],
            ]
        ).astype(np.float32)
        if len(touched):
            row += boost[np.concatenate([self.weights["item_category"][columns], sample.category[others]])]
        if terms is None:
            return self._finish_candidates(columns, row, weight, at, now, None)
        repeat, priors = terms
        if entries is not None:
            owner, neighbours, values = entries
            np.add.at(
                row, np.searchsorted(columns, neighbours), priors[:, 0, -window:].ravel()[owner] * values
            )
        history = np.searchsorted(columns, items[present])
        if not self.mixture:
            np.add.at(row, history, repeat[0][present])
            return self._finish_candidates(columns, row, weight, at, now, None)
        # The explore softmax's denominator is over the whole catalogue: weighted.
        mass = self._repeat_mass(history, repeat[0][present], float(mix[0, 0]))
        self._mix_repeat_one(row, mass, _weighted_logsumexp(row, weight))
        return self._finish_candidates(columns, row, weight, at, now, self.normalized)

    def _finish_candidates(
        self,
        columns: np.ndarray,
        row: np.ndarray,
        weight: np.ndarray,
        at: np.ndarray,
        now: np.ndarray | None,
        normalized: bool | None,
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """The freshness term and the normalizer of ``candidate_scores``'s row."""
        fresh = np.flatnonzero(np.isin(at, self.fresh_items) if now is not None and self.freshness else [])
        before = np.exp(row[fresh].astype(np.float64))
        if len(fresh):
            added = self.fresh_added[np.searchsorted(self.fresh_items, at[fresh])]
            row[fresh] -= self._freshness_penalty(float(np.asarray(now).ravel()[0]), added)
        if normalized:
            mass = 1.0 + float((weight[fresh] * (np.exp(row[fresh].astype(np.float64)) - before)).sum())
            normalizer = math.log(mass)
        else:
            normalizer = _weighted_logsumexp(row, weight)
        return columns, row[: len(columns)], normalizer

    def category_boost_one(self, inputs: dict[str, np.ndarray]) -> np.ndarray | None:
        """``category_boost`` of case 0, [n_categories + 1] (or None for a model without the
        category match): one weighted count of the history's categories."""
        weight = self.category_weights(inputs)
        if weight is None:
            return None
        categories = self.weights["item_category"][inputs["items"][0]]
        return np.bincount(categories, weights=weight[0], minlength=len(self.category_starts) - 1).astype(
            np.float32
        )

    def mix_repeat(
        self, explore: np.ndarray, items: np.ndarray, repeat: np.ndarray, mix: np.ndarray
    ) -> np.ndarray:
        """log(g P_repeat + (1 - g) P_explore), as ``NextItemModel.call`` in mixture mode.

        Only history items have a repeat probability: every other item is log(1 - g) +
        log P_explore, so the dense work is one log-softmax. A batch's path: one case (a
        request) takes ``_repeat_mass`` and ``_mix_repeat_one``, the same sums in a few scalar
        steps instead of a dozen array calls on arrays of twenty values.
        """
        top = explore.max(axis=1, keepdims=True)
        explore -= top + np.log(np.exp(explore - top).sum(axis=1, keepdims=True))  # log P_explore
        present = items > 0
        top = np.max(repeat, axis=1, keepdims=True, initial=-np.inf, where=present)
        weights = np.where(present, np.exp(repeat - np.where(np.isfinite(top), top, 0.0)), 0.0)
        has_history = present.any(axis=1)
        weights /= np.where(has_history, weights.sum(axis=1), 1.0)[:, None]
        gate = mix[:, 0].astype(np.float64)  # log g and log(1 - g), stable for any gate logit
        log_g = np.where(has_history, -np.logaddexp(0.0, -gate), -np.inf)[:, None]
        explore += np.where(has_history, -np.logaddexp(0.0, gate), 0.0)[:, None].astype(np.float32)
        columns = np.unique(items[present])
        if len(columns):
            rows = np.broadcast_to(np.arange(len(items))[:, None], items.shape)
            repeat_p = np.zeros((len(items), len(columns)))  # only the history's items
            np.add.at(repeat_p, (rows[present], np.searchsorted(columns, items[present])), weights[present])
            with np.errstate(divide="ignore"):
                log_repeat = (log_g + np.log(repeat_p)).astype(np.float32)
            explore[:, columns] = np.logaddexp(explore[:, columns], log_repeat)
        return explore

    @staticmethod
    def _repeat_mass(
        columns: np.ndarray, repeat: np.ndarray, gate: float
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """The repeat half of one case's mixture, from its history alone: (the items it holds
        (``columns``: places in the row, padding left out), log of g x each one's repeat
        probability, log(1 - g), the explore half's weight). A case without history explores only."""
        if not len(columns):
            return columns, np.zeros(0, np.float32), 0.0
        # log g and log(1 - g), stable for any gate logit
        log_g, log_not_g = -np.logaddexp(0.0, -gate), -np.logaddexp(0.0, gate)
        values = repeat.astype(np.float64)
        weights = np.exp(values - values.max())
        totals: dict[int, float] = {}
        for column, weight in zip(columns.tolist(), (weights / weights.sum()).tolist(), strict=True):
            totals[column] = totals.get(column, 0.0) + weight
        held = np.fromiter(totals, np.int64, len(totals))
        repeat_p = np.fromiter(totals.values(), np.float64, len(totals))
        # a probability that underflowed is -690 here, not -inf: logaddexp keeps the explore part
        log_repeat = (log_g + np.log(np.maximum(repeat_p, 1e-300))).astype(np.float32)
        return held, log_repeat, float(log_not_g)

    @staticmethod
    def _mix_repeat_one(
        row: np.ndarray, mass: tuple[np.ndarray, np.ndarray, float], log_explore: float | None = None
    ) -> None:
        """``mix_repeat`` of one case, in place on its ``row`` of explore scores, with the
        ``_repeat_mass`` of its history. ``log_explore`` is the explore softmax's
        log-denominator where the row does not hold every item (``candidate_scores``); by
        default the row's own."""
        held, log_repeat, log_not_g = mass
        if log_explore is None:
            log_explore = _logsumexp(row)
        row -= np.float32(log_explore - log_not_g)  # log(1 - g) + log P_explore, in one pass
        if len(held):
            row[held] = np.logaddexp(row[held], log_repeat)

    def contributions(
        self,
        inputs: dict[str, np.ndarray],
        mix: np.ndarray,
        attention: np.ndarray,
        candidates: np.ndarray,
        terms: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """[L, J]: how much each history position of case 0 adds to each candidate's score.

        The repeat and co-occurrence terms are exact (the score is their sum); the user
        vector's share is approximated by the position's attention weight times the cosine
        of the two item embeddings. Serving names the largest as the reason.
        """
        items = inputs["items"][0]
        # Only these rows are normalized: a unit copy of the whole table would double it.
        mine, theirs = self._unit_rows(items), self._unit_rows(candidates)
        result = attention[0][:, None] * (mine @ theirs.T)
        if terms is None:
            terms = self.history_terms(inputs, mix)
        if terms is not None:
            repeat, priors = terms
            if self.priors is not None and len(priors):
                rows = self.priors.rows_of(np.arange(len(priors)), items)  # [n_priors, L]
                owner, neighbours, values = self.priors.entries(rows)
                match = neighbours[:, None] == candidates[None, :]  # [entries, J]
                scores = np.zeros((rows.size, len(candidates)))
                np.add.at(scores, owner, values[:, None] * match)
                result += (priors[:, 0, :, None] * scores.reshape(*rows.shape, -1)).sum(axis=0)
            result += repeat[0][:, None] * (items[:, None] == candidates[None, :])
        weight = self.category_weights(inputs)
        if weight is not None:
            category = self.weights["item_category"]
            same = (category[items][:, None] == category[candidates][None, :]) & (
                category[items][:, None] > 0
            )
            result += weight[0][:, None] * same
        result[items == 0] = -np.inf
        return result

    def _unit_rows(self, items: np.ndarray) -> np.ndarray:
        """The item table's rows of ``items``, scaled to unit length (cosines of embeddings)."""
        rows = self.item_table[items]
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)

    def neighbours(self, names: tuple[str, ...], item: int) -> tuple[np.ndarray, np.ndarray]:
        """(neighbours, scores) of ``item`` in the priors called ``names`` (all of their rows)."""
        known = [str(name) for name in self.weights.get("prior_names", [])]
        chosen = [i for i, name in enumerate(known) if name in names]
        if self.priors is None or not chosen:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        _, found, scores = self.priors.entries(self.priors.rows_of(chosen, np.array(item)))
        return found, scores


def _logsumexp(values: np.ndarray) -> float:
    """log sum(exp(values)) of a row of scores (-inf allowed), in two passes where the
    exponentials cannot overflow or vanish (|max| < 40 in float32), three otherwise."""
    top = float(values.max())
    if -40.0 < top < 40.0:
        return math.log(float(np.exp(values).sum()))
    if not math.isfinite(top):
        top = 0.0
    return top + math.log(max(float(np.exp(values - np.float32(top)).sum()), 1e-300))


def _weighted_logsumexp(values: np.ndarray, weight: np.ndarray) -> float:
    """log sum(weight x exp(values)), stable (values may hold -inf)."""
    top = float(values.max()) if len(values) else 0.0
    if not math.isfinite(top):
        top = 0.0
    return top + math.log(max(float((weight * np.exp(values.astype(np.float64) - top)).sum()), 1e-300))
