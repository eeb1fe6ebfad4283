"""A shopper simulator built from a real log: A/B tests and off-policy estimates with a known truth.

Real shoppers' answers to our lists cannot be had here, so each simulated shopper replays a
real session of the log's later part: before each of its item events they are shown a list
(the context is the item they just looked at), and they click each shown item
independently with probability

    P(click item j in place k) = position_bias[k] x attraction(j | i)

the position-based click model (Craswell et al., WSDM 2008). The hidden attraction is fitted to
what real shoppers did next, on the **whole** log (so it knows more than any version learned
on the earlier part): ``p(j | i)`` = distinct sessions that went from i to j, smoothed toward
the popularity of j within i's category; the attraction is ``A_MAX * sqrt(p / max_j' p)``, so
the item real shoppers most often chose next is clicked at most ``A_MAX`` of the times it is
seen first. Position bias falls as ``1 / (k + 1) ** ETA`` (ETA = 0.8, near the eye-tracking
and click-log estimates of Joachims et al. 2005 and Wang et al. 2018).

The versions compared are rankings fitted on the earlier part only: ``good`` (next-item
transitions counted by distinct sessions, filled by the category's and then the shop's best
sellers); ``worse``, the same lists with their first item shown third (a deliberately worse
version); and ``stale``, the method on only the oldest quarter of that data (an old version
whose items often differ from the retrained one's). Their true clicks per list are known exactly: the mean
over the later part's lists of ``sum_k bias[k] * attraction``.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

A_MAX = 0.5
ETA = 0.8
LIST_LENGTH = 8


@dataclass
class World:
    """Contexts (one shown list each), grouped by shopper, and the hidden click model."""

    last: list[str]  # the item the shopper just looked at, per context
    shopper_of: np.ndarray  # shopper index per context
    contexts_of: list[np.ndarray]  # context indices per shopper
    attraction: dict[str, dict[str, float]]  # i -> {j: attraction}, 0 elsewhere
    bias: np.ndarray  # [LIST_LENGTH]
    rankings: dict[str, dict[str, list[str]]]  # policy -> i -> ranked items

    @property
    def shoppers(self) -> int:
        return len(self.contexts_of)

    def lists(self, policy: str, length: int = LIST_LENGTH) -> list[list[str]]:
        ranking = self.rankings[policy]
        return [ranking.get(i, ranking[""])[:length] for i in self.last]

    def click_probabilities(self, lists: list[list[str]]) -> np.ndarray:
        """[contexts, places]: the chance each shown item is clicked in its place."""
        width = len(self.bias)
        probs = np.zeros((len(lists), width))
        for c, (i, shown) in enumerate(zip(self.last, lists, strict=True)):
            wanted = self.attraction.get(i, {})
            for k, j in enumerate(shown[:width]):
                probs[c, k] = self.bias[k] * wanted.get(j, 0.0)
        return probs

    def true_ctr(self, policy: str) -> float:
        """Clicks per list of ``policy`` over all contexts (each shopper's lists as they come)."""
        return float(self.click_probabilities(self.lists(policy)).sum(axis=1).mean())


def _sessions(frame) -> list[list[str]]:
    """Each session's items in order, repeats of the same item in a row dropped."""
    ordered = frame[frame["item"] != ""].sort_values(["session", "timestamp"])
    sessions = []
    for _, items in ordered.groupby("session", sort=False)["item"]:
        run = [item for n, item in enumerate(items) if n == 0 or item != items.iloc[n - 1]]
        if len(run) >= 2:
            sessions.append(run)
    return sessions


def _transitions(sessions: list[list[str]]) -> dict[str, Counter]:
    counts: dict[str, Counter] = defaultdict(Counter)
    for items in sessions:
        for i, j in set(pairwise(items)):  # each session counts once
            if i != j:
                counts[i][j] += 1
    return counts


def _by_count(counts: Counter) -> list[str]:
    """Keys by falling count, ties by key: the same order in every run (sets do not keep one)."""
    return [key for key, _ in sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))]


def _ranking(sessions: list[list[str]], category: dict[str, str], length: int) -> dict[str, list[str]]:
    """i -> the items most often next after i, then i's category's best sellers, then the shop's."""
    transitions = _transitions(sessions)
    popularity = Counter(item for items in sessions for item in set(items))
    ranked = _by_count(popularity)
    best = ranked[: length * 4]
    by_category: dict[str, list[str]] = defaultdict(list)
    for item in ranked:
        by_category[category.get(item, "")].append(item)
    ranking = {"": best[:length]}
    for i in sorted({item for items in sessions for item in items}):
        found = [j for j in _by_count(transitions.get(i, Counter()))[:length] if j != i]
        for j in by_category.get(category.get(i, ""), [])[: length * 4] + best:
            if len(found) >= length:
                break
            if j != i and j not in found:
                found.append(j)
        ranking[i] = found
    return ranking


def _demote(items: list[str]) -> list[str]:
    """The same list with its first item shown third: a deliberately worse version whose
    items are the good one's (so logs of either support estimates of the other)."""
    return items[1:3] + items[:1] + items[3:] if len(items) >= 3 else items


def build(frame, split: float = 0.5, smoothing: float = 2.0, length: int = LIST_LENGTH) -> World:
    """The world of a canonical event frame: versions fitted on the earlier ``split`` of its
    time, shoppers replaying the sessions of the rest, attraction fitted on all of it."""
    frame = frame[frame["item"] != ""]
    category = dict(zip(frame["item"], frame["category"].fillna(""), strict=False))
    cut = frame["timestamp"].quantile(split)
    starts = frame.groupby("session")["timestamp"].min()
    early = frame[frame["session"].isin(starts[starts < cut].index)]
    late = frame[frame["session"].isin(starts[starts >= cut].index)]
    everything = _sessions(frame)
    transitions = _transitions(everything)
    popularity = Counter(item for items in everything for item in set(items))
    in_category: dict[str, float] = Counter()
    for item, n in popularity.items():
        in_category[category.get(item, "")] += n
    train = _sessions(early)
    oldest = train[: max(len(train) // 4, 1)]
    good = _ranking(train, category, length + 40)
    rankings = {"good": good, "worse": {i: _demote(items) for i, items in good.items()}}
    rankings["stale"] = _ranking(oldest, category, length + 40)
    last, shopper_of, contexts_of = [], [], []
    attraction: dict[str, dict[str, float]] = {}
    for items in _sessions(late):
        mine = []
        for i in items[:-1]:
            if i not in attraction:
                attraction[i] = _attraction(
                    i, transitions, popularity, in_category, category, smoothing, rankings
                )
            mine.append(len(last))
            last.append(i)
            shopper_of.append(len(contexts_of))
        contexts_of.append(np.asarray(mine, dtype=np.int64))
    bias = 1.0 / (np.arange(length) + 1.0) ** ETA
    return World(last, np.asarray(shopper_of, dtype=np.int64), contexts_of, attraction, bias, rankings)


def _attraction(i, transitions, popularity, in_category, category, smoothing, rankings) -> dict[str, float]:
    """A_MAX x sqrt(p(j | i) / max p), for the items any version could show after i."""
    own = transitions.get(i, Counter())
    total = sum(own.values())
    c = category.get(i, "")
    shown = {j for ranking in rankings.values() for j in ranking.get(i, ranking[""])} | set(own)
    p = {}
    for j in shown:
        prior = (
            popularity.get(j, 0) / in_category[c]
            if c and category.get(j, "") == c and in_category[c]
            else 0.0
        )
        p[j] = (own.get(j, 0) + smoothing * prior) / (total + smoothing)
    top = max(p.values(), default=0.0)
    return {j: A_MAX * (value / top) ** 0.5 for j, value in p.items() if value > 0} if top > 0 else {}


# --- A/B tests ----------------------------------------------------------------------------------


def simulate_ab(
    world: World,
    probs: tuple[np.ndarray, np.ndarray],
    shoppers: int,
    rng: np.random.Generator,
    *,
    tau: float,
    alpha: float = 0.05,
    looks: int = 14,
    share: float = 0.5,
) -> tuple[bool, float]:
    """One A/B test of ``shoppers`` (drawn with replacement), read ``looks`` times (days).

    Returns (whether the always-valid test called a difference at any look, the final
    difference B - A in clicks per list)."""
    from recommendations.ml.experiment_stats import RatioSums, compare

    drawn = rng.integers(0, world.shoppers, shoppers)
    arm = (rng.random(shoppers) >= share).astype(np.int64)  # 0: A (control), 1: B
    clicks, lists = np.zeros(shoppers), np.zeros(shoppers)
    for s, (who, side) in enumerate(zip(drawn, arm, strict=True)):
        rows = probs[side][world.contexts_of[who]]
        clicks[s] = (rng.random(rows.shape) < rows).sum()
        lists[s] = rows.shape[0]
    earlier, called = None, False
    for look in range(1, looks + 1):
        upto = shoppers * look // looks
        a, b = arm[:upto] == 0, arm[:upto] == 1
        found = compare(
            RatioSums.from_arrays(clicks[:upto][a], lists[:upto][a]),
            RatioSums.from_arrays(clicks[:upto][b], lists[:upto][b]),
            tau=tau,
            alpha=alpha,
            earlier=earlier,
        )
        if found is None:
            continue
        earlier = found
        called = called or found.significant
    difference = earlier.difference if earlier is not None else 0.0
    return called, difference


def pilot(world: World, probs: np.ndarray, shoppers: int, rng: np.random.Generator):
    """The control's traffic as a shop would see it before a test: RatioSums of clicks per list."""
    from recommendations.ml.experiment_stats import RatioSums

    drawn = rng.integers(0, world.shoppers, shoppers)
    clicks, lists = np.zeros(shoppers), np.zeros(shoppers)
    for s, who in enumerate(drawn):
        rows = probs[world.contexts_of[who]]
        clicks[s] = (rng.random(rows.shape) < rows).sum()
        lists[s] = rows.shape[0]
    return RatioSums.from_arrays(clicks, lists)


# --- off-policy estimates -------------------------------------------------------------------------


def explored_log(world: World, policy: str, lists: int, share: float, pool: int, seed: int):
    """``lists`` lists of ``policy`` shown with serving's exploration, with simulated clicks."""
    from recommendations.ml.off_policy import Logged
    from recommendations.serving.exploration import explore
    from recommendations.serving.rules import Recommendation

    rng, draw = np.random.default_rng(seed), random.Random(seed)
    length = len(world.bias)
    ranking = world.rankings[policy]
    contexts = rng.integers(0, len(world.last), lists)
    shown, chances, clicks = [], [], []
    for c in contexts:
        i = world.last[c]
        ranked = [Recommendation(j, 1.0, "") for j in ranking.get(i, ranking[""])[: length + pool]]
        items, p = explore(ranked, length, share, draw)
        wanted = world.attraction.get(i, {})
        shown.append([rec.item_id for rec in items])
        chances.append(p)
        clicks.append(
            [int(rng.random() < world.bias[k] * wanted.get(rec.item_id, 0.0)) for k, rec in enumerate(items)]
        )
    return contexts, Logged.from_lists(shown, chances, clicks)


def candidate_matrix(world: World, policy: str, contexts: np.ndarray) -> np.ndarray:
    lists = world.lists(policy)
    return np.array([lists[c] + [""] * (len(world.bias) - len(lists[c])) for c in contexts], dtype=object)
