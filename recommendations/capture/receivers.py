"""Receivers: the shop's cart and order signals become events; a login merges history.

Which signals are heard is configured (``RECOMMENDATIONS["SIGNALS"]``: import string ->
"cart" or "purchase"), so the app never imports the shop. Senders pass ``request=`` and
either ``item=`` (or ``product=``), ``quantity=``, ``price=`` for a cart addition, or
``order=`` for a placed order. Every receiver fails open.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db import connections, router, transaction
from django.dispatch import Signal
from django.utils.module_loading import import_string

from ..adapters import get_adapter
from ..conf import app_settings
from ..identity import read_visitor, start_new_visitor
from ..models import Event, VisitorLink
from ..signals import visitor_linked
from .ingress import track
from .store import lock_visitors

logger = logging.getLogger(__name__)


def on_cart(sender: Any, request: Any = None, **kwargs: Any) -> None:
    item = kwargs.get("item", kwargs.get("product"))
    track(
        request,
        "cart",
        item,
        user=kwargs.get("user"),
        quantity=kwargs.get("quantity", 1),
        price=kwargs.get("price"),
        source="signal",
    )


def on_purchase(sender: Any, order: Any = None, request: Any = None, **kwargs: Any) -> None:
    """One purchase event per order line; ids derived from the order make a resend harmless."""
    if order is None:
        return
    try:
        adapter = get_adapter()
        user = adapter.order_user(order) if request is None else None
        for line in adapter.order_lines(order):
            track(
                request,
                "purchase",
                line.item,
                user=user,
                price=line.price,
                quantity=line.quantity,
                client_event_id=f"purchase:{order.pk}:{adapter.item_id(line.item)}",
                source="signal",
            )
    except Exception:
        logger.exception("Could not read the lines of an order; the checkout is unaffected.")


RECEIVERS = {"cart": on_cart, "purchase": on_purchase}


def connect_configured_signals() -> list[str]:
    """Connect a receiver to each signal in settings; returns the import strings connected."""
    connected = []
    for path, event in app_settings.SIGNALS.items():
        try:
            signal = import_string(path)
        except ImportError:
            continue  # reported by the system check recommendations.E005
        if isinstance(signal, Signal) and event in RECEIVERS:
            signal.connect(RECEIVERS[event], weak=False, dispatch_uid=f"recommendations:{path}")
            connected.append(path)
    return connected


def merge_visitor_into_user(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """On login, the anonymous visitor's history becomes the user's.

    The link is kept, so events of this visitor still on their way (queued in Celery,
    buffered in this request) are attached when they are written.
    """
    try:
        session_key = read_visitor(request)
        if session_key:
            link_visitor(session_key, user)
    except Exception:
        logger.exception("Could not merge an anonymous visitor's events into the signed-in user.")


def start_new_visitor_at_logout(sender: Any, request: Any, **kwargs: Any) -> None:
    """Whoever browses next on this browser is somebody new (a shared computer, say)."""
    if request is not None:
        start_new_visitor(request)


def link_visitor(session_key: str, user: Any) -> int:
    """An anonymous visitor or device becomes ``user`` (an authenticated step: a login, or an
    app's signed-in request to link its device); returns the events that moved."""
    if not session_key or user is None or user.pk is None:
        return 0
    with transaction.atomic():
        lock_visitors(connections[router.db_for_write(Event)], {session_key})  # see write_events
        VisitorLink.objects.update_or_create(session_key=session_key, defaults={"user": user})
        moved = Event.objects.filter(session_key=session_key, user__isnull=True).update(user=user)
    visitor_linked.send_robust(sender=link_visitor, session_key=session_key, user_id=user.pk)
    return moved


def connect() -> None:
    user_logged_in.connect(merge_visitor_into_user, dispatch_uid="recommendations:merge_visitor")
    user_logged_out.connect(start_new_visitor_at_logout, dispatch_uid="recommendations:new_visitor")
    connect_configured_signals()
