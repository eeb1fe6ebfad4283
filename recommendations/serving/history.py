"""What a shopper did: their recent item events at request time (who they are: ``identity``).

Events reach the database a moment after the page that produced them (the recorder
writes in batches, or through a Celery worker). So that a product viewed a second ago
already shapes the next page, each tracked item event is also appended to a short list
in Django's cache under the shopper's key ("remember"); history = stored rows + that
list, without duplicates. The list's counter is the shopper's "generation": cached API
responses carry it in their key, so a new event of theirs invalidates them at once. The
list hears of new events through capture's ``events_recorded`` signal, and of erasure
through ``shopper_forgotten``; an erasure run in another process, whose cache this one may
not share, reaches it through an ``ErasureMark`` row (checked before the list is trusted,
and part of the generation).

With a cache every process shares (Redis, Memcached) and ``HISTORY_CACHE_SECONDS`` set, a
returning shopper costs no query: the stored rows and purchases read once are kept there too
("base", refreshed after those seconds, dropped when a login joins a visitor to the user),
the recent list adds what came since, and erasure marks live in the same cache, read in the
same round trip (a base read before an erasure is never used after it).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import Max
from django.dispatch import receiver
from django.utils import timezone

from ..conf import app_settings
from ..identity import Shopper
from ..keys import cache_is_shared
from ..models import ErasureMark, Event, EventType
from ..records import EventRecord
from ..signals import events_recorded, shopper_forgotten, visitor_linked

logger = logging.getLogger(__name__)

#: Item events that make a history (impressions and searches do not name what was wanted).
HISTORY_TYPES = (EventType.VIEW, EventType.CART, EventType.PURCHASE, EventType.CLICK)
OVERLAY_PREFIX = "recommendations:recent:"
#: A shopper's stored rows and purchases, kept while ``history_cached()`` (see the docstring).
BASE_PREFIX = "recommendations:history:"
#: When a shopper was erased (Unix seconds), for processes that trust the shared cache.
ERASED_PREFIX = "recommendations:erased:"
#: A base read this soon after an erasure (by another machine's clock) is read again.
CLOCK_MARGIN_SECONDS = 5.0
OVERLAY_SECONDS = 3600
#: An overlay event counts only this long after it was noted: by then its row is stored.
OVERLAY_TRUST_SECONDS = 120
#: Erasure marks are kept as long as any cache may hold what they cancel.
MARK_SECONDS = OVERLAY_SECONDS
ERASED_ATTR = "_recommendations_erased_at"


@dataclass(frozen=True)
class HistoryEvent:
    timestamp: float  # Unix seconds
    event_type: str
    item_id: str
    session_key: str
    key: str  # client event id: the same event from the cache and the table counts once
    category: str = ""


def _overlay_key(key: str) -> str:
    return OVERLAY_PREFIX + key


def _event_key(client_id: str, timestamp: float, event_type: str, item_id: str) -> str:
    """One key per event, whether read from the table or from the cache: it counts once."""
    return client_id or f"t:{timestamp:.6f}:{event_type}:{item_id}"


def history_cached() -> bool:
    """Whether a returning shopper's history is read from the cache alone (no query)."""
    return bool(app_settings.HISTORY_CACHE_SECONDS) and cache_is_shared()


def remember(records: Iterable[EventRecord]) -> None:
    """Append the item events among ``records`` to their shoppers' recent lists (fails open)."""
    by_key: dict[str, list[list[Any]]] = {}
    for record in records:
        if record.event_type not in HISTORY_TYPES or not record.item_id:
            continue
        if record.user_id is not None:
            key = f"u:{record.user_id}"
        elif record.session_key:
            key = f"s:{record.session_key}"
        else:
            continue
        by_key.setdefault(key, []).append(
            [
                record.timestamp.timestamp(),
                record.event_type,
                record.item_id,
                record.session_key,
                record.client_event_id or "",
                record.category_id,
                time.time(),  # when it was noted (the event's own time may be earlier)
            ]
        )
    if not by_key:
        return
    limit = app_settings.HISTORY_EVENTS
    stored = cache.get_many([_overlay_key(key) for key in by_key])
    updates = {}
    for key, rows in by_key.items():
        entry = stored.get(_overlay_key(key)) or {"generation": 0, "events": []}
        updates[_overlay_key(key)] = {
            "generation": int(entry.get("generation", 0)) + 1,
            "events": (list(entry.get("events", [])) + rows)[-limit:],
        }
    cache.set_many(updates, OVERLAY_SECONDS)


@receiver(events_recorded, dispatch_uid="recommendations.serving.remember")
def on_events_recorded(sender: Any, records: Sequence[EventRecord], **kwargs: Any) -> None:
    remember(records)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def forget(shoppers: Iterable[Shopper]) -> None:
    """Drop these shoppers' recent-event lists from the cache, and leave a mark that every
    other process reads before it trusts its own copy (its cache may not be this one)."""
    keys = [key for shopper in shoppers for key in shopper.keys]
    cache.delete_many([_overlay_key(key) for key in keys] + [BASE_PREFIX + key for key in keys])
    now = timezone.now()
    mark_seconds = max(MARK_SECONDS, int(app_settings.HISTORY_CACHE_SECONDS or 0))
    cache.set_many({ERASED_PREFIX + _digest(key): now.timestamp() for key in keys}, mark_seconds)
    ErasureMark.objects.filter(erased_at__lt=now - timedelta(seconds=MARK_SECONDS)).delete()
    for key in keys:
        ErasureMark.objects.update_or_create(digest=_digest(key), defaults={"erased_at": now})


@receiver(shopper_forgotten, dispatch_uid="recommendations.serving.forget")
def on_shopper_forgotten(sender: Any, shoppers: Sequence[Shopper], **kwargs: Any) -> None:
    forget(shoppers)


@receiver(visitor_linked, dispatch_uid="recommendations.serving.visitor_linked")
def on_visitor_linked(sender: Any, session_key: str, user_id: Any, **kwargs: Any) -> None:
    """The visitor's stored events are the user's now: the user's kept base is stale."""
    cache.delete(BASE_PREFIX + f"u:{user_id}")


def _overlay(shopper: Shopper) -> dict[str, dict]:
    if not shopper.is_known:
        return {}
    return cache.get_many([_overlay_key(key) for key in shopper.keys])


def _mark_keys(shopper: Shopper) -> list[str]:
    return [ERASED_PREFIX + _digest(key) for key in shopper.keys]


def _latest_mark(found: dict[str, Any], shopper: Shopper) -> float:
    """The latest erasure mark of ``shopper`` among cache values ``found`` (0: none)."""
    return max((float(found[key]) for key in _mark_keys(shopper) if key in found), default=0.0)


def erased_at(shopper: Shopper) -> float:
    """When this shopper was last erased (Unix seconds; 0: not within the hour). One query."""
    if not shopper.is_known:
        return 0.0
    memo = getattr(shopper.request, ERASED_ATTR, None) if shopper.request is not None else None
    if memo is not None and memo[0] == shopper.key:
        return memo[1]  # read once per request
    if history_cached():  # the marks every process reads are in the shared cache
        value = _latest_mark(cache.get_many(_mark_keys(shopper)), shopper)
    else:
        latest = ErasureMark.objects.filter(digest__in=[_digest(key) for key in shopper.keys]).aggregate(
            latest=Max("erased_at")
        )["latest"]
        value = latest.timestamp() if latest is not None else 0.0
    if shopper.request is not None:
        setattr(shopper.request, ERASED_ATTR, (shopper.key, value))
    return value


def generation(shopper: Shopper) -> str:
    """Changes whenever the shopper produces a new item event, or is erased in any process
    (part of response cache keys: a list cached before an erasure is never served after it)."""
    events = ".".join(str(entry.get("generation", 0)) for entry in _overlay(shopper).values()) or "0"
    erased = erased_at(shopper)
    return f"{events}~{erased:.6f}" if erased else events


def _shopper_rows(shopper: Shopper):
    """This shopper's event rows (None when nobody is known)."""
    if shopper.user_id is not None:
        return Event.objects.filter(user_id=shopper.user_id)
    if shopper.visitor:
        # Only anonymous rows: a device or visitor id never reveals a signed-in user's events.
        return Event.objects.filter(session_key=shopper.visitor, user__isnull=True)
    return None


COLUMNS = ("timestamp", "event_type", "item_id", "session_key", "client_event_id", "category_id")
#: Purchases read to keep bought items out of "for you" lists.
MAX_PURCHASES = 1000


@dataclass(frozen=True)
class Activity:
    recent: list[HistoryEvent]  # latest item events, oldest first
    purchased: set[str]  # every item bought (up to MAX_PURCHASES)


def _stored(shopper: Shopper, limit: int) -> list[list[Any]]:
    """The shopper's latest ``limit`` item events and purchases from the table (one round trip
    where the database allows it), as cache rows: [time, type, item, visit, key, category]."""
    rows = _shopper_rows(shopper)
    if rows is None:
        return []
    recent = rows.filter(event_type__in=HISTORY_TYPES).order_by("-timestamp", "-id").values_list(*COLUMNS)
    bought = rows.filter(event_type=EventType.PURCHASE).order_by("-timestamp", "-id").values_list(*COLUMNS)
    if connection.features.supports_slicing_ordering_in_compound:  # PostgreSQL: one query
        stored = list(recent[:limit].union(bought[:MAX_PURCHASES], all=True))
    else:
        stored = list(recent[:limit]) + list(bought[:MAX_PURCHASES])
    return [
        [when.timestamp(), event_type, item_id, session_key, client_id or "", category or ""]
        for when, event_type, item_id, session_key, client_id, category in stored
    ]


def _base(shopper: Shopper, limit: int, kept: dict | None, erased: float) -> list[list[Any]]:
    """The stored rows: the cached base when it is fresh and not older than an erasure, else
    the table's, kept for the next list."""
    fresh = kept is not None and float(kept.get("loaded", 0)) > erased + CLOCK_MARGIN_SECONDS
    if fresh and int(kept.get("limit", 0)) >= limit:
        return kept["rows"]
    loaded, kept_limit = time.time(), max(limit, app_settings.HISTORY_EVENTS)
    rows = _stored(shopper, kept_limit)
    try:
        base = {"loaded": loaded, "limit": kept_limit, "rows": rows}
        cache.set(BASE_PREFIX + shopper.key, base, app_settings.HISTORY_CACHE_SECONDS)
    except Exception:  # fails open: read again next time
        logger.warning("Could not keep a shopper's history in the cache.", exc_info=True)
    return rows


def activity(shopper: Shopper, limit: int | None = None) -> Activity:
    """Latest item events and bought items: one round trip to the cache for a returning
    shopper when ``history_cached()``, else one to the database and one to the cache."""
    limit = limit or app_settings.HISTORY_EVENTS
    if not shopper.is_known:
        return Activity([], set())
    cached = history_cached()
    overlay_keys = [_overlay_key(key) for key in shopper.keys]
    found = cache.get_many(
        overlay_keys + ([BASE_PREFIX + shopper.key, *_mark_keys(shopper)] if cached else [])
    )
    overlay = {key: found[key] for key in overlay_keys if key in found}
    if cached:
        erased = _latest_mark(found, shopper)
        stored = _base(shopper, limit, found.get(BASE_PREFIX + shopper.key), erased)
    else:
        stored = _stored(shopper, limit)
        erased = erased_at(shopper) if any(entry.get("events") for entry in overlay.values()) else 0.0
    events: dict[str, HistoryEvent] = {}
    for timestamp, event_type, item_id, session_key, client_id, category in stored:
        key = _event_key(client_id, timestamp, event_type, item_id)
        events[key] = HistoryEvent(timestamp, event_type, item_id, session_key, key, category)
    now = time.time()
    for entry in overlay.values():
        for row in entry.get("events", []):
            timestamp, event_type, item_id, session_key, client_id = row[:5]
            category = row[5] if len(row) > 5 else ""
            noted = float(row[6]) if len(row) > 6 else float(timestamp)
            if noted <= erased or (not cached and now - noted > OVERLAY_TRUST_SECONDS):
                continue  # erased since; or (the table being the truth) stored by now
            key = _event_key(client_id, float(timestamp), event_type, item_id)
            events.setdefault(
                key, HistoryEvent(float(timestamp), event_type, item_id, session_key, key, category)
            )
    purchased = {event.item_id for event in events.values() if event.event_type == EventType.PURCHASE}
    ordered = sorted(events.values(), key=lambda event: event.timestamp)
    return Activity(recent=ordered[-limit:], purchased=purchased)


def recent_events(shopper: Shopper, limit: int | None = None) -> list[HistoryEvent]:
    """The shopper's latest item events, oldest first (at most ``HISTORY_EVENTS``)."""
    return activity(shopper, limit).recent


def purchased_item_ids(shopper: Shopper) -> set[str]:
    """Items this shopper bought (not recommended again in "for you" lists)."""
    return activity(shopper).purchased
