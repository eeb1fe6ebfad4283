"""What the shop owner sees of serving: click-through per list and version, sample shoppers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q

from ..identity import Shopper
from ..models import Event, EventType
from .history import HISTORY_TYPES


@dataclass(frozen=True)
class ClickThrough:
    scenario: str
    model_version: int | None
    impressions: int
    clicks: int

    @property
    def rate(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None


def click_through(since: datetime | None = None, model_version: int | None = None) -> list[ClickThrough]:
    """Impressions (carousels shown) and clicks per list and model version, most shown first."""
    events = Event.objects.filter(event_type__in=[EventType.IMPRESSION, EventType.CLICK]).exclude(scenario="")
    if since is not None:
        events = events.filter(timestamp__gte=since)
    if model_version is not None:
        events = events.filter(model_version=model_version)
    rows = (
        events.values("scenario", "model_version")
        .annotate(
            impressions=Count("id", filter=Q(event_type=EventType.IMPRESSION)),
            clicks=Count("id", filter=Q(event_type=EventType.CLICK)),
        )
        .order_by("-impressions", "scenario", "model_version")
    )
    return [ClickThrough(r["scenario"], r["model_version"], r["impressions"], r["clicks"]) for r in rows]


def recent_shoppers(n: int = 3) -> list[Shopper]:
    """The ``n`` shoppers (signed-in users or anonymous visitors) with the latest item events."""
    shoppers: list[Shopper] = []
    seen: set[tuple] = set()
    rows = (
        Event.objects.filter(event_type__in=HISTORY_TYPES)
        .order_by("-timestamp", "-id")
        .values_list("user_id", "session_key")[:500]
    )
    for user_id, session_key in rows:
        key = (user_id, "") if user_id is not None else (None, session_key)
        if key in seen or key == (None, ""):
            continue
        seen.add(key)
        shoppers.append(Shopper(user_id=key[0], visitor=key[1]))
        if len(shoppers) >= n:
            break
    return shoppers
