"""The right to erasure and a retention limit: what the app keeps about a shopper, and for how long.

``forget_user`` deletes a user's events, the events of every anonymous visitor id linked to
them and those links, then sends ``shopper_forgotten``: serving drops the shopper's recent
events and the suggestions their profile from the cache. The cached API lists and profiles
are keyed by the shopper's event generation, which that changes, so none of them is served
again. What remains is aggregate: model
weights (item and category ids only, no shopper ids) and search-query counts.
``purge_expired_events`` deletes events older than ``RETENTION_DAYS``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from ..conf import app_settings
from ..identity import Shopper
from ..models import Event, FlaggedShopper, VisitorLink
from ..signals import shopper_forgotten

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Erasure:
    events: int
    visitors: int


def forget_user(user: Any) -> Erasure:
    """Erase what the app holds about ``user`` (an instance or a primary key)."""
    user_id = getattr(user, "pk", user)
    with transaction.atomic():
        visitors = list(VisitorLink.objects.filter(user_id=user_id).values_list("session_key", flat=True))
        deleted, _ = Event.objects.filter(user_id=user_id).delete()
        if visitors:
            anonymous, _ = Event.objects.filter(session_key__in=visitors, user__isnull=True).delete()
            deleted += anonymous
        VisitorLink.objects.filter(user_id=user_id).delete()
        FlaggedShopper.objects.filter(Q(user_id=user_id) | Q(session_key__in=visitors)).delete()
    shoppers = [Shopper(user_id=user_id, visitor=visitor) for visitor in visitors or [""]]
    shopper_forgotten.send_robust(sender=None, shoppers=shoppers)
    # No user id in the log line: the count is what an operator needs.
    logger.info("Erased %d events and %d visitor links of one user on request.", deleted, len(visitors))
    return Erasure(events=deleted, visitors=len(visitors))


def forget_visitor(session_key: str) -> Erasure:
    """Erase an anonymous visitor's (or app install's) events and cache entries."""
    deleted, _ = Event.objects.filter(session_key=session_key, user__isnull=True).delete()
    FlaggedShopper.objects.filter(session_key=session_key).delete()
    shopper_forgotten.send_robust(sender=None, shoppers=[Shopper(visitor=session_key)])
    return Erasure(events=deleted, visitors=1)


#: Events one retention statement deletes: each batch is its own short transaction, so
#: the clean-up of a big table holds no long transaction open (writes never wait on it,
#: vacuum can reclaim as it goes) and a crash loses only the batch in flight.
PURGE_BATCH_SIZE = 50_000


def purge_expired_events(now: Any = None, batch_size: int = PURGE_BATCH_SIZE) -> int:
    """Delete events older than ``RETENTION_DAYS`` (None keeps everything), in batches of
    ``batch_size`` (``bench scale`` compares this with one statement and with dropping a
    monthly partition); returns how many."""
    days = app_settings.RETENTION_DAYS
    if not days:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    expired = Event.objects.filter(timestamp__lt=cutoff).order_by()
    deleted = 0
    while True:
        batch = expired.values("pk")[:batch_size]
        if not connection.features.allow_sliced_subqueries_with_in:  # MySQL: ids, not a subquery
            batch = list(batch.values_list("pk", flat=True))
        count, _ = Event.objects.filter(pk__in=batch).delete()
        deleted += count
        if count < batch_size:
            break
    logger.info("Retention: deleted %d events older than %d days.", deleted, days)
    return deleted
