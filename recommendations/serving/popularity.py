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
from dataclasses import dataclass
from datetime import timedelta

from django.core.cache import cache
from django.db.models import CharField, Count, Max, Value
from django.db.models.functions import Cast, Coalesce, Concat, NullIf

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


def bought_together(item_id: str) -> dict[str, float]:
    """Item -> lift of being bought (or carted) in the same session as ``item_id``.

    lift = P(both) / (P(this) P(that)) over baskets (sessions with a cart or purchase
    event); pairs seen in a single basket only are left out as noise.
    """

    def compute() -> dict[str, float]:
        counts, n_with = _co_counts(item_id, BASKET_TYPES)
        counts = Counter({item: n for item, n in counts.items() if n >= 2})
        if not counts:
            return {}
        baskets = Event.objects.trusted().filter(event_type__in=BASKET_TYPES).exclude(session_key="")
        total = baskets.values("session_key").distinct().count()
        support = dict(
            baskets.filter(item_id__in=list(counts))
            .values("item_id")
            .annotate(n=Count("session_key", distinct=True))
            .values_list("item_id", "n")
        )
        return {
            item: (n * total) / (n_with * support[item]) for item, n in counts.items() if support.get(item)
        }

    return _cached(f"basket:{item_id}", compute)


def clear() -> None:
    """Forget cached statistics (tests; after a bulk import)."""
    cache.delete_many([CACHE_PREFIX + "trending", CACHE_PREFIX + "popular"])
