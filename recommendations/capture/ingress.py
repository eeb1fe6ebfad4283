"""The one way in for every event: ``accept()`` applies the rules, validates, and records.

The middleware, ``track()``, the shop's signals, clicks on recommendations and the mobile
API's batches all end in ``accept``: the request's rules (``rules.is_trackable``: crawler,
prefetch, DNT/GPC, consent, staff) are checked once, every event is validated by
``build_record`` (type, item, query, price, quantity, lengths), a resent event is
stored once through its ``client_event_id``, and ``vigilance`` flags shoppers faster than people. Events of a request wait in a buffer that
``EventMiddleware`` writes once, after the response has been sent; without the middleware
they are written at once. Each accepted batch is announced with the ``events_recorded``
signal before it goes to the recorder.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone

from ..adapters import get_adapter
from ..conf import app_settings
from ..identity import Shopper, user_id_of, visitor_id
from ..models import ITEM_EVENTS, EventType
from ..records import EventRecord
from ..signals import events_recorded
from . import vigilance
from .recorders import get_recorder
from .rules import is_trackable

logger = logging.getLogger(__name__)

BUFFER_ATTR = "_recommendations_buffer"
DROPPED_ATTR = "_recommendations_dropped"


#: The largest whole number a counter column holds (PostgreSQL's integer).
MAX_INT = 2**31 - 1
MAX_QUANTITY = 100_000
MAX_PRICE = Decimal("9999999999.99")  # the price column: 12 digits, 2 after the point
#: Keys of events sent by apps: each caller's own namespace, never one the server derives.
CLIENT_KEY_PREFIX = "client:"


def _text(value: Any, field: str, max_length: int) -> str:
    """Text that fits its column and holds no control or invisible formatting characters
    (a right-to-left override, a zero-width space): refused, never cut or stored."""
    text = "" if value is None else str(value)
    if len(text) > max_length:
        raise ValueError(f"{field} is longer than {max_length} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in text):
        raise ValueError(f"{field} holds control or invisible characters")
    return text


def _identifier(value: Any, field: str, max_length: int = 64) -> str:
    text = _text(value, field, max_length)
    if any(c.isspace() for c in text):
        raise ValueError(f"{field} {text[:80]!r} is not an id (no spaces)")
    return text


def _whole(value: Any, field: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{field} must be a whole number")
    try:
        number = int(value)
    except ValueError as exc:
        raise ValueError(f"{field} {value!r} is not a whole number") from exc
    if not low <= number <= high:
        raise ValueError(f"{field} must be between {low} and {high}")
    return number


def _price(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        price = Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation as exc:
        raise ValueError(f"price {value!r} is not a number") from exc
    if not Decimal(0) <= price <= MAX_PRICE:
        raise ValueError(f"price must be between 0 and {MAX_PRICE}")
    return price


#: The event types (``EventType.values`` builds its list anew at every call: this is the hot path).
EVENT_TYPES = frozenset(EventType.values)
#: The last place a list can have (clicks say where in their list the item was).
MAX_POSITION = 1000
LIST_ID = re.compile(r"^[A-Za-z0-9_-]{8,32}$")


def _list_id(value: Any) -> str:
    text = "" if value is None else value
    if text and (not isinstance(text, str) or not LIST_ID.match(text)):
        raise ValueError("list_id must be 8 to 32 letters, digits, - or _ (the list_id of a shown list)")
    return text


def _shown(value: Mapping[str, Any] | None, event: str) -> dict | None:
    """What an impression showed: item ids in order and the probability each was chosen
    for its place (exploration, serving/exploration.py). Only the server writes it."""
    if value is None:
        return None
    if event != EventType.IMPRESSION:
        raise ValueError("only an impression says what was shown")
    items, chances = list(value.get("items") or []), list(value.get("p") or [])
    if len(items) != len(chances) or len(items) > MAX_POSITION:
        raise ValueError("shown needs as many probabilities as items")
    for chance in chances:
        if isinstance(chance, bool) or not isinstance(chance, int | float) or not 0.0 < chance <= 1.0:
            raise ValueError("a probability of being shown is a number in (0, 1]")
    return {"items": [_identifier(item, "shown item id") for item in items], "p": [float(c) for c in chances]}


def client_key(shopper_key: str, client_event_id: str) -> str:
    """The stored key of an id an app chose: scoped to that caller, in its own namespace.

    A client's id can then never claim a key the server derives (``purchase:<order>:<item>``,
    ``import:…``) nor another caller's, and the same event sent twice is still stored once.
    """
    digest = hashlib.sha256(f"{shopper_key}\x1f{client_event_id}".encode()).hexdigest()[:40]
    return CLIENT_KEY_PREFIX + digest


def client_time(timestamp: datetime | None) -> datetime:
    """When an app says its event happened, within the bounds of the server's clock.

    A phone's clock may run a little ahead (up to ``CLIENT_CLOCK_SKEW_SECONDS``: counted as
    now); further ahead, or older than ``CLIENT_MAX_EVENT_AGE_SECONDS``, is refused, so no
    client can place events in another period (a past holdout, a far future).
    """
    now = timezone.now()
    if timestamp is None:
        return now
    if timestamp > now + timedelta(seconds=app_settings.CLIENT_CLOCK_SKEW_SECONDS):
        raise ValueError("timestamp is in the future (beyond the allowed clock skew)")
    if timestamp < now - timedelta(seconds=app_settings.CLIENT_MAX_EVENT_AGE_SECONDS):
        raise ValueError(
            f"timestamp is older than {app_settings.CLIENT_MAX_EVENT_AGE_SECONDS} seconds; "
            "send events within that time"
        )
    return min(timestamp, now)


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
    experiment_id: int | None = None,
    arm: str = "",
    list_id: str = "",
    position: int | None = None,
    shown: Mapping[str, Any] | None = None,
) -> EventRecord:
    """Validate one event and fill what the catalogue adapter knows about ``item``.

    Every field is checked against what its column holds (lengths, ranges, characters), so a
    record that passes here can be written: one bad event never stalls the others behind it.
    """
    if event not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event!r}; expected one of {', '.join(EventType.values)}")
    adapter = get_adapter()
    item_id = _identifier(adapter.item_id(item), "item id") if item is not None and item != "" else ""
    if event in ITEM_EVENTS and not item_id:
        raise ValueError(f"a {event!r} event needs an item")
    query = _text(" ".join(str(query or "").split())[:255], "query", 255)
    if event == EventType.SEARCH and not query:
        raise ValueError("a 'search' event needs a query")
    if category is None and item is not None and not isinstance(item, (str, int)):
        category = adapter.category_id(item)
    if price is None and item is not None and not isinstance(item, (str, int)):
        price = adapter.price(item)
    key = None if not client_event_id else _identifier(client_event_id, "client_event_id")
    return EventRecord(
        event_type=str(event),
        timestamp=timestamp or timezone.now(),
        user_id=user_id,
        session_key=session_key[:64],
        item_id=item_id,
        category_id=_text("" if category is None else getattr(category, "pk", category), "category", 128),
        query=query,
        result_count=_whole(result_count, "result_count", 0, MAX_INT),
        price=_price(price),
        quantity=_whole(quantity, "quantity", 0, MAX_QUANTITY),
        source=source,
        scenario=_identifier(scenario or "", "scenario", 32),
        model_version=_whole(model_version, "model_version", 1, MAX_INT),
        experiment_id=_whole(experiment_id, "experiment_id", 1, MAX_INT),
        arm=_identifier(arm or "", "arm", 32),
        list_id=_list_id(list_id),
        position=_whole(position, "position", 0, MAX_POSITION),
        shown=_shown(shown, event),
        **({"client_event_id": key} if key else {}),
    )


def accept(
    request: Any,
    events: Iterable[Mapping[str, Any]],
    *,
    shopper: Shopper | None = None,
    user: Any = None,
    source: str = "web",
    from_client: bool = False,
) -> int | None:
    """Take events into the app: the one function every way in calls.

    ``events`` are keyword arguments of ``build_record`` (``{"event": "view", "item": ...}``).
    Who did them: ``shopper`` when the caller knows (the API), else the shopper behind
    ``request``, else ``user``. ``from_client``: the events come from an app (their ids go
    to the caller's own namespace, their times must be near the server's clock; see
    ``client_key`` and ``client_time``); a server-side id may never use that namespace.
    Returns how many were accepted, or None when this request may not be tracked (see
    ``rules``). A bad event raises ``ValueError`` and nothing of the batch is kept:
    callers that must fail open catch it.
    """
    if request is not None and not is_trackable(request):
        return None
    if shopper is None:
        shopper = (
            Shopper(user_id_of(request), visitor_id(request))
            if request is not None
            else Shopper(getattr(user, "pk", user))
        )
    records = []
    for event in events:
        fields = dict(event)
        key = fields.get("client_event_id")
        if from_client:
            fields["timestamp"] = client_time(fields.get("timestamp"))
            fields["client_event_id"] = client_key(shopper.key, str(key)) if key else None
        elif key and str(key).startswith(CLIENT_KEY_PREFIX):
            raise ValueError(f"client_event_id may not start with {CLIENT_KEY_PREFIX!r} (apps' namespace)")
        records.append(
            build_record(**fields, user_id=shopper.user_id, session_key=shopper.visitor, source=source)
        )
    if from_client:
        _refuse_unknown_items(records)
    flag = vigilance.watch(request, shopper, records)
    if flag is not None:
        pending = getattr(request, vigilance.FLAGS_ATTR, None) if request is not None else None
        if pending is not None and getattr(request, BUFFER_ATTR, None) is not None:
            pending.append(flag)  # written with the events, after the response
        else:
            vigilance.record_flags([flag])
    _emit(request, records)
    return len(records)


def _refuse_unknown_items(records: list[EventRecord]) -> None:
    """An app's events name items of the catalogue: no statistic learns made-up ids (one query)."""
    named = {record.item_id for record in records if record.item_id}
    unknown = named - get_adapter().known_item_ids(named) if named else set()
    if unknown:
        shown = ", ".join(sorted(repr(item)[:40] for item in unknown)[:5])
        raise ValueError(f"no such item in the catalogue: {shown}")


def _deliver(records: list[EventRecord]) -> None:
    """Announce the records (serving's overlay, suggestion rebuilds), then record them."""
    events_recorded.send_robust(sender=None, records=records)
    get_recorder().record(records)


def begin(request: Any) -> None:
    """Give ``request`` an event buffer (done by ``EventMiddleware``)."""
    setattr(request, BUFFER_ATTR, [])
    setattr(request, vigilance.FLAGS_ATTR, [])


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
        vigilance.record_flags(getattr(request, vigilance.FLAGS_ATTR, None) or ())
        setattr(request, vigilance.FLAGS_ATTR, None)
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


def impression_fields(shown: Any) -> dict[str, Any]:
    """The ``track`` fields of the impression of a shown list (``services.RecommendationList``):
    its scenario, version and arm, its id, and each item with the chance it had of its place."""
    return {
        "scenario": shown.scenario,
        "model_version": shown.model_version,
        "result_count": len(shown.items),
        "experiment_id": shown.experiment_id,
        "arm": shown.arm,
        "list_id": shown.list_id,
        "shown": {"items": [rec.item_id for rec in shown.items], "p": shown.chances()},
        "client_event_id": f"impression:{shown.list_id}",
    }


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
