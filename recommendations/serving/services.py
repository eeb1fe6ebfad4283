"""The one read API: every surface (template tags, REST API, admin) calls these.

Scenarios: ``for_you``, ``similar``, ``bought_together``, ``trending``,
``recently_viewed``. Each returns a ``RecommendationList`` of live catalogue items with a
score and a reason, after the rules of ``rules.finalize``. With no model, or no history
the model knows, "for you" falls back to trending (led by the categories the shopper
browsed, when there is a history), then to popular. A broken model never raises here:
it is logged and the fallbacks serve.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.timesince import timesince

from ..adapters import get_adapter
from ..conf import app_settings
from ..identity import Shopper, as_shopper
from . import catalogue, experiments, popularity
from .exploration import explore, pool_size
from .history import Activity, HistoryEvent, activity, purchased_item_ids, recent_events
from .loader import ServingModel
from .rules import Candidate, Recommendation, category_matches, finalize

logger = logging.getLogger(__name__)

#: The public read API: template tags, the REST API, the admin and a shop's own views call these.
__all__ = [
    "RecommendationList",
    "UnknownItem",
    "bought_together",
    "for_you",
    "recently_viewed",
    "recommend",
    "similar_items",
    "trending",
]

SCENARIOS = ("for_you", "similar", "bought_together", "trending", "recently_viewed")
VERBS = {"view": "viewed", "cart": "added", "purchase": "bought", "click": "chose"}


class UnknownItem(LookupError):
    """The item a list is about does not exist in the catalogue."""


@dataclass
class RecommendationList:
    scenario: str
    items: list[Recommendation] = field(default_factory=list)
    source: str = ""  # model, trending, popular, co-views, baskets, history
    model_version: int | None = None
    experiment_id: int | None = None  # the experiment whose arm made it, if any
    arm: str = ""
    #: The chance each item had of being shown in its place (exploration; 1 without it).
    propensities: list[float] = field(default_factory=list)
    #: This showing's id: its impression and the clicks on it carry it.
    list_id: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    def __iter__(self) -> Iterator[Recommendation]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def chances(self) -> list[float]:
        """The chance each shown item had of its place (1 each where nothing was explored)."""
        if len(self.propensities) == len(self.items):
            return list(self.propensities)
        return [1.0] * len(self.items)


def clean_limit(limit: Any) -> int:
    """``limit`` as an int in 1..MAX_LIMIT (None: DEFAULT_LIMIT); ValueError says why not."""
    if limit is None or limit == "":
        return app_settings.DEFAULT_LIMIT
    try:
        value = int(limit)
    except (TypeError, ValueError):
        raise ValueError(f"limit must be a whole number, not {limit!r}") from None
    if not 1 <= value <= app_settings.MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {app_settings.MAX_LIMIT}")
    return value


def resolve_item(item: Any) -> tuple[str, Any]:
    """(item id, catalogue object) of an instance or an id; UnknownItem when there is none."""
    adapter = get_adapter()
    item_id = adapter.item_id(item)
    if not isinstance(item, (str, int)):
        return item_id, item
    found = catalogue.all_items.get([item_id])
    if item_id not in found:
        raise UnknownItem(f"No item with id {item_id!r}.")
    return item_id, found[item_id]


def _taken(
    shopper: Shopper, purchased: set[str] | None = None, events: list[HistoryEvent] | None = None
) -> set[str]:
    """Items not worth recommending to this shopper: in the cart, or bought.

    Without a request (the admin previewing a shopper) the cart is what the shopper's
    events put in it during their latest visit, so the preview matches their page.
    """
    if shopper.request is not None:
        taken = set(get_adapter().cart_item_ids(shopper.request))
    else:
        visit = _current_visit(shopper, events or [])
        taken = {
            e.item_id for e in events or [] if e.event_type == "cart" and visit and e.session_key == visit
        }
    if shopper.is_known:
        taken |= purchased if purchased is not None else purchased_item_ids(shopper)
    return taken


def _current_visit(shopper: Shopper, events: list[HistoryEvent]) -> str:
    """The visit whose items are not recommended back: the browser's or device's; for a
    shopper looked at without a request (the admin), the visit of their latest event."""
    if shopper.visitor or shopper.request is not None:
        return shopper.visitor
    return events[-1].session_key if events else ""


def _ranking_candidates(ranking: popularity.Ranking, reason: str, category: str | None = None):
    for item_id, score, item_category in ranking.items:
        if category and item_category and not category_matches(item_category, category):
            continue
        yield Candidate(item_id, score, reason)


#: Item names for reasons (kept per process: ``catalogue``).
item_names = catalogue.item_names


#: "You … this earlier": an item recommended because of the shopper's own earlier events on it.
AGAIN = {"view": "viewed", "cart": "put this in your cart", "click": "chose", "purchase": "bought"}


def _name_reasons(results: list[Recommendation], causes: dict[str, HistoryEvent]) -> None:
    """Turn "the history event behind it" into "Because you viewed “X”"; an item whose
    cause is itself is never "because of itself" but "You viewed this earlier"."""
    if not causes:
        return
    names = item_names.get({event.item_id for event in causes.values() if event.item_id})
    for result in results:
        event = causes.get(result.item_id)
        if event is None or result.sponsored or result.reason:
            continue
        if event.item_id == result.item_id:
            verb = AGAIN.get(event.event_type, "viewed")
            result.reason = f"You {verb} earlier" if " this" in verb else f"You {verb} this earlier"
            continue
        source = names.get(event.item_id)
        what = f"“{source}”" if source is not None else "an item"
        result.reason = f"Because you {VERBS.get(event.event_type, 'viewed')} {what}"


def _fallback_candidates(category: str | None, events: list[HistoryEvent]) -> list[Candidate]:
    """Trending (led by the categories of the shopper's history, if any), then popular.

    Scores fall with the rank (trending's before popular's), so the two read as one list and
    can follow a model's candidates (see ``_below``)."""
    trending = popularity.trending()
    affinity: dict[str, float] = {}
    if events:
        # The category each event was recorded with; the catalogue's for events without one.
        unnamed = {e.item_id for e in events[-20:] if not e.category}
        adapter = get_adapter()
        items = catalogue.all_items.get(unnamed) if unnamed else {}  # on sale or not: its category
        for rank, event in enumerate(reversed(events[-20:])):
            key = event.category or (
                adapter.category_id(items[event.item_id]) if event.item_id in items else ""
            )
            if key:
                affinity[key] = affinity.get(key, 0.0) + 0.8**rank
    candidates = list(_ranking_candidates(trending, "Trending now", category))
    if affinity and candidates:
        # Items of the categories the shopper looks at first, each category by its weight.
        top = max(affinity.values())
        weights = {key: 1.0 + 9.0 * value / top for key, value in affinity.items()}
        hints = {item: c for item, _, c in trending.items}
        for candidate in candidates:
            weight = weights.get(hints.get(candidate.item_id, ""), 1.0)
            if weight > 1.0:
                candidate.score *= weight
                candidate.reason = "Popular in a category you browsed"
        candidates.sort(key=lambda c: -c.score)
    candidates += _ranking_candidates(popularity.popular(), "Popular in the shop", category)
    return list(_below(1.0, candidates))


def _below(ceiling: float, candidates: Iterable[Candidate]) -> Iterator[Candidate]:
    """The candidates in their order, with scores falling from just under ``ceiling``."""
    for rank, candidate in enumerate(candidates, start=1):
        yield replace(candidate, score=ceiling * 0.999**rank)


def _fallback(
    scenario: str, limit: int, exclude: set[str], category: str | None, events: list[HistoryEvent]
) -> RecommendationList:
    """Trending (led by the categories of the shopper's history, if any), then popular."""
    candidates = _fallback_candidates(category, events)
    # Every candidate may be read: the per-category cap can pass over many of trending's.
    results = finalize(
        scenario, candidates, limit=limit, exclude=exclude, category=category, window=max(len(candidates), 1)
    )
    # Which rankings the list drew on: "Popular in the shop" marks popular's items.
    from_popular = {r.reason == "Popular in the shop" for r in results}
    source = "+".join(
        name
        for name, used in (("trending", False in from_popular), ("popular", True in from_popular))
        if used
    )
    source = source or "trending"
    return RecommendationList(scenario, results, source)


def _sponsor(model: ServingModel, scores: Any) -> Candidate | None:
    """The best promoted item whose probability for this shopper clears the threshold."""
    sponsored = app_settings.SPONSORED
    items = [str(item) for item in sponsored.get("ITEMS", [])]
    if not items:
        return None
    threshold = float(sponsored.get("MIN_PROBABILITY", 5.0)) / max(model.n_items, 1)
    best = None
    for item_id in items:
        index = model.index_of.get(item_id)
        if not index:
            continue
        probability = scores.probability(index)
        if probability >= threshold and (best is None or probability > best.score):
            best = Candidate(item_id, probability, "Sponsored", sponsored=True)
    return best


def for_you(
    who: HttpRequest | Shopper | None,
    limit: Any = None,
    category: str | None = None,
    *,
    model: ServingModel | None = None,
) -> RecommendationList:
    """The "recommended for you" list: the model's next-item scores from the latest events.

    ``model`` scores with a given version instead of the active one (the admin's samples).
    """
    limit = clean_limit(limit)
    shopper = as_shopper(who)
    served = experiments.serving("for_you", shopper) if model is None else experiments.Served(model)
    return _explored(_for_you(shopper, limit, category, served.model), limit, served)


def _for_you(
    shopper: Shopper, limit: int, category: str | None, model: ServingModel | None
) -> RecommendationList:
    """``for_you``'s list with the pool exploration draws from past ``limit``."""
    show = limit
    limit = limit + pool_size("for_you")
    known = activity(shopper) if shopper.is_known else Activity([], set())
    events = known.recent
    current = _current_visit(shopper, events)
    exclude = _taken(shopper, known.purchased, events) | _looking_at(events, current)
    if model is not None and events:
        try:
            from .scoring import score_shopper  # numpy: only once a model is active

            scores = score_shopper(model, events, current, exclude)
        except Exception:
            logger.exception("Scoring with model version %s failed; using fallbacks.", model.version_id)
            scores = None
        if scores is not None:
            window = max(4 * show, 40) * (8 if category else 1)
            # An item the model gives a tiny share of the uniform chance is its noise, not a
            # pick: the fallbacks (trending in the shopper's categories) fill those places.
            least = MIN_UNIFORM_SHARE / max(model.n_items, 1)
            ranked = [Candidate(model.item_ids[i], p) for i, p in scores.top(window)]
            candidates = [c for c in ranked if c.score >= least]
            # Past the model's window (its items out of stock, hidden, capped) or its noise:
            # the fallbacks fill the list to its limit, under the same rules; the model's
            # noise only when even they run dry (a shop with almost no traffic).
            floor = candidates[-1].score if candidates else 1.0

            def then_fallbacks() -> Iterator[Candidate]:  # read only if the model's run dry
                yield from candidates
                yield from _below(floor, _fallback_candidates(category, events))
                yield from (c for c in ranked if c.score < least)

            results = finalize(
                "for_you",
                then_fallbacks(),
                limit=limit,
                exclude=exclude,
                category=category,
                sponsored=_sponsor(model, scores),
                window=window + 2 * popularity.TOP,
            )
            _name_reasons(results, scores.explain([r.item_id for r in results if not r.reason]))
            for result in results:
                result.reason = result.reason or "Picked for you"
            if results:
                filled = any(r.reason.startswith(("Trending", "Popular")) for r in results)
                return RecommendationList(
                    "for_you", results, "model+fallbacks" if filled else "model", model.version_id
                )
    return _fallback("for_you", limit, exclude, category, events)


def _explored(result: RecommendationList, limit: int, served: experiments.Served) -> RecommendationList:
    """The list cut to ``limit`` with exploration's draws from past it, and its arm."""
    share = float(app_settings.EXPLORATION.get("SHARE") or 0.0) if pool_size(result.scenario) else 0.0
    result.items, result.propensities = explore(result.items, limit, share)
    result.experiment_id, result.arm = served.experiment_id, served.arm
    return result


#: A "for you" item needs at least this share of the uniform probability (1 / catalogue size)
#: to come before the fallbacks: below it the model is saying "no chance" (1e-29 for another
#: category's items in a shop whose visits keep to one, against 2e-7 for a new product of the
#: shopper's category), and a trending item is the better pick.
MIN_UNIFORM_SHARE = 1e-6

#: Events this recent are what the shopper is looking at now, whichever device sent them.
VISIT_SECONDS = 30 * 60


def _looking_at(events: list[HistoryEvent], visitor: str) -> set[str]:
    """Items of the shopper's current visit: never recommended back to them "for you".

    The visit is this browser's or device's events, and any event of the last
    ``VISIT_SECONDS`` (a signed-in app caller has no visitor id), and always the latest one.
    """
    if not events:
        return set()
    since = time.time() - VISIT_SECONDS
    looking = {e.item_id for e in events if (visitor and e.session_key == visitor) or e.timestamp >= since}
    return looking | {events[-1].item_id}


def _about_item(item: Any, who: HttpRequest | Shopper | None, limit: Any) -> tuple[int, str, Any, set[str]]:
    """(limit, item id, item, what not to show) of a list about one item; errors say why."""
    limit = clean_limit(limit)
    item_id, obj = resolve_item(item)
    return limit, item_id, obj, _taken(as_shopper(who)) | {item_id}


#: How a similar list words each kind of evidence (``ml.related.Evidence``), strongest first.
SIMILAR_REASONS = {
    1: "Shoppers who viewed {name} also viewed this",
    2: "Same category as {name}",
    3: "In the same department as {name}",
}
#: How many of the model's best candidates a similar list reads.
SIMILAR_WINDOW = 200


def similar_items(
    item: Any, who: HttpRequest | Shopper | None = None, limit: Any = None
) -> RecommendationList:
    """Items like ``item``, each with its evidence; a shorter list rather than an unrelated one.

    With a model: what shoppers who view the item view next (``scoring.score_item``), kept
    to candidates with evidence (``ml.related.evidence``: co-viewed by shoppers, the same
    category, or its top level), ordered by the model. Without: its co-views, by distinct
    sessions. Then what is trending in the item's category, and nothing else.
    """
    limit, item_id, obj, exclude = _about_item(item, who, limit)
    served = experiments.serving("similar", as_shopper(who))
    show, limit = limit, limit + pool_size("similar")
    name = f"“{obj}”"
    co_views = popularity.co_viewed(item_id)
    model = served.model
    index = model.index_of.get(item_id) if model is not None else None
    candidates: list[Candidate] | None = None
    if index:
        try:
            candidates = _similar_by_model(model, index, co_views, name, limit)
        except Exception:
            logger.exception("Similar items with model version %s failed; using co-views.", model.version_id)
    source = "model" if candidates is not None else "co-views"
    if candidates is None:
        index = None
        candidates = [
            Candidate(other, share, SIMILAR_REASONS[1].format(name=name))
            for other, share in sorted(co_views.items(), key=lambda pair: (-pair[1], pair[0]))
        ]
    results = finalize("similar", candidates, limit=limit, exclude=exclude)
    if len(results) < limit:
        # Not enough evidence: what is trending in the item's own category.
        category = get_adapter().category_id(obj)
        if category:
            more = finalize(
                "similar",
                _ranking_candidates(popularity.trending(), f"Popular in the category of {name}", category),
                limit=limit - len(results),
                exclude=exclude | {r.item_id for r in results},
                category=category,
            )
            if more:
                results += more
                source += "+trending"
    return _explored(
        RecommendationList("similar", results, source, model.version_id if index else None), show, served
    )


def _similar_by_model(
    model: ServingModel, index: int, co_views: dict[str, float], name: str, limit: int
) -> list[Candidate]:
    """The model's candidates with evidence, then co-views it does not know, new products
    of the item's category joining from the middle of the list."""
    import numpy as np  # the ml extra: only once a model is active

    from ..ml.related import Evidence, co_view_neighbours, evidence
    from .scoring import score_item

    scores = score_item(model, index)
    best = scores.top(SIMILAR_WINDOW) if scores is not None else []
    known = [model.index_of[other] for other in co_views if other in model.index_of]
    co_viewed = np.union1d(co_view_neighbours(model.tower, index), np.asarray(known, np.int64))
    category = np.asarray(model.item_features.category, np.int64)
    found = evidence(
        index, np.asarray([i for i, _ in best], np.int64), category, model.item_top_category, co_viewed
    )
    # New products have no co-views and no trained vector yet: the nearest in price of the
    # item's own category join from the middle of the list, so they get seen.
    new = _new_alike(model, index, int(app_settings.SIMILAR_NEW_ITEMS))
    candidates = [
        Candidate(model.item_ids[i], p, SIMILAR_REASONS[int(kind)].format(name=name))
        for (i, p), kind in zip(best, found, strict=True)
        if kind != Evidence.NONE and i not in new
    ]
    floor = candidates[-1].score if candidates else 1.0
    unknown = sorted(
        (other for other in co_views if other not in model.index_of),
        key=lambda other: (-co_views[other], other),
    )
    candidates += _below(
        floor, (Candidate(other, 0.0, SIMILAR_REASONS[1].format(name=name)) for other in unknown)
    )
    middle = max(limit // 2, 1)
    candidates[middle:middle] = [
        Candidate(model.item_ids[i], 0.0, f"New in the shop, like {name}") for i in new
    ]
    return candidates


def _new_alike(model: ServingModel, index: int, count: int) -> list[int]:
    """Up to ``count`` items of the item's category without training events, nearest in price bucket."""
    import numpy as np

    features, trained = model.item_features, model.tower.item_trained
    category = features.category
    if count <= 0 or not 0 < index < len(category) or category[index] == 0:
        return []
    new = np.flatnonzero((category == category[index]) & ~trained[: len(category)])
    new = new[new > 0]
    bucket = features.price_bucket.astype(np.int64)
    distance = np.where((bucket[new] > 0) & (bucket[index] > 0), np.abs(bucket[new] - bucket[index]), 1_000)
    return [int(i) for i in new[np.lexsort((new, distance))][:count]]


#: How a bought-together list words each kind of evidence (``popularity.basket_evidence``).
TOGETHER_REASONS = {
    popularity.CO_PURCHASE: "Often bought with {name}",
    popularity.CO_CART: "Often put in the cart with {name}",
    popularity.VIEW_THEN_BUY: "Shoppers who viewed {name} bought this",
}


def bought_together(
    item: Any, who: HttpRequest | Shopper | None = None, limit: Any = None
) -> RecommendationList:
    """What goes with ``item``: items bought with it, then best sellers of the categories
    bought with its category. Every item needs ``BOUGHT_TOGETHER_MIN_SHOPPERS`` distinct
    shoppers of evidence; a list is shorter rather than filled with unrelated items.

    Items: co-purchases, co-carts and view-then-buys within a visit
    (``popularity.basket_evidence``), ranked by ``together.association_scores`` (popularity
    tempered by how much more often they go with this item), the reason naming the
    strongest kind. Categories: the complements of the item's category learned from
    baskets (``popularity.baskets``), each category's best sellers in turn.
    """
    from .together import association_scores

    limit, item_id, obj, exclude = _about_item(item, who, limit)
    name = f"“{obj}”"
    least = int(app_settings.BOUGHT_TOGETHER_MIN_SHOPPERS)
    found = popularity.basket_evidence(item_id)
    shop = popularity.baskets()
    pairs = {other: n for other, n in found.pairs.items() if found.shoppers.get(other, 0) >= least}
    scores = association_scores([(found.n, pairs)], shop.popularity, shop.total)
    candidates = [
        Candidate(other, score, TOGETHER_REASONS[found.kinds[other]].format(name=name))
        for other, score in sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
    ]
    results = finalize("bought_together", candidates, limit=limit, exclude=exclude)
    source = "baskets"
    category = get_adapter().category_id(obj)
    complements = shop.complements.get(category, {}) if category else {}
    ranked = sorted(
        (other for other, n in complements.items() if n >= least),
        key=lambda other: (-complements[other], other),
    )
    if len(results) < limit and ranked:
        reason = f"Often bought with items like {name}"
        # Best sellers (by as many shoppers) of each complement in turn: the first of each,
        # then the second, ...
        columns = [
            [best for best in shop.best_sellers.get(other, ()) if shop.popularity.get(best, 0) >= least]
            for other in ranked
        ]
        interleaved = [column[row] for row in range(20) for column in columns if row < len(column)]
        more = finalize(
            "bought_together",
            _below(1.0, (Candidate(other, 0.0, reason) for other in interleaved)),
            limit=limit - len(results),
            exclude=exclude | {r.item_id for r in results},
        )
        if more:
            results += more
            source = "baskets+categories" if len(results) > len(more) else "categories"
    return RecommendationList("bought_together", results, source)


def trending(
    who: HttpRequest | Shopper | None = None, limit: Any = None, category: str | None = None
) -> RecommendationList:
    limit = clean_limit(limit)
    shopper = as_shopper(who)
    exclude = _taken(shopper)
    results = finalize(
        "trending",
        _ranking_candidates(popularity.trending(), "Trending now", category),
        limit=limit,
        exclude=exclude,
        category=category,
    )
    return RecommendationList("trending", results, "trending")


def recently_viewed(
    who: HttpRequest | Shopper | None, limit: Any = None, exclude_item: Any = None
) -> RecommendationList:
    """The shopper's own recently viewed items, most recent first (no rules, no diversity cap)."""
    limit = clean_limit(limit)
    shopper = as_shopper(who)
    if not shopper.is_known:
        return RecommendationList("recently_viewed", [], "history")
    skip = {get_adapter().item_id(exclude_item)} if exclude_item is not None else set()
    latest: dict[str, HistoryEvent] = {}
    for event in reversed(recent_events(shopper)):
        if event.event_type == "view" and event.item_id not in skip:
            latest.setdefault(event.item_id, event)
    adapter = get_adapter()
    wanted = list(latest)[: limit * 2]
    items = catalogue.live_items.get(wanted)
    hidden = {str(item) for item in app_settings.HIDE_ITEMS}
    results = []
    for item_id in wanted:
        if item_id in items and item_id not in hidden:
            moment = dt.datetime.fromtimestamp(latest[item_id].timestamp, tz=dt.UTC)
            ago = timezone.now() - moment
            when = "a moment" if ago.total_seconds() < 60 else timesince(moment, timezone.now()).split(",")[0]
            results.append(
                Recommendation(
                    item_id=item_id,
                    score=1.0 / (len(results) + 1),  # the latest first; the moment has its own field
                    reason=f"You viewed this {when} ago",
                    item=items[item_id],
                    display=adapter.display(items[item_id]),
                    viewed_at=moment,
                )
            )
    return RecommendationList("recently_viewed", results[:limit], "history")


def recommend(
    scenario: str,
    who: HttpRequest | Shopper | None = None,
    *,
    item: Any = None,
    limit: Any = None,
    category: str | None = None,
) -> RecommendationList:
    """Dispatch by scenario name (template tags and the API use this)."""
    if scenario == "for_you":
        return for_you(who, limit, category)
    if scenario == "trending":
        return trending(who, limit, category)
    if scenario == "recently_viewed":
        return recently_viewed(who, limit, item)
    if scenario in ("similar", "bought_together"):
        if item is None:
            raise ValueError(f"the {scenario!r} list needs an item")
        return (similar_items if scenario == "similar" else bought_together)(item, who, limit)
    raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
