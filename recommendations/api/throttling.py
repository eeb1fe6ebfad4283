"""Rate limits of the endpoints a client calls in bursts: event batches and suggestions.

Rates come from ``RECOMMENDATIONS["API_THROTTLE_RATES"]`` (DRF's "N/second|minute|hour|day"
format; a missing scope or None is unlimited), so a project need not declare DRF throttle
scopes. A caller is counted by user, else by device id, else by a hash of their address:
no IP address is written anywhere, not even into a cache key.
"""

from __future__ import annotations

import hashlib

from rest_framework.throttling import SimpleRateThrottle

from ..conf import app_settings
from ..identity import device_visitor


class SettingsRateThrottle(SimpleRateThrottle):
    scope = ""

    def get_rate(self) -> str | None:
        return (app_settings.API_THROTTLE_RATES or {}).get(self.scope)

    def get_cache_key(self, request, view) -> str:
        user = getattr(request, "user", None)
        device = request.headers.get("X-Device-Id", "")
        if user is not None and user.is_authenticated:
            ident = f"user:{user.pk}"
        elif visitor := device_visitor(device):
            ident = visitor
        else:
            address = self.get_ident(request) or "unknown"  # a WSGI call may carry no address
            ident = "addr:" + hashlib.sha256(address.encode()).hexdigest()[:24]
        return self.cache_format % {"scope": f"recommendations-{self.scope}", "ident": ident}


class EventsRateThrottle(SettingsRateThrottle):
    scope = "events"


class SuggestRateThrottle(SettingsRateThrottle):
    scope = "suggest"


class DevicesRateThrottle(SettingsRateThrottle):
    """New device ids, per address: one install asks once, so a burst is one caller minting identities."""

    scope = "devices"
