"""The suggestion index of this process: built from ``SearchQuery`` rows, rebuilt when they change.

Like the model loader: one cache read every ``CHECK_INTERVAL`` seconds; when a rebuild has
published a new version, one thread builds the new index while the others keep answering
from the old one, and the swap is one assignment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Max

from ..conf import app_settings
from ..models import BlockedQuery, SearchQuery
from .index import Entry, SuggestionIndex
from .moderation import why_not_suggested

logger = logging.getLogger(__name__)
VERSION_KEY = "recommendations:suggest-version"


def _stored_version() -> str:
    state = SearchQuery.objects.aggregate(last=Max("id"), n=Count("id"))
    blocked = BlockedQuery.objects.aggregate(last=Max("id"), n=Count("id"))
    return f"{state['last'] or 0}:{state['n']}:{blocked['last'] or 0}:{blocked['n']}"


def publish() -> None:
    """Tell every process that the rows changed (called after a rebuild)."""
    cache.set(VERSION_KEY, _stored_version(), None)


def entries(rows: Iterable[Any], blocked: Iterable[str] = ()) -> Iterator[Entry]:
    """``index.Entry`` values of the ``SearchQuery`` rows that may be suggested (``moderation``)."""
    blocked = frozenset(blocked)
    for row in rows:
        if why_not_suggested(row, blocked) is not None:
            continue
        yield Entry(
            key=row.key,
            text=row.text,
            score=row.score,
            categories=dict(row.categories or {}),
            related=tuple(row.related or ()),
            source=row.source,
        )


class _Holder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.index: SuggestionIndex | None = None
        self.version: str | None = None
        self.checked_at = float("-inf")

    def reset(self) -> None:
        with self.lock:
            self.index, self.version, self.checked_at = None, None, float("-inf")

    def get(self) -> SuggestionIndex:
        interval = float(app_settings.SUGGEST["CHECK_INTERVAL"])
        if self.index is not None and time.monotonic() - self.checked_at < interval:
            return self.index
        if not self.lock.acquire(blocking=self.index is None):
            return self.index
        try:
            if self.index is None or time.monotonic() - self.checked_at >= interval:
                self._refresh(interval)
            return self.index
        finally:
            self.lock.release()

    def _refresh(self, interval: float) -> None:
        version = cache.get(VERSION_KEY)
        if version is None:
            version = _stored_version()
            cache.set(VERSION_KEY, version, interval)
        self.checked_at = time.monotonic()
        if version == self.version and self.index is not None:
            return
        started = time.perf_counter()
        blocked = BlockedQuery.objects.values_list("key", flat=True)
        index = SuggestionIndex(entries(SearchQuery.objects.all().iterator(chunk_size=5000), blocked))
        self.index, self.version = index, version
        logger.info(
            "Suggestion index: %d queries, built in %.2f s.", len(index), time.perf_counter() - started
        )


_holder = _Holder()


def current_index() -> SuggestionIndex:
    return _holder.get()


def reset() -> None:
    _holder.reset()
