"""The one way in for every event: ``accept()`` applies the rules, validates, and records.

The middleware, ``track()``, the shop's signals, clicks on recommendations and the mobile
API's batches all end in ``accept``: the request's rules (``rules.is_trackable``: crawler,
prefetch, DNT/GPC, consent, staff) are checked once, every event is validated by
``build_record`` (type, item, query, price, quantity, lengths), and a resent event is
stored once through its ``client_event_id``. Events of a request wait in a buffer that
``EventMiddleware`` writes once, after the response has been sent; without the middleware
they are written at once. Each accepted batch is announced with the ``events_recorded``
signal before it goes to the recorder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone

from ..adapters import get_adapter
from ..conf import app_settings
from ..identity import Shopper, user_id_of, visitor_id
from ..models import ITEM_EVENTS, EventType
from ..records import EventRecord
from ..signals import events_recorded
from .recorders import get_recorder
from .rules import is_trackable

logger = logging.getLogger(__name__)

BUFFER_ATTR = "_recommendations_buffer"
DROPPED_ATTR = "_recommendations_dropped"


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


def accept(
    request: Any,
    events: Iterable[Mapping[str, Any]],
    *,
    shopper: Shopper | None = None,
    user: Any = None,
    source: str = "web",
) -> int | None:
    """Take events into the app: the one function every way in calls.

    ``events`` are keyword arguments of ``build_record`` (``{"event": "view", "item": ...}``).
    Who did them: ``shopper`` when the caller knows (the API), else the shopper behind
    ``request``, else ``user``. Returns how many were accepted, or None when this request
    may not be tracked (see ``rules``). A bad event raises ``ValueError`` and nothing of
    the batch is kept: callers that must fail open catch it.
    """
    if request is not None and not is_trackable(request):
        return None
    if shopper is not None:
        user_id, session_key = shopper.user_id, shopper.visitor
    elif request is not None:
        user_id, session_key = user_id_of(request), visitor_id(request)
    else:
        user_id, session_key = getattr(user, "pk", user), ""
    records = [
        build_record(**event, user_id=user_id, session_key=session_key, source=source) for event in events
    ]
    _emit(request, records)
    return len(records)


def _deliver(records: list[EventRecord]) -> None:
    """Announce the records (serving's overlay, suggestion rebuilds), then record them."""
    events_recorded.send_robust(sender=None, records=records)
    get_recorder().record(records)


def begin(request: Any) -> None:
    """Give ``request`` an event buffer (done by ``EventMiddleware``)."""
    setattr(request, BUFFER_ATTR, [])


def _emit(request: Any, records: list[EventRecord]) -> None:
    """Buffer ``records`` on the request while the middleware holds it open, else deliver them now."""
    buffer = getattr(request, BUFFER_ATTR, None) if request is not None else None
    if buffer is None:
        _deliver(records)
        return
    room = max(app_settings.MAX_EVENTS_PER_REQUEST - len(buffer), 0)
    if len(records) > room:
        setattr(request, DROPPED_ATTR, getattr(request, DROPPED_ATTR, 0) + len(records) - room)
        records = records[:room]
    buffer.extend(records)


def flush(request: Any) -> None:
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
        signed_in = user_id_of(request)
        if signed_in is not None:
            # The shopper signed in during this request: earlier anonymous events are theirs.
            records = [r if r.user_id is not None else replace(r, user_id=signed_in) for r in records]
        _deliver(records)
    except Exception:
        logger.exception("Could not record %d buffered events.", len(records))


def track(
    request: Any, event: str, item: Any = None, *, user: Any = None, source: str = "web", **fields: Any
) -> bool:
    """Record that the shopper behind ``request`` did ``event`` (fails open).

    ``item`` is a product instance or its id; category and price are read from an
    instance through the catalogue adapter unless given. ``fields`` are those of
    ``build_record``: ``category``, ``query``, ``result_count``, ``price``, ``quantity``,
    ``timestamp``, ``client_event_id``, ``scenario``, ``model_version``. Without a request (a
    task, a webhook) pass ``user=``. Returns whether an event was recorded or buffered; any
    error is logged and swallowed, so tracking never breaks a page.
    """
    try:
        return bool(accept(request, [{"event": event, "item": item, **fields}], user=user, source=source))
    except Exception:
        logger.exception("Tracking failed for a %r event; the page is unaffected.", event)
        return False
