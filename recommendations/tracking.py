"""Turn what a shopper does into ``EventRecord`` values; ``track()`` is the public call.

Every entry point (the middleware, signal receivers, a shop's own ``track()`` calls) goes
through here, so the rules are applied once: crawlers, prefetches, Do-Not-Track and the
consent check are honoured, the visitor is identified, and nothing raises into the page.
Events of a request wait in a buffer that ``EventMiddleware`` writes once, after the
response has been sent; without the middleware they are written at once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from django.http import HttpRequest
from django.utils import timezone

from .adapters import CatalogueAdapter
from .conf import app_settings
from .models import ITEM_EVENTS, EventType
from .recorders import EventRecord, get_recorder

logger = logging.getLogger(__name__)

#: Session key under which the anonymous visitor id is kept (survives login's key rotation).
VISITOR_SESSION_KEY = "_recommendations_visitor"
BUFFER_ATTR = "_recommendations_buffer"
TRACKABLE_ATTR = "_recommendations_trackable"
DROPPED_ATTR = "_recommendations_dropped"

PREFETCH_HEADERS = {
    "HTTP_PURPOSE": "prefetch",
    "HTTP_SEC_PURPOSE": "prefetch",
    "HTTP_X_PURPOSE": "preview",
    "HTTP_X_MOZ": "prefetch",
}


@lru_cache(maxsize=1)
def get_adapter() -> CatalogueAdapter:
    return app_settings.get_class("CATALOGUE_ADAPTER")()


def is_crawler(user_agent: str) -> bool:
    if not user_agent:
        return True
    lowered = user_agent.lower()
    return any(marker in lowered for marker in app_settings.CRAWLER_USER_AGENTS)


def is_prefetch(request: HttpRequest) -> bool:
    meta = request.META
    return any(value in meta.get(header, "").lower() for header, value in PREFETCH_HEADERS.items())


def wants_no_tracking(request: HttpRequest) -> bool:
    return app_settings.HONOR_DNT and (
        request.META.get("HTTP_DNT") == "1" or request.META.get("HTTP_SEC_GPC") == "1"
    )


def is_trackable(request: HttpRequest) -> bool:
    """Whether this request may produce events (decided once per request)."""
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


def visitor_id(request: HttpRequest) -> str:
    """The anonymous visitor id of this browser session, created on first use."""
    session = getattr(request, "session", None)
    if session is None:
        return ""
    value = session.get(VISITOR_SESSION_KEY)
    if not value:
        value = uuid.uuid4().hex
        session[VISITOR_SESSION_KEY] = value
    return value


def request_identity(request: HttpRequest) -> tuple[int | None, str]:
    """(user id or None, visitor id) of the shopper behind ``request``."""
    user = getattr(request, "user", None)
    user_id = user.pk if user is not None and user.is_authenticated else None
    return user_id, visitor_id(request)


def _clean_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation as exc:
        raise ValueError(f"price {value!r} is not a number") from exc


def build_record(
    event: str,
    *,
    item: Any = None,
    user_id: int | None = None,
    session_key: str = "",
    category: Any = None,
    query: str = "",
    result_count: int | None = None,
    price: Any = None,
    quantity: int | None = None,
    timestamp: datetime | None = None,
    client_event_id: str | None = None,
    source: str = "",
    scenario: str = "",
    model_version: int | None = None,
) -> EventRecord:
    """Validate one event and fill what the catalogue adapter knows about ``item``."""
    if event not in EventType.values:
        raise ValueError(f"unknown event type {event!r}; expected one of {', '.join(EventType.values)}")
    adapter = get_adapter()
    item_id = adapter.item_id(item) if item is not None and item != "" else ""
    if event in ITEM_EVENTS and not item_id:
        raise ValueError(f"a {event!r} event needs an item")
    if event == EventType.SEARCH and not (query or "").strip():
        raise ValueError("a 'search' event needs a query")
    if category is None and item is not None and not isinstance(item, (str, int)):
        category = adapter.category_id(item)
    if price is None and item is not None and not isinstance(item, (str, int)):
        price = adapter.price(item)
    if quantity is not None and int(quantity) < 0:
        raise ValueError("quantity must not be negative")
    return EventRecord(
        event_type=str(event),
        timestamp=timestamp or timezone.now(),
        user_id=user_id,
        session_key=session_key[:64],
        item_id=item_id[:64],
        category_id=("" if category is None else str(getattr(category, "pk", category)))[:128],
        query=" ".join((query or "").split())[:255],
        result_count=None if result_count is None else max(0, int(result_count)),
        price=_clean_decimal(price),
        quantity=None if quantity is None else int(quantity),
        source=source,
        scenario=str(scenario or "")[:32],
        model_version=None if model_version is None else int(model_version),
        **({"client_event_id": client_event_id[:64]} if client_event_id else {}),
    )


def remember(records: list[EventRecord]) -> None:
    """Let serving see these events before they are stored (see ``serving.history``), and
    have new searches reach the suggestions soon (``suggest.schedule_rebuild``)."""
    try:
        from .serving.history import remember as remember_recent

        remember_recent(records)
        if any(record.event_type == EventType.SEARCH for record in records):
            from .suggest.loader import schedule_rebuild

            schedule_rebuild()
    except Exception:
        logger.exception("Could not note %d events for real-time recommendations.", len(records))


def begin(request: HttpRequest) -> None:
    """Give ``request`` an event buffer (done by ``EventMiddleware``)."""
    setattr(request, BUFFER_ATTR, [])


def emit(request: HttpRequest | None, records: Iterable[EventRecord]) -> None:
    """Buffer ``records`` on the request while the middleware holds it open, else write them now."""
    records = list(records)
    buffer = getattr(request, BUFFER_ATTR, None) if request is not None else None
    if buffer is None:
        remember(records)
        get_recorder().record(records)
        return
    room = max(app_settings.MAX_EVENTS_PER_REQUEST - len(buffer), 0)
    if len(records) > room:
        setattr(request, DROPPED_ATTR, getattr(request, DROPPED_ATTR, 0) + len(records) - room)
        records = records[:room]
    buffer.extend(records)


def flush(request: HttpRequest) -> None:
    """Write the request's buffered events in one go (runs after the response is sent).

    The buffer is closed afterwards: an event emitted later in this request's life (an
    ``on_commit`` callback, say) is written on its own instead of being forgotten.
    """
    records = getattr(request, BUFFER_ATTR, None) or []
    try:
        setattr(request, BUFFER_ATTR, None)
        dropped = getattr(request, DROPPED_ATTR, 0)
        if dropped:
            logger.warning(
                "Dropped %d events over the per-request limit of %d.",
                dropped,
                app_settings.MAX_EVENTS_PER_REQUEST,
            )
        if not records:
            return
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            # The shopper signed in during this request: earlier anonymous events are theirs.
            records = [r if r.user_id is not None else replace(r, user_id=user.pk) for r in records]
        remember(records)
        get_recorder().record(records)
    except Exception:
        logger.exception("Could not record %d buffered events.", len(records))


def track(
    request: HttpRequest | None,
    event: str,
    item: Any = None,
    *,
    user: Any = None,
    category: Any = None,
    query: str = "",
    result_count: int | None = None,
    price: Any = None,
    quantity: int | None = None,
    timestamp: datetime | None = None,
    client_event_id: str | None = None,
    source: str = "web",
    scenario: str = "",
    model_version: int | None = None,
) -> bool:
    """Record that the shopper behind ``request`` did ``event`` (fails open).

    ``item`` is a product instance or its id; category and price are read from an
    instance through the catalogue adapter unless given. Without a request (a task, a
    webhook) pass ``user=``. Returns whether an event was recorded or buffered; any error
    is logged and swallowed, so tracking never breaks a page.
    """
    try:
        if request is not None and not is_trackable(request):
            return False
        if request is not None:
            user_id, session_key = request_identity(request)
        else:
            user_id, session_key = (getattr(user, "pk", user), "")
        record = build_record(
            event,
            item=item,
            user_id=user_id,
            session_key=session_key,
            category=category,
            query=query,
            result_count=result_count,
            price=price,
            quantity=quantity,
            timestamp=timestamp,
            client_event_id=client_event_id,
            source=source,
            scenario=scenario,
            model_version=model_version,
        )
        emit(request, [record])
        return True
    except Exception:
        logger.exception("Tracking failed for a %r event; the page is unaffected.", event)
        return False
