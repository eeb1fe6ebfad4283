"""Rate limits of the API: events counted one by one, per caller and per network.

Rates come from ``RECOMMENDATIONS["API_THROTTLE_RATES"]`` (DRF's "N/second|minute|hour|day"
format; a missing scope or None is unlimited), so a project need not declare DRF throttle
scopes. Each limit is a sliding window of (time, cost) entries in Django's cache. A batch of
events costs as many as it holds, so a device cannot send 100 times more by packing them;
every caller is counted twice, on its own (the user, else the device id) and together with
all others of its network (``network_key``: a keyed hash, never an address), so neither a new
device id nor a forged ``X-Forwarded-For`` resets anything.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from ..conf import app_settings
from ..identity import device_visitor
from ..network import network_key
from .serializers import max_body_bytes

CACHE_PREFIX = "recommendations:throttle:"
DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """``"120/minute"`` -> (120, 60); None stays None."""
    if not rate:
        return None
    number, _, period = rate.partition("/")
    return int(number), DURATIONS[period[0]]


class CountingThrottle(BaseThrottle):
    """Allows a request while every window it falls in has room for its cost."""

    #: (settings scope, what is counted): "caller" or "address".
    limits: tuple[tuple[str, str], ...] = ()

    def cost(self, request: Any) -> int:
        return 1

    def caller(self, request: Any) -> str:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return f"user:{user.pk}"
        return device_visitor(request.headers.get("X-Device-Id", "")) or "addr:" + network_key(request)

    def allow_request(self, request: Any, view: Any) -> bool:
        now, cost, self.retry_after = time.time(), self.cost(request), None
        rates = app_settings.API_THROTTLE_RATES or {}
        updates = []
        for scope, counted in self.limits:
            rate = parse_rate(rates.get(scope))
            if rate is None:
                continue
            allowed, duration = rate
            ident = self.caller(request) if counted == "caller" else "addr:" + network_key(request)
            key = f"{CACHE_PREFIX}{scope}:{ident}"
            window = [(at, spent) for at, spent in cache.get(key, []) if at > now - duration]
            used = sum(spent for _, spent in window)
            if used + cost > allowed:
                # Room comes back as the oldest entries leave the window.
                freed, wait = used + cost - allowed, float(duration)
                for at, spent in window:
                    freed -= spent
                    if freed <= 0:
                        wait = at + duration - now
                        break
                self.retry_after = max(wait, 1.0)
                return False
            updates.append((key, [*window, (now, cost)], duration))
        for key, window, duration in updates:
            cache.set(key, window, duration)
        return True

    def wait(self) -> float | None:
        return self.retry_after


class EventsRateThrottle(CountingThrottle):
    limits = (("events", "caller"), ("events_per_address", "address"))

    def cost(self, request: Any) -> int:
        """The events the batch holds (a body too large to read is refused by the view: 1)."""
        limit = app_settings.API_MAX_BATCH_EVENTS
        try:
            if int(request.META.get("CONTENT_LENGTH") or 0) > max_body_bytes():
                return 1
        except ValueError:
            return 1
        data = request.data
        events = data.get("events") if isinstance(data, dict) else None
        return min(len(events), limit + 1) if isinstance(events, list) and events else 1


class SuggestRateThrottle(CountingThrottle):
    limits = (("suggest", "caller"), ("suggest_per_address", "address"))


class DevicesRateThrottle(CountingThrottle):
    """New device ids, per network: one install asks once, so a burst is one caller minting identities."""

    limits = (("devices", "address"),)
