"""From search events to ``SearchQuery`` rows: counts with time decay, success, categories.

For each search, what the same visit did next (until the next search, at most
``OUTCOME_MINUTES`` later) is its outcome: any product viewed, clicked, carted or bought
makes it a success, and those products' categories tell what the query is about.
Consecutive different searches of a visit are "related searches". Product and category
names from the catalogue are added with a small score, so a shop without a search log
still gets suggestions. One pass over the searching visits' events, in plain Python.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import islice

from django.db import transaction
from django.db.models import Max

from ..adapters import get_adapter
from ..conf import app_settings
from ..models import Event, EventType, SearchQuery
from .loader import publish
from .text import normalize

logger = logging.getLogger(__name__)

OUTCOME_MINUTES = 30
OUTCOME_WEIGHTS = {EventType.VIEW: 1.0, EventType.CLICK: 1.0, EventType.CART: 3.0, EventType.PURCHASE: 5.0}
RELATED_KEEP = 5
CATEGORIES_KEEP = 5
#: Score of a catalogue name relative to one recent, successful search.
CATALOGUE_SCORE = 0.05
SESSION_CHUNK = 1000


def _chunks(values: list[str], size: int) -> Iterator[list[str]]:
    iterator = iter(values)
    while chunk := list(islice(iterator, size)):
        yield chunk


class _Query:
    __slots__ = (
        "categories",
        "last",
        "last_zero",
        "searches",
        "shoppers",
        "successes",
        "texts",
        "weight",
        "zero",
    )

    def __init__(self) -> None:
        self.shoppers: set[str] = set()
        self.texts: Counter = Counter()
        self.weight = 0.0
        self.searches = self.successes = self.zero = 0
        self.last: datetime | None = None
        self.last_zero = False
        self.categories: Counter = Counter()


def _visits(since: datetime | None) -> Iterator[tuple[str, list[tuple]]]:
    """(visitor, that visit's events in time order: (time, type, query, results, item, category)).

    A result count is the server's own (pages tracked by the middleware); one an app sent
    through the API is not trusted and reads as unknown."""
    searches = Event.objects.trusted().filter(event_type=EventType.SEARCH).exclude(session_key="")
    if since is not None:
        searches = searches.filter(timestamp__gte=since)
    sessions = list(searches.values_list("session_key", flat=True).distinct())
    types = [EventType.SEARCH, *OUTCOME_WEIGHTS]
    for chunk in _chunks(sessions, SESSION_CHUNK):
        rows = Event.objects.trusted().filter(session_key__in=chunk, event_type__in=types)
        if since is not None:
            rows = rows.filter(timestamp__gte=since)
        visit: list[tuple] = []
        current = None
        for session, timestamp, event_type, query, results, item, category, source in rows.order_by(
            "session_key", "timestamp", "id"
        ).values_list(
            "session_key",
            "timestamp",
            "event_type",
            "query",
            "result_count",
            "item_id",
            "category_id",
            "source",
        ):
            if session != current and visit:
                yield current, visit
                visit = []
            current = session
            trusted = results if source != "api" else None
            visit.append((timestamp, event_type, query, trusted, item, category))
        if visit:
            yield current, visit


def log_statistics(since: datetime | None = None, now: datetime | None = None) -> list[SearchQuery]:
    """One unsaved ``SearchQuery`` per normalized query of the search log."""
    half_life = float(app_settings.SUGGEST["HALF_LIFE_DAYS"]) * 86400.0
    window = timedelta(minutes=OUTCOME_MINUTES)
    queries: dict[str, _Query] = defaultdict(_Query)
    pairs: dict[str, Counter] = defaultdict(Counter)
    for visitor, visit in _visits(since):
        searches = [i for i, row in enumerate(visit) if row[1] == EventType.SEARCH]
        counted: set[str] = set()  # a visit repeating a query counts once
        for n, i in enumerate(searches):
            timestamp, _, text, results, _, _ = visit[i]
            key = normalize(text)
            if not key or key in counted:
                continue
            counted.add(key)
            stat = queries[key]
            stat.shoppers.add(visitor)
            stat.texts[" ".join(text.split())] += 1
            stat.searches += 1
            if now is not None:
                stat.weight += math.pow(0.5, max((now - timestamp).total_seconds(), 0.0) / half_life)
            if results == 0:
                stat.zero += 1
            if stat.last is None or timestamp >= stat.last:
                stat.last, stat.last_zero = timestamp, results == 0
            end = searches[n + 1] if n + 1 < len(searches) else len(visit)
            outcomes = [row for row in visit[i + 1 : end] if row[0] - timestamp <= window]
            if outcomes:
                stat.successes += 1
            for _, event_type, _, _, _, category in outcomes:
                if category:
                    stat.categories[category] += OUTCOME_WEIGHTS[event_type]
            if n + 1 < len(searches):
                following = visit[searches[n + 1]]
                other = normalize(following[2])
                if other and other != key and following[0] - timestamp <= window:
                    pairs[key][other] += 1
    rows = []
    for key, stat in queries.items():
        weight = stat.weight if now is not None else float(stat.searches)
        total = sum(stat.categories.values())
        rows.append(
            SearchQuery(
                key=key[:255],
                text=stat.texts.most_common(1)[0][0][:255],
                source="log",
                # Laplace-smoothed success rate: a query that leads nowhere sinks but stays findable.
                score=weight * 2.0 * (stat.successes + 1) / (stat.searches + 2),
                searches=stat.searches,
                shoppers=len(stat.shoppers),
                successes=stat.successes,
                zero_results=stat.zero,
                found_nothing=stat.last_zero,
                last_searched=stat.last,
                categories={c: round(w / total, 4) for c, w in stat.categories.most_common(CATEGORIES_KEEP)},
                # A related search needs as many distinct visits as a suggestion needs shoppers.
                related=[
                    other
                    for other, visits in pairs[key].most_common()
                    if visits >= int(app_settings.SUGGEST["MIN_SHOPPERS"])
                ][:RELATED_KEEP],
            )
        )
    return rows


def catalogue_statistics(known: set[str] = frozenset()) -> list[SearchQuery]:
    """Product and category names the shop sells, as low-scored suggestions (not those of
    ``known`` keys)."""
    rows: dict[str, SearchQuery] = {}
    for text, category, weight in get_adapter().suggestion_terms():
        key = normalize(text)[:255]
        if not key or key in known:
            continue
        score = CATALOGUE_SCORE * float(weight)
        if key not in rows or rows[key].score < score:
            rows[key] = SearchQuery(
                key=key,
                text=" ".join(str(text).split())[:255],
                source="catalogue",
                score=score,
                categories={category: 1.0} if category else {},
            )
    return list(rows.values())


def rebuild() -> int:
    """Replace the ``SearchQuery`` table from the events and the catalogue; returns its size."""
    newest = Event.objects.aggregate(newest=Max("timestamp"))["newest"]
    days = app_settings.SUGGEST["WINDOW_DAYS"]
    since = newest - timedelta(days=days) if newest is not None and days else None
    logged = log_statistics(since=since, now=newest)
    catalogue = {row.key: row for row in catalogue_statistics()}
    for row in logged:
        # What shoppers typed ("hp notebook") reads as the catalogue writes it ("HP Notebook").
        if row.key in catalogue:
            row.text = catalogue[row.key].text
    known = {row.key for row in logged}
    rows = logged + [row for key, row in catalogue.items() if key not in known]
    with transaction.atomic():
        SearchQuery.objects.all().delete()
        SearchQuery.objects.bulk_create(rows, batch_size=2000)
    publish()
    logger.info(
        "Suggestions rebuilt: %d queries from the log, %d catalogue names.",
        len(logged),
        len(rows) - len(logged),
    )
    return len(rows)
