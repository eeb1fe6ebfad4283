"""The model at request time: a shopper's events -> scores for every item, and why.

The history is featurized by ``featurize_one``, the one-case form of training's ``featurize``
(a test holds the two equal); the numpy tower gives the user vector and one float32 matrix
product scores the whole catalogue. Reasons come from ``NumpyTower.contributions``: the history event that adds most to an item's score.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..ml.cases import TYPE_INDEX
from ..ml.features import featurize_one
from .history import HistoryEvent
from .loader import ServingModel

#: The least a history event must add to an item's logit (x1.65 its probability) to be named
#: as the reason. Below it the item is there for its own popularity or the user vector as a
#: whole, and the largest share is noise (e.g. the cosine of embeddings the model barely
#: trained), which would name an unrelated product ("Because you viewed “Sneakers”" under a
#: phone). Those items keep the generic reason.
MIN_REASON_CONTRIBUTION = 0.5
#: How much each event type says of wanting an item: a reason names the strongest.
STRENGTH = {"view": 1, "click": 2, "cart": 3, "purchase": 4}


@dataclass
class ShopperScores:
    """Scores of the items for one shopper (log-probabilities up to a constant): of every item,
    or of a large catalogue's candidates (``columns``; ``ml.item_index``), the others being
    too unlikely to list (probability 0 here)."""

    model: ServingModel
    logits: np.ndarray  # float32 [n_items + 1], or [len(columns)]; excluded items are -inf
    log_normalizer: float
    inputs: dict[str, np.ndarray]
    mix: np.ndarray
    attention: np.ndarray
    terms: tuple[np.ndarray, np.ndarray] | None
    history: list[HistoryEvent]  # the events at the history positions (left-padded: None)
    columns: np.ndarray | None = None  # the item index of each logit (None: every item, in order)

    def positions(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(which of ``indices`` are scored, their positions in ``logits``)."""
        indices = np.asarray(indices, np.int64)
        if self.columns is None:
            scored = (indices >= 0) & (indices < len(self.logits))
            return scored, indices[scored]
        at = np.minimum(np.searchsorted(self.columns, indices), len(self.columns) - 1)
        scored = self.columns[at] == indices if len(self.columns) else np.zeros(len(indices), bool)
        return scored, at[scored]

    def logit(self, index: int) -> float:
        scored, at = self.positions(np.array([index]))
        return float(self.logits[at[0]]) if scored[0] else float("-inf")

    def probability(self, index: int) -> float:
        return float(np.exp(self.logit(index) - self.log_normalizer))

    def exclude(self, indices: np.ndarray) -> None:
        self.logits[self.positions(indices)[1]] = -np.inf

    def category_mass(self, item_category: np.ndarray) -> np.ndarray:
        """The probability of each category (summed over its scored items)."""
        items = np.arange(len(self.logits)) if self.columns is None else self.columns
        probabilities = np.exp(self.logits - self.log_normalizer)
        real = items > 0
        return np.bincount(item_category[items[real]], weights=probabilities[real])

    def top(self, n: int) -> list[tuple[int, float]]:
        """(item index, probability) of the ``n`` best items, best first (excluded ones never)."""
        logits = self.logits
        n = min(n, len(logits) - (1 if self.columns is None else 0))
        if n <= 0:
            return []
        best = best_positions(logits, n)
        best = best[np.argsort(-logits[best], kind="stable")]
        best = best[np.isfinite(logits[best])]
        items = best if self.columns is None else self.columns[best]
        probabilities = np.exp(logits[best] - self.log_normalizer)
        return list(zip(items.tolist(), probabilities.tolist(), strict=True))

    def explain(self, item_ids: Sequence[str]) -> dict[str, HistoryEvent]:
        """Item id -> the history event that contributed most to its score."""
        index = self.model.item_ids.indices(list(item_ids)).tolist()
        known = [(item, i) for item, i in zip(item_ids, index, strict=True) if i > 0]
        if not known:
            return {}
        candidates = np.array([i for _, i in known], dtype=np.int64)
        contributions = self.model.tower.contributions(
            self.inputs, self.mix, self.attention, candidates, self.terms
        )
        best = contributions.argmax(axis=0)  # ties: the earliest position, the same every time
        result = {}
        for column, ((item, _), position) in enumerate(zip(known, best, strict=True)):
            event = self.history[position]
            if event is not None and contributions[position, column] >= MIN_REASON_CONTRIBUTION:
                result[item] = self.strongest(event.item_id)
        return result

    def strongest(self, item_id: str) -> HistoryEvent:
        """The shopper's strongest event on ``item_id`` (bought > carted > chosen > viewed; the
        latest of those): what a reason names, whichever of them the model weighed most."""
        events = [e for e in self.history if e is not None and e.item_id == item_id]
        return max(events, key=lambda e: (STRENGTH.get(e.event_type, 0), e.timestamp))


#: One score in how many is in the sample that sets the threshold of ``best_positions``.
SAMPLE_EVERY = 32


@functools.lru_cache(maxsize=16)
def _threshold_sample(size: int) -> np.ndarray:
    """Positions (sorted) of ``size // SAMPLE_EVERY`` scores of a row of ``size``, spread
    evenly but out of step with any period (the golden ratio's multiples, modulo 1).

    Not every ``SAMPLE_EVERY``-th score: item numbers often follow the catalogue's order
    (round its categories, say), and a stride in step with it sees only some categories, so
    the threshold falls below a boosted category's members and keeps them all (the serving
    bench's catalogue kept 564 candidates for 40 at the median, against about 190)."""
    golden = (np.sqrt(5.0) - 1.0) / 2.0
    positions = np.sort((np.arange(size // SAMPLE_EVERY) * golden % 1.0 * size).astype(np.intp))
    positions.flags.writeable = False
    return positions


def best_positions(logits: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` largest of ``logits`` (in no order): a third of ``argpartition``'s
    time over a large catalogue. A threshold from a sample of one score in ``SAMPLE_EVERY``
    keeps about twice ``n`` candidates in one comparison pass; when at least ``n`` scores
    reach it, the ``n`` largest are all among them (exact), else the full partition runs."""
    size = len(logits)
    if size >= 64 * SAMPLE_EVERY and n * 8 * SAMPLE_EVERY <= size:
        sample = logits[_threshold_sample(size)]
        j = 2 * (n // SAMPLE_EVERY) + 4
        threshold = np.partition(sample, len(sample) - j)[len(sample) - j]
        candidates = np.flatnonzero(logits >= threshold)
        if n <= len(candidates) <= size // 8:
            return candidates[np.argpartition(logits[candidates], len(candidates) - n)[-n:]]
    return np.argpartition(logits, size - n)[-n:]


def shopper_inputs(
    model: ServingModel, events: Sequence[HistoryEvent], current_session: str, now: float | None = None
) -> tuple[dict[str, np.ndarray], list[HistoryEvent | None]] | None:
    """Model inputs for one shopper, or None when no event names an item the model knows."""
    built = _inputs(model, events, current_session, now)
    return None if built is None else built[:2]


def _inputs(
    model: ServingModel, events: Sequence[HistoryEvent], current_session: str, now: float | None
) -> tuple[dict[str, np.ndarray], list[HistoryEvent | None], dict[str, int]] | None:
    """``shopper_inputs`` and the index of each history item (exclusions are mostly those)."""
    typed = [e for e in events if e.event_type in TYPE_INDEX]
    index = model.item_ids.indices([e.item_id for e in typed]).tolist()
    length = model.spec.history_length
    known = [(e, i) for e, i in zip(typed, index, strict=True) if i > 0][-length:]
    if not known:
        return None
    events = [e for e, _ in known]
    inputs = featurize_one(
        [i for _, i in known],
        [TYPE_INDEX[e.event_type] for e in events],
        [e.timestamp for e in events],
        [bool(current_session) and e.session_key == current_session for e in events],
        time.time() if now is None else now,
        model.spec,
        model.item_features,
    )
    found = {e.item_id: i for e, i in zip(typed, index, strict=True)}
    return inputs, [None] * (length - len(events)) + events, found


def score_shopper(
    model: ServingModel,
    events: Sequence[HistoryEvent],
    current_session: str,
    exclude: set[str] = frozenset(),
) -> ShopperScores | None:
    """Every item's score for this shopper, or None (nothing in the history is known)."""
    now = time.time()
    built = _inputs(model, events, current_session, now)
    if built is None:
        return None
    inputs, history, found = built
    tower = model.tower
    user, mix, attention = tower.forward_with_attention(inputs)
    terms = tower.history_terms(inputs, mix)
    columns = None
    if tower.index is not None:  # a large catalogue: the index's candidates only
        columns, logits, log_normalizer = tower.candidate_scores(inputs, (user, mix), terms, np.array([now]))
    else:
        # The log of the softmax denominator over every real item (column 0 is padding, -inf).
        scored, normalizers = tower.scores_and_normalizer(inputs, (user, mix), terms, now=np.array([now]))
        logits, log_normalizer = scored[0], float(normalizers[0])
    scores = ShopperScores(model, logits, log_normalizer, inputs, mix, attention, terms, history, columns)
    if exclude:
        others = [item for item in exclude if item not in found]
        index = [found[item] for item in exclude if item in found]
        if others:
            index += model.item_ids.indices(others).tolist()
        index = np.asarray(index, np.int64)
        scores.exclude(index[index > 0])
    return scores


#: The visit a one-item question is asked in (no real shopper has this key).
ANCHOR_SESSION = "\x00anchor"


def score_item(model: ServingModel, index: int) -> ShopperScores | None:
    """What shoppers view next after viewing the item at ``index``: a similar list's question,
    asked of the for-you model with a history of that one view (the item itself excluded)."""
    item_id = model.item_ids[index]
    event = HistoryEvent(time.time(), "view", item_id, ANCHOR_SESSION, key="")
    return score_shopper(model, [event], ANCHOR_SESSION, exclude={item_id})
