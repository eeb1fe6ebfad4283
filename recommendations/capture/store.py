"""The one place that inserts event rows, and the count of events given up on.

Every recorder ends in ``store_events``, in this process or in a Celery worker: it writes a
batch with ``write_events`` and, when the database refuses the batch for its data (not for
being away), splits it until the refused records are found, quarantines them
(``QuarantinedEvent``, shown in the admin) and stores the rest, so one bad record never
stalls the events behind it. Events that could not be kept (a full buffer, a database down
past the retries) are counted in the dropped-events metric the event admin shows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from django.core.cache import cache
from django.db import DatabaseError, InterfaceError, OperationalError, connections, router, transaction
from django.utils import timezone

from ..conf import app_settings
from ..keys import DROPPED_EVENTS
from ..models import Event, QuarantinedEvent, VisitorLink
from ..records import EventRecord

logger = logging.getLogger(__name__)


def note_dropped(count: int, reason: str) -> None:
    """Count events given up on (buffer full, database down past the retries) and log it.

    The count lives in the cache, the one store a web process and a worker share while the
    database is away; with a per-process cache each process counts its own.
    """
    logger.error("Dropped %d events: %s.", count, reason)
    try:
        now = timezone.now().isoformat()
        seen = cache.get(DROPPED_EVENTS) or {"count": 0, "first": now}
        cache.set(
            DROPPED_EVENTS,
            {"count": seen["count"] + count, "first": seen["first"], "last": now, "reason": reason},
            None,
        )
    except Exception:  # a metric must never cost the caller its work
        logger.exception("Could not update the dropped-events metric.")


def dropped_events() -> dict | None:
    """``{"count", "first", "last", "reason"}`` of the events dropped so far, or None."""
    try:
        return cache.get(DROPPED_EVENTS)
    except Exception:
        return None


def reset_dropped_events() -> None:
    cache.delete(DROPPED_EVENTS)


def store_events(records: Sequence[EventRecord]) -> int:
    """Write ``records``; records the database refuses are quarantined and the rest stored.

    A database that cannot be reached (``OperationalError``, ``InterfaceError``) raises, so
    the caller keeps the batch and retries it. Returns the number of records stored.
    """
    try:
        return write_events(records)
    except (OperationalError, InterfaceError):
        raise
    except (DatabaseError, OverflowError, TypeError, ValueError) as exc:
        if len(records) == 1:
            _quarantine(records[0], exc)
            return 0
        middle = len(records) // 2
        return store_events(records[:middle]) + store_events(records[middle:])


def _quarantine(record: EventRecord, exc: Exception) -> None:
    error = f"{type(exc).__name__}: {exc}"[:500]
    try:
        QuarantinedEvent.objects.create(error=error, payload=record.to_json())
        logger.error("An event the database refuses was quarantined (%s).", type(exc).__name__)
    except Exception:
        note_dropped(1, f"the database refuses it ({type(exc).__name__}) and it could not be quarantined")


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
    ("scenario", "text"), ("model_version", "integer"), ("experiment_id", "integer"), ("arm", "text"),
    ("list_id", "text"), ("position", "smallint"), ("shown", "jsonb"), ("client_event_id", "text"),
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
                if values["shown"] is not None:
                    values["shown"] = json.dumps(values["shown"])  # text, cast to jsonb by the array type
                for column, (name, _) in zip(columns, UNNEST_COLUMNS, strict=True):
                    column.append(values[name])
            cursor.execute(sql, columns)
