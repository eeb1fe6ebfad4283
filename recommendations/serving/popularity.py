"""Statistics read from the event store: trending, popular, co-viewed, bought together.

These serve when there is no model (or no history), and blend with the model for similar
items. Each is one or two indexed queries, cached in Django's cache for
``POPULARITY_CACHE_SECONDS``, and plain Python (no numpy): the fallbacks work even
without the ``ml`` extra. They rank items for every shopper, so they count **distinct
shoppers**, never raw events: in trending a shopper gives an item at most one vote a day
(the strongest of their events: a purchase counts more than a view), in popular one vote
per kind of event, and co-views and baskets count the sessions that had both items. One
visitor or device repeating an event a thousand times weighs what one shopper weighs.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.cache import cache
from django.db.models import CharField, Count, Max, Value
from django.db.models.functions import Cast, Coalesce, Concat, NullIf

from ..adapters import get_adapter
from ..conf import app_settings
from ..models import Event, EventType

#: How much each event says about wanting an item.
TYPE_WEIGHTS = {EventType.VIEW: 1.0, EventType.CLICK: 1.0, EventType.CART: 3.0, EventType.PURCHASE: 5.0}
CACHE_PREFIX = "recommendations:stats:"
MAX_ROWS = 200_000
#: Sessions read to find what else was viewed or bought with an item.
MAX_SESSIONS = 500
TOP = 500


@dataclass(frozen=True)
class Ranking:
    """Items best first, with a score and the category id the events gave them."""

    items: tuple[tuple[str, float, str], ...] = ()  # (item id, score, category id)


def _cached(key: str, compute):
    key = CACHE_PREFIX + key
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, app_settings.POPULARITY_CACHE_SECONDS)
    return value


def _rank(scores: dict[str, float], categories: dict[str, str]) -> Ranking:
    best = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))[:TOP]
    return Ranking(tuple((item, round(score, 6), categories.get(item, "")) for item, score in best))


def trending() -> Ranking:
    """Time-decayed popularity over the last ``TRENDING_DAYS`` of activity.

    The window ends at the newest event rather than at the clock, so a shop with a quiet
    week (or a demo on an old log) still has a trend to show.
    """
    return _cached("trending", _trending_now)


def popular() -> Ranking:
    """All-time weighted event counts (the last fallback)."""
    return _cached("popular", _popular_now)


def refresh_rankings() -> None:
    """Recompute the shop-wide rankings into the cache (the beat task ``refresh_rankings``).

    They read up to ``MAX_ROWS`` events or the whole table, too much for the request that
    happens to find the cache expired: run every ``POPULARITY_CACHE_SECONDS`` or so, this
    keeps them cached for twice that, so requests only compute them on a cold start.
    """
    for key, compute in (("trending", _trending_now), ("popular", _popular_now)):
        cache.set(CACHE_PREFIX + key, compute(), 2 * app_settings.POPULARITY_CACHE_SECONDS)


def shopper_expression():
    """Who did an event, as one text value: the user, else the imported log's user, else the
    visitor or device. An event with none of them (server code calling ``track(None, ...)``
    without a user; every web or API event has a shopper) counts as its own shopper."""
    return Coalesce(
        Cast("user_id", output_field=CharField()),
        NullIf("external_user_id", Value("")),
        NullIf("session_key", Value("")),
        Concat(Value("#"), Cast("id", output_field=CharField())),
    )


def _shopper(event_id: int, user_id: int | None, external: str, session: str) -> str:
    """``shopper_expression`` in Python, for rows already read."""
    return str(user_id) if user_id is not None else external or session or f"#{event_id}"


def _trending_now() -> Ranking:
    events = Event.objects.trusted().filter(event_type__in=TYPE_WEIGHTS).exclude(item_id="")
    newest = events.aggregate(newest=Max("timestamp"))["newest"]
    if newest is None:
        return Ranking()
    since = newest - timedelta(days=app_settings.TRENDING_DAYS)
    half_life = app_settings.TRENDING_HALF_LIFE_HOURS * 3600.0
    rows = (
        events.filter(timestamp__gte=since)
        .order_by("-timestamp")
        .values_list(
            "item_id",
            "event_type",
            "timestamp",
            "category_id",
            "id",
            "user_id",
            "external_user_id",
            "session_key",
        )[:MAX_ROWS]
    )
    votes: dict[tuple[str, str, int], float] = {}  # (shopper, item, day) -> their strongest event
    categories: dict[str, str] = {}
    for item, event_type, timestamp, category, event_id, user_id, external, session in rows:
        shopper = _shopper(event_id, user_id, external, session)
        age = (newest - timestamp).total_seconds()
        vote = TYPE_WEIGHTS[event_type] * math.pow(0.5, age / half_life)
        key = (shopper, item, int(age // 86_400))
        votes[key] = max(votes.get(key, 0.0), vote)
        if category:
            categories.setdefault(item, category)
    scores: dict[str, float] = defaultdict(float)
    for (_, item, _), vote in votes.items():
        scores[item] += vote
    return _rank(scores, categories)


def _popular_now() -> Ranking:
    rows = (
        Event.objects.trusted()
        .filter(event_type__in=TYPE_WEIGHTS)
        .exclude(item_id="")
        .values("item_id", "event_type", "category_id")
        .annotate(n=Count(shopper_expression(), distinct=True))
        .order_by()
    )
    scores: dict[str, float] = defaultdict(float)
    categories: dict[str, str] = {}
    for row in rows.iterator(chunk_size=5000):
        scores[row["item_id"]] += TYPE_WEIGHTS[row["event_type"]] * row["n"]
        if row["category_id"]:
            categories.setdefault(row["item_id"], row["category_id"])
    return _rank(scores, categories)


def _sessions_with(item_id: str, types) -> list[str]:
    """The ``MAX_SESSIONS`` sessions that had ``item_id`` last: each session once, however
    many events it has (ordering by the events' time made the window count events)."""
    return list(
        Event.objects.trusted()
        .filter(item_id=item_id, event_type__in=types)
        .exclude(session_key="")
        .values("session_key")
        .annotate(last=Max("timestamp"))
        .order_by("-last", "session_key")
        .values_list("session_key", flat=True)[:MAX_SESSIONS]
    )


def _co_counts(item_id: str, types) -> tuple[Counter, int]:
    """(other item -> sessions that had both, sessions that had ``item_id``)."""
    sessions = _sessions_with(item_id, types)
    if not sessions:
        return Counter(), 0
    rows = (
        Event.objects.trusted()
        .filter(session_key__in=sessions, event_type__in=types)
        .exclude(item_id__in=["", item_id])
        .values("item_id")
        .annotate(n=Count("session_key", distinct=True))
        .order_by("-n", "item_id")[:TOP]
    )
    return Counter({row["item_id"]: row["n"] for row in rows}), len(sessions)


def co_viewed(item_id: str) -> dict[str, float]:
    """Item -> share of the sessions that viewed ``item_id`` and this item too (0..1)."""

    def compute() -> dict[str, float]:
        counts, n = _co_counts(item_id, [EventType.VIEW, EventType.CLICK, EventType.CART])
        return {item: count / n for item, count in counts.items()} if n else {}

    return _cached(f"coview:{item_id}", compute)


BASKET_TYPES = (EventType.CART, EventType.PURCHASE)
#: Kinds of bought-together evidence, strongest first: the reason names the strongest.
CO_PURCHASE, CO_CART, VIEW_THEN_BUY = "purchase", "cart", "view_then_buy"
#: What one shopper's evidence of each kind counts towards a pair's co-count.
EVIDENCE_WEIGHTS = {CO_PURCHASE: 1.0, CO_CART: 0.5, VIEW_THEN_BUY: 0.5}
_STRENGTH = {EventType.VIEW: 1, EventType.CART: 2, EventType.PURCHASE: 3}


@dataclass(frozen=True)
class BasketEvidence:
    """What the visits with an item say of the items bought with it, by distinct shoppers.

    ``n``: visits that had the item (viewed, carted or bought); ``pairs``: other item ->
    its co-count (each visit once, weighted by its strongest kind); ``shoppers``: other item
    -> distinct visits with any evidence; ``kinds``: other item -> the strongest kind seen.
    """

    n: int = 0
    pairs: dict[str, float] = field(default_factory=dict)
    shoppers: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)


def _pair_kind(anchor: int, other: int) -> str | None:
    """The evidence one visit gives, from the strongest event of each item in it."""
    if other < _STRENGTH[EventType.CART]:
        return None  # the other item was only viewed: an alternative, not a purchase
    if anchor >= _STRENGTH[EventType.CART]:
        both_bought = anchor == other == _STRENGTH[EventType.PURCHASE]
        return CO_PURCHASE if both_bought else CO_CART
    return VIEW_THEN_BUY if other == _STRENGTH[EventType.PURCHASE] else None


def basket_evidence(item_id: str) -> BasketEvidence:
    """Items bought or carted in the visits that had ``item_id`` (the last ``MAX_SESSIONS``).

    A visit where both were bought is a co-purchase, where either was only carted a co-cart,
    and where ``item_id`` was viewed and the other bought, a view-then-buy. A visit counts
    once per pair, whatever it repeats.
    """

    def compute() -> BasketEvidence:
        sessions = _sessions_with(item_id, [EventType.VIEW, *BASKET_TYPES])
        if not sessions:
            return BasketEvidence()
        rows = (
            Event.objects.trusted()
            .filter(session_key__in=sessions, event_type__in=[EventType.VIEW, *BASKET_TYPES])
            .exclude(item_id="")
            .values_list("session_key", "item_id", "event_type")
            .distinct()
        )
        strongest: dict[str, dict[str, int]] = defaultdict(dict)
        for session, item, event_type in rows.iterator(chunk_size=5000):
            items = strongest[session]
            items[item] = max(items.get(item, 0), _STRENGTH[event_type])
        pairs: dict[str, float] = defaultdict(float)
        shoppers: Counter = Counter()
        kinds: dict[str, str] = {}
        order = list(EVIDENCE_WEIGHTS)
        for items in strongest.values():
            anchor = items.get(item_id, 0)
            for other, strength in items.items():
                kind = _pair_kind(anchor, strength) if other != item_id else None
                if kind is None:
                    continue
                pairs[other] += EVIDENCE_WEIGHTS[kind]
                shoppers[other] += 1
                if other not in kinds or order.index(kind) < order.index(kinds[other]):
                    kinds[other] = kind
        return BasketEvidence(len(sessions), dict(pairs), dict(shoppers), kinds)

    return _cached(f"basket:{item_id}", compute)


@dataclass(frozen=True)
class Baskets:
    """Shop-wide basket statistics: how many visits bought or carted each item, and which
    categories go together (by distinct visits)."""

    total: int = 0
    popularity: dict[str, int] = field(default_factory=dict)  # item -> visits with it in a basket
    best_sellers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # category -> items
    complements: dict[str, dict[str, int]] = field(default_factory=dict)  # category -> {other: visits}


def baskets() -> Baskets:
    """``Baskets`` of the newest ``MAX_ROWS`` basket and viewing events of visits with a basket."""
    return _cached("baskets", _baskets_now)


def _baskets_now() -> Baskets:
    basket_sessions = (
        Event.objects.trusted()
        .filter(event_type__in=BASKET_TYPES)
        .exclude(session_key="")
        .values("session_key")
    )
    rows = (
        Event.objects.trusted()
        .filter(session_key__in=basket_sessions, event_type__in=[EventType.VIEW, *BASKET_TYPES])
        .exclude(item_id="")
        .order_by("-timestamp")
        .values_list("session_key", "item_id", "category_id", "event_type")[:MAX_ROWS]
    )
    strongest: dict[str, dict[str, int]] = defaultdict(dict)
    category_of: dict[str, str] = {}
    for session, item, category, event_type in rows:
        items = strongest[session]
        items[item] = max(items.get(item, 0), _STRENGTH[event_type])
        if category:
            category_of.setdefault(item, category)
    missing = {item for items in strongest.values() for item in items} - set(category_of)
    if missing:  # events from pages may name the item only: the catalogue knows its category
        adapter = get_adapter()
        for item_id, item in adapter.items_by_id(missing, available_only=False).items():
            category_of[item_id] = adapter.category_id(item)
    category_of = {item: category for item, category in category_of.items() if category}
    popularity: Counter = Counter()
    pairs: dict[str, Counter] = defaultdict(Counter)
    for items in strongest.values():
        bought = {item for item, strength in items.items() if strength >= _STRENGTH[EventType.CART]}
        popularity.update(bought)
        # Categories of the visit: as the anchor, any it viewed or bought; as the complement,
        # only those it bought (each pair of categories once per visit).
        anchors = {category_of[item] for item in items if item in category_of}
        complements = {category_of[item] for item in bought if item in category_of}
        for anchor in anchors:
            for other in complements - {anchor}:
                pairs[anchor][other] += 1
    best: dict[str, list[str]] = defaultdict(list)
    for item, _ in sorted(popularity.items(), key=lambda pair: (-pair[1], pair[0])):
        if item in category_of and len(best[category_of[item]]) < 20:
            best[category_of[item]].append(item)
    return Baskets(
        total=len(strongest),
        popularity=dict(popularity),
        best_sellers={category: tuple(items) for category, items in best.items()},
        complements={category: dict(others) for category, others in pairs.items()},
    )


def clear() -> None:
    """Forget cached statistics (tests; after a bulk import)."""
    cache.delete_many([CACHE_PREFIX + key for key in ("trending", "popular", "baskets")])


def clear_item(item_id: str) -> None:
    """Forget one item's cached co-views and basket evidence (tests; after an erasure)."""
    cache.delete_many([CACHE_PREFIX + f"{kind}:{item_id}" for kind in ("coview", "basket")])
