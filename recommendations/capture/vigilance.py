"""Velocity no person reaches: shoppers and networks whose events are flagged, not learned from.

Counting distinct shoppers (``serving.popularity``, ``suggest.stats``) makes one visitor's
thousand events weigh one vote; what it cannot stop is one person making many visitors (fresh
cookie jars, device ids) or a script acting faster than any shopper. At the ingress, before
events are kept, three counters in Django's cache watch for that (``RECOMMENDATIONS["VIGILANCE"]``):

- a shopper's events a minute (``SHOPPER_EVENTS_PER_MINUTE``): a burst;
- new shoppers seen from one network in an hour (``NETWORK_NEW_SHOPPERS_PER_HOUR``): past
  that, each further new one is flagged (one machine minting identities);
- all events of one network a minute (``NETWORK_EVENTS_PER_MINUTE``).

A flagged shopper's events are still stored and still shape their own lists; they are left
out of trending, popular, similar, bought-together, suggestions and training
(``Event.objects.trusted()``) until staff clear the flag in the admin (``FlaggedShopper``).
Networks are keyed hashes (``network.network_key``), never addresses. Impressions are not
counted: a page makes them, not the shopper. The counters are per cache: with a per-process
cache each process counts apart, so production should share one (Redis, Memcached).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from ..conf import app_settings
from ..identity import Shopper
from ..models import EventType, FlaggedShopper
from ..network import network_key
from ..records import EventRecord

logger = logging.getLogger(__name__)
PREFIX = "recommendations:vigil:"
#: Request attribute: flags found while the request's events wait in its buffer.
FLAGS_ATTR = "_recommendations_flags"


@dataclass(frozen=True)
class Flag:
    shopper: Shopper
    reason: str
    detail: str


def _count(key: str, amount: int, seconds: int) -> int:
    """Add ``amount`` to a counter that lives ``seconds`` (created on first use).

    The counter usually exists (a shopper's second event of the minute onwards): one round
    trip to the cache then, not two; it is created only when the increment finds nothing."""
    for _ in range(2):
        try:
            return cache.incr(key, amount)
        except ValueError:  # no such counter yet (or it just expired)
            if cache.add(key, amount, seconds):
                return amount
    return amount


def watch(request: Any, shopper: Shopper, records: Sequence[EventRecord]) -> Flag | None:
    """Count these events; the flag they earn their shopper, if any (fails open: None)."""
    limits = app_settings.VIGILANCE
    counted = sum(record.event_type != EventType.IMPRESSION for record in records)
    if not counted or not shopper.is_known:
        return None
    try:
        minute, hour = int(time.time() // 60), int(time.time() // 3600)
        per_minute = limits.get("SHOPPER_EVENTS_PER_MINUTE")
        if per_minute and _count(f"{PREFIX}s:{shopper.key}:{minute}", counted, 120) > per_minute:
            return Flag(shopper, FlaggedShopper.Reason.BURST, f"over {per_minute} events in a minute")
        if request is None or not getattr(request, "META", None):
            return None
        network = network_key(request)
        new_shoppers = limits.get("NETWORK_NEW_SHOPPERS_PER_HOUR")
        first_seen = new_shoppers and cache.add(f"{PREFIX}seen:{network}:{shopper.key}", 1, 3600)
        if first_seen and _count(f"{PREFIX}n:{network}:{hour}", 1, 7200) > new_shoppers:
            return Flag(
                shopper,
                FlaggedShopper.Reason.NETWORK_SHOPPERS,
                f"over {new_shoppers} new shoppers from its network in an hour",
            )
        network_events = limits.get("NETWORK_EVENTS_PER_MINUTE")
        if network_events and _count(f"{PREFIX}e:{network}:{minute}", counted, 120) > network_events:
            return Flag(
                shopper,
                FlaggedShopper.Reason.NETWORK_EVENTS,
                f"its network sent over {network_events} events in a minute",
            )
    except Exception:
        logger.exception("Could not count events for burst detection; the events are kept.")
    return None


def record_flags(flags: Sequence[Flag]) -> None:
    """Store the flags (once per shopper; a flag staff cleared is never set again); fails open."""
    for flag in flags:
        marker = f"{PREFIX}flagged:{flag.shopper.key}"
        if not cache.add(marker, 1, 3600):
            continue  # written within the hour
        try:
            _, created = FlaggedShopper.objects.get_or_create(
                shopper=flag.shopper.key,
                defaults={
                    "user_id": flag.shopper.user_id,
                    "session_key": "" if flag.shopper.user_id is not None else flag.shopper.visitor,
                    "reason": flag.reason,
                    "detail": flag.detail,
                    "flagged_at": timezone.now(),
                },
            )
            if created:
                logger.warning("Flagged a shopper (%s); their events are left out of learning.", flag.reason)
        except Exception:
            cache.delete(marker)
            logger.exception("Could not store a shopper's flag; their events are kept.")
