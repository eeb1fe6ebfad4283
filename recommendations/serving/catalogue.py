"""Catalogue objects for the lists, kept a short while in each process: no query per page.

Every list ends in ``rules.finalize``, which needs the live objects of its candidates
(only items of the adapter's ``item_queryset`` may be shown, and they are shown with
their name, price and link); reasons need the names of history items. Reading them on
every request put one or two catalogue queries on every page. Here each process keeps
what it loaded, each entry ``ITEM_CACHE_SECONDS`` at most (``ITEM_CACHE_SIZE`` entries),
an item that is not there (sold out, hidden) remembered as such.

A change reaches every process within ``CHECK_SECONDS``: ``catalogue_changed(ids)`` —
called by the item model's ``post_save``/``post_delete`` (connected in ``apps.ready``),
and by a shop after a bulk update that sends no signals — appends the ids to a short
change log in Django's cache; each process reads the log's head (one cache read) at most
every ``CHECK_SECONDS`` and drops the entries it names, or everything when it fell too
far behind. With a per-process cache (LocMemCache) only that process hears of a change;
the others see it within ``ITEM_CACHE_SECONDS``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from django.core.cache import cache

from ..adapters import get_adapter
from ..conf import app_settings

__all__ = ["catalogue_changed"]

logger = logging.getLogger(__name__)

CHANGES_HEAD = "recommendations:catalogue:changes"
CHANGE_PREFIX = "recommendations:catalogue:change:"
#: How far a process may fall behind the change log before it drops all it keeps.
CHANGE_LOG = 500
CHANGE_SECONDS = 600
CHECK_SECONDS = 1.0
#: Stands for "no such item" (a sold-out or unknown id costs no query the next time).
MISSING = object()


def catalogue_changed(item_ids: Iterable[Any] | None = None) -> None:
    """Items changed (price, stock, name; ``None``: any number of them): every process drops
    what it keeps of them before its next list. Fails open: at worst entries age out."""
    ids = None if item_ids is None else sorted({str(item_id) for item_id in item_ids})
    try:
        cache.add(CHANGES_HEAD, 0, None)
        head = cache.incr(CHANGES_HEAD)
        cache.set(CHANGE_PREFIX + str(head), ids, CHANGE_SECONDS)
    except Exception:  # the cache is down: other processes' entries age out within their seconds
        logger.warning("Could not log a catalogue change in the cache.", exc_info=True)
    for kept in KEPT:
        kept.drop(ids)  # this process at once, whatever its cache


class _ChangeLog:
    """Where this process is in the shared change log."""

    def __init__(self) -> None:
        self.head: int | None = None
        self.checked = 0.0

    def catch_up(self) -> None:
        now = time.monotonic()
        if now - self.checked < CHECK_SECONDS:
            return
        self.checked = now
        try:
            head = cache.get(CHANGES_HEAD)
            if head is None or head == self.head:
                self.head = head if head is not None else self.head
                return
            seen, self.head = self.head, head
            if seen is None or head - seen > CHANGE_LOG or head < seen:  # where it was is unknown
                dropped: list[str] | None = None
            else:
                logged = cache.get_many([CHANGE_PREFIX + str(n) for n in range(seen + 1, head + 1)])
                entries = [logged.get(CHANGE_PREFIX + str(n), MISSING) for n in range(seen + 1, head + 1)]
                if any(entry is MISSING or entry is None for entry in entries):
                    dropped = None  # a change of unknown items, or one that expired
                else:
                    dropped = [item_id for entry in entries for item_id in entry]
        except Exception:  # fails open: entries age out
            return
        for kept in KEPT:
            kept.drop(dropped)

    def reset(self) -> None:
        self.head, self.checked = None, 0.0


changes = _ChangeLog()


class Kept:
    """Values of items loaded by ``load(ids)``, kept per process (bounded, least recently
    used out first, each for at most ``seconds``). Without ``load``, each ``get`` passes its own."""

    def __init__(self, load: Callable[[set[str]], dict[str, Any]] | None = None) -> None:
        self.load = load
        self.entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self.lock = threading.Lock()

    def get(
        self, item_ids: Iterable[Any], load: Callable[[set[str]], dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """``{id: value}`` of those ids that are items (one query for those not kept);
        ``load`` those not kept in place of the usual loader."""
        wanted = {str(item_id) for item_id in item_ids}
        load = load or self.load
        seconds = float(app_settings.ITEM_CACHE_SECONDS)
        if not seconds:
            return load(wanted)
        changes.catch_up()
        now = time.monotonic()
        found: dict[str, Any] = {}
        with self.lock:
            for item_id in wanted:
                hit = self.entries.get(item_id)
                if hit is not None and hit[0] > now:
                    found[item_id] = hit[1]
                    self.entries.move_to_end(item_id)
        missing = wanted - set(found)
        if missing:
            loaded = load(missing)
            fresh = {item_id: loaded.get(item_id, MISSING) for item_id in missing}
            size = int(app_settings.ITEM_CACHE_SIZE)
            with self.lock:
                for item_id, value in fresh.items():
                    self.entries[item_id] = (now + seconds, value)
                    self.entries.move_to_end(item_id)
                while len(self.entries) > size:
                    self.entries.popitem(last=False)
            found.update(fresh)
        return {item_id: value for item_id, value in found.items() if value is not MISSING}

    def drop(self, item_ids: Iterable[str] | None) -> None:
        with self.lock:
            if item_ids is None:
                self.entries.clear()
            else:
                for item_id in item_ids:
                    self.entries.pop(item_id, None)

    def clear(self) -> None:
        self.drop(None)


def _live(item_ids: set[str]) -> dict[str, Any]:
    return get_adapter().items_by_id(item_ids)


def _any(item_ids: set[str]) -> dict[str, Any]:
    return get_adapter().items_by_id(item_ids, available_only=False)


#: Items that may be recommended now (the adapter's ``item_queryset``), as catalogue objects.
live_items = Kept(_live)
#: Every item, recommendable or not (the item a list is about, names in reasons and the admin).
all_items = Kept(_any)


class _Displays:
    """``adapter.display`` of live items, kept and dropped with them: a product's link is a
    ``reverse()`` of its URL pattern (about 20 µs, ten a list, the same every time). Kept per
    language and script prefix, the request state a link may depend on."""

    def __init__(self) -> None:
        self.by_context: dict[tuple[str | None, str], Kept] = {}
        self.lock = threading.Lock()

    def get(self, items: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """``{id: display}`` of ``items`` (id -> live catalogue object)."""
        from django.urls import get_script_prefix
        from django.utils.translation import get_language

        context = (get_language(), get_script_prefix())
        kept = self.by_context.get(context)
        if kept is None:
            with self.lock:
                kept = self.by_context.setdefault(context, Kept())
        adapter = get_adapter()
        return kept.get(items, lambda ids: {item_id: adapter.display(items[item_id]) for item_id in ids})

    def drop(self, item_ids: Iterable[str] | None) -> None:
        with self.lock:
            contexts = list(self.by_context.values())
        for kept in contexts:
            kept.drop(item_ids)

    def clear(self) -> None:
        with self.lock:
            self.by_context.clear()


#: What a list shows of each live item (name, link, price, image).
live_displays = _Displays()
KEPT = (live_items, all_items, live_displays)


class _Names:
    def get(self, item_ids: Iterable[Any]) -> dict[str, str]:
        """``{id: name}`` of those ids that are items, on sale or not."""
        return {item_id: str(item) for item_id, item in all_items.get(item_ids).items()}

    def clear(self) -> None:
        all_items.clear()


item_names = _Names()


_connected: list[Any] = []  # the item model whose signals are connected, if any


def connect_item_signals() -> None:
    """Hear ``post_save``/``post_delete`` of the adapter's item model, and of no other model.

    Connected with the model as sender: a receiver of every model's ``post_delete`` would
    cost every bulk delete in the project Django's fast path (one statement) and make it
    load each row first. Called by ``apps.ready`` and again whenever the settings change.
    """
    from django.db.models.signals import post_delete, post_save

    for model in _connected:
        post_save.disconnect(on_item_saved, sender=model, dispatch_uid="recommendations.catalogue.saved")
        post_delete.disconnect(on_item_saved, sender=model, dispatch_uid="recommendations.catalogue.deleted")
    _connected.clear()
    try:
        model = get_adapter().item_queryset().model
    except Exception:  # no item model configured: nothing to hear
        return
    post_save.connect(on_item_saved, sender=model, dispatch_uid="recommendations.catalogue.saved")
    post_delete.connect(on_item_saved, sender=model, dispatch_uid="recommendations.catalogue.deleted")
    _connected.append(model)


def on_item_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    """``post_save``/``post_delete`` of the item model: the change reaches every process
    (see the module docstring)."""
    catalogue_changed([get_adapter().item_id(instance)])


def reset() -> None:
    """Forget everything kept (tests; after settings change)."""
    for kept in KEPT:
        kept.clear()
    changes.reset()


app_settings.on_reload(reset)
app_settings.on_reload(connect_item_signals)
