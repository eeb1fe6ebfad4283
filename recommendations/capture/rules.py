"""Which requests may produce events: crawlers, prefetches, Do-Not-Track, consent, staff.

Decided once per request and applied by ``ingress`` to every event that comes with one, so
a page view, a ``track()`` call, a click and a batch from the mobile API obey the same rules.
"""

from __future__ import annotations

from typing import Any

from ..conf import app_settings

TRACKABLE_ATTR = "_recommendations_trackable"
PREFETCH_HEADERS = {
    "HTTP_PURPOSE": "prefetch",
    "HTTP_SEC_PURPOSE": "prefetch",
    "HTTP_X_PURPOSE": "preview",
    "HTTP_X_MOZ": "prefetch",
}


def is_crawler(user_agent: str) -> bool:
    if not user_agent:
        return True
    lowered = user_agent.lower()
    return any(marker in lowered for marker in app_settings.CRAWLER_USER_AGENTS)


def is_prefetch(request: Any) -> bool:
    meta = request.META
    return any(value in meta.get(header, "").lower() for header, value in PREFETCH_HEADERS.items())


def wants_no_tracking(request: Any) -> bool:
    return app_settings.HONOR_DNT and (
        request.META.get("HTTP_DNT") == "1" or request.META.get("HTTP_SEC_GPC") == "1"
    )


def is_trackable(request: Any) -> bool:
    """Whether this request (a Django or a DRF request) may produce events."""
    cached = getattr(request, TRACKABLE_ATTR, None)
    if cached is not None:
        return cached
    trackable = not (
        is_crawler(request.META.get("HTTP_USER_AGENT", ""))
        or is_prefetch(request)
        or wants_no_tracking(request)
    )
    user = getattr(request, "user", None)
    if trackable and not app_settings.TRACK_STAFF and getattr(user, "is_staff", False):
        trackable = False
    if trackable:
        consent = app_settings.get_class("CONSENT_CHECK")
        trackable = bool(consent(request)) if consent else True
    setattr(request, TRACKABLE_ATTR, trackable)
    return trackable
