"""Write events: in bulk to the database, or through Celery; never lose one.

Tracking code builds ``EventRecord`` values (plain, JSON-safe) and hands them to the
recorder chosen by ``RECOMMENDATIONS["RECORDER"]``. ``write_events`` is the one place that
inserts rows; every recorder ends there, in this process or in a Celery worker.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.core.cache import cache
from django.db import connections, router, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .conf import app_settings
from .models import Event, VisitorLink

logger = logging.getLogger(__name__)

#: Cache key of the dropped-events metric (count, first and last time), shown in the admin.
DROPPED_EVENTS_KEY = "recommendations:dropped-events"


def note_dropped(count: int, reason: str) -> None:
    """Count events given up on (buffer full, database down past the retries) and log it.

    The count lives in the cache, the one store a web process and a worker share while the
    database is away; with a per-process cache each process counts its own.
    """
    logger.error("Dropped %d events: %s.", count, reason)
    try:
        now = timezone.now().isoformat()
        seen = cache.get(DROPPED_EVENTS_KEY) or {"count": 0, "first": now}
        cache.set(
            DROPPED_EVENTS_KEY,
            {"count": seen["count"] + count, "first": seen["first"], "last": now, "reason": reason},
            None,
        )
    except Exception:  # a metric must never cost the caller its work
        logger.exception("Could not update the dropped-events metric.")


def dropped_events() -> dict | None:
    """``{"count", "first", "last", "reason"}`` of the events dropped so far, or None."""
    try:
        return cache.get(DROPPED_EVENTS_KEY)
    except Exception:
        return None


def reset_dropped_events() -> None:
    cache.delete(DROPPED_EVENTS_KEY)


@dataclasses.dataclass(frozen=True, slots=True)
class EventRecord:
    """One event on its way to the store; ``to_json``/``from_json`` carry it through Celery."""

    event_type: str
    timestamp: datetime
    user_id: int | None = None
    session_key: str = ""
    external_user_id: str = ""
    item_id: str = ""
    category_id: str = ""
    query: str = ""
    result_count: int | None = None
    price: Decimal | None = None
    quantity: int | None = None
    source: str = ""
    scenario: str = ""
    model_version: int | None = None
    client_event_id: str | None = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)

    def values(self) -> dict:
        """Field -> value, without the deep copy of ``dataclasses.asdict`` (the bulk path's hot spot)."""
        return {name: getattr(self, name) for name in FIELD_NAMES}

    def to_json(self) -> dict:
        data = self.values()
        data["timestamp"] = self.timestamp.isoformat()
        data["price"] = None if self.price is None else str(self.price)
        return data

    @classmethod
    def from_json(cls, data: dict) -> EventRecord:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in fields}
        timestamp = parse_datetime(values["timestamp"])
        if timestamp is None:
            raise ValueError(f"bad timestamp {values['timestamp']!r}")
        values["timestamp"] = timestamp
        if values.get("price") is not None:
            values["price"] = Decimal(values["price"])
        return cls(**values)

    def to_model(self, user_id: int | None = None) -> Event:
        values = self.values()
        values["user_id"] = self.user_id if self.user_id is not None else user_id
        return Event(**values)


FIELD_NAMES = tuple(field.name for field in dataclasses.fields(EventRecord))


def write_events(records: Sequence[EventRecord]) -> int:
    """Insert ``records`` in bulk; a record whose ``client_event_id`` is known is skipped.

    Anonymous records of a visitor that has since signed in are attached to that user.
    Returns the number of records handed to the database.
    """
    if not records:
        return 0
    anonymous_keys = {r.session_key for r in records if r.user_id is None and r.session_key}
    alias = router.db_for_write(Event)
    connection = connections[alias]
    with transaction.atomic(using=alias):
        # A login (merge_visitor_into_user) of one of these visitors either finishes before we
        # read the links, or waits until our rows are committed and then attaches them.
        lock_visitors(connection, anonymous_keys)
        linked = (
            dict(
                VisitorLink.objects.using(alias)
                .filter(session_key__in=anonymous_keys)
                .values_list("session_key", "user_id")
            )
            if anonymous_keys
            else {}
        )
        if connection.vendor == "postgresql":
            _insert_with_unnest(connection, records, linked)
        else:
            rows = [record.to_model(linked.get(record.session_key)) for record in records]
            Event.objects.using(alias).bulk_create(
                rows, batch_size=app_settings.BULK_BATCH_SIZE, ignore_conflicts=True
            )
    return len(records)


def lock_visitors(connection: Any, session_keys: set[str]) -> None:
    """Transaction-scoped PostgreSQL advisory locks on these visitor ids, in one sorted order
    (no deadlock between writers). Other databases serialize writes already."""
    if connection.vendor != "postgresql" or not session_keys:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(key) FROM "
            "(SELECT DISTINCT hashtextextended(k, 0) AS key FROM unnest(%s::text[]) AS k ORDER BY 1) AS keys",
            [sorted(session_keys)],
        )


#: Columns of the PostgreSQL fast path and their array types.
UNNEST_COLUMNS = (
    ("timestamp", "timestamptz"), ("event_type", "text"), ("user_id", "bigint"), ("session_key", "text"),
    ("external_user_id", "text"), ("item_id", "text"), ("category_id", "text"), ("query", "text"),
    ("result_count", "integer"), ("price", "numeric"), ("quantity", "integer"), ("source", "text"),
    ("scenario", "text"), ("model_version", "integer"), ("client_event_id", "text"),
)  # fmt: skip


def _insert_with_unnest(connection: Any, records: Sequence[EventRecord], linked: dict[str, int]) -> None:
    """One ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING`` per batch.

    Same rows as ``bulk_create(ignore_conflicts=True)``, without building a model instance
    and preparing every field of every row in Python: several times the rate on PostgreSQL.
    """
    table = connection.ops.quote_name(Event._meta.db_table)
    names = ", ".join(connection.ops.quote_name(name) for name, _ in UNNEST_COLUMNS)
    arrays = ", ".join(f"%s::{kind}[]" for _, kind in UNNEST_COLUMNS)
    sql = f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING"  # noqa: S608
    size = app_settings.BULK_BATCH_SIZE
    with connection.cursor() as cursor:
        for start in range(0, len(records), size):
            chunk = records[start : start + size]
            columns: list[list[Any]] = [[] for _ in UNNEST_COLUMNS]
            for record in chunk:
                values = record.values()
                if values["user_id"] is None:
                    values["user_id"] = linked.get(record.session_key)
                for column, (name, _) in zip(columns, UNNEST_COLUMNS, strict=True):
                    column.append(values[name])
            cursor.execute(sql, columns)


class Batcher:
    """Collects the events of every request of this process; a background thread hands them
    to ``sink`` in bulk, every ``interval`` seconds or as soon as ``size`` are waiting.

    A page then pays for appending to a list, not for an INSERT or a broker round trip, and
    a worker stores hundreds of events per task instead of one. A failed write is retried
    at the next tick (up to ``max_pending`` events are held; beyond that they are dropped
    and counted, see ``note_dropped``). Pending events are written when the process exits.
    """

    def __init__(
        self, sink: Callable[[list[EventRecord]], None], interval: float, size: int, max_pending: int
    ) -> None:
        self.sink, self.interval, self.size, self.max_pending = sink, interval, size, max_pending
        self.lock = threading.Lock()
        self.wakeup = threading.Event()
        self.pending: list[EventRecord] = []
        self.dropped = 0
        self.thread: threading.Thread | None = None
        self.pid: int | None = None

    def add(self, records: Sequence[EventRecord]) -> None:
        with self.lock:
            room = max(self.max_pending - len(self.pending), 0)
            lost = max(len(records) - room, 0)
            self.dropped += lost
            self.pending.extend(records[:room])
            if len(self.pending) >= self.size:
                self.wakeup.set()
        if lost:
            note_dropped(lost, f"the event buffer of process {os.getpid()} is full")
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self.thread is not None and self.thread.is_alive() and self.pid == os.getpid():
            return
        with self.lock:
            if self.thread is not None and self.thread.is_alive() and self.pid == os.getpid():
                return
            if self.pid is None:
                atexit.register(self.flush)
            self.pid = os.getpid()  # after a fork the parent's thread is gone: start ours
            self.thread = threading.Thread(target=self._run, name="recommendations-events", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while True:
            self.wakeup.wait(self.interval)
            self.wakeup.clear()
            self.flush()

    def flush(self) -> None:
        """Write everything pending now (also called at exit and by tests)."""
        with self.lock:
            batch, self.pending = self.pending, []
        if not batch:
            return
        try:
            for start in range(0, len(batch), self.size):
                try:
                    self.sink(batch[start : start + self.size])
                except Exception:
                    logger.exception(
                        "Could not write %d events; they are kept and retried.", len(batch) - start
                    )
                    with self.lock:
                        self.pending[:0] = batch[start:][: self.max_pending]
                    return
        finally:
            if threading.current_thread() is self.thread:
                connections.close_all()  # this thread's own connection: no idle session held between ticks


class BaseRecorder(ABC):
    """Where events go. Subclass, implement ``write``, and name yours in ``RECORDER``.

    With ``FLUSH_INTERVAL`` > 0 events go to a background ``Batcher`` once the transaction
    that produced them commits. With 0 they are written at once: in the caller's transaction
    (so they roll back with it), or after it commits when ``after_commit`` is set.
    """

    after_commit = False

    def __init__(self) -> None:
        self.batcher = Batcher(
            self.write, app_settings.FLUSH_INTERVAL, app_settings.FLUSH_SIZE, app_settings.MAX_PENDING_EVENTS
        )

    @abstractmethod
    def write(self, records: list[EventRecord]) -> None:
        """Persist ``records`` now (all of them, or raise)."""

    def record(self, records: Sequence[EventRecord]) -> None:
        records = list(records)
        if not records:
            return
        if app_settings.FLUSH_INTERVAL > 0:
            transaction.on_commit(lambda: self.batcher.add(records))
        elif self.after_commit:
            transaction.on_commit(lambda: self.write(records))
        else:
            self.write(records)


class DatabaseRecorder(BaseRecorder):
    """Bulk INSERTs from this process."""

    def write(self, records: list[EventRecord]) -> None:
        write_events(records)


class CeleryRecorder(BaseRecorder):
    """One Celery message per batch; a worker bulk-inserts it.

    If the broker cannot take a batch, it is written to the database right here: a dead
    Redis costs one INSERT, not the events.
    """

    after_commit = True

    def __init__(self) -> None:
        from . import extras

        extras.require("celery")
        from . import tasks

        self.tasks = tasks
        super().__init__()

    def write(self, records: list[EventRecord]) -> None:
        try:
            self.tasks.send(self.tasks.record_events, [r.to_json() for r in records], retry=False)
        except Exception as exc:  # the broker is down or refuses: keep the events anyway
            logger.warning(
                "Event broker unreachable (%s); writing %d events to the database instead.",
                type(exc).__name__,
                len(records),
            )
            write_events(records)


@lru_cache(maxsize=1)
def get_recorder() -> BaseRecorder:
    return app_settings.get_class("RECORDER")()
