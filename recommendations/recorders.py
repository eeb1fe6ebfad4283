"""Write events: in bulk to the database, or through Celery; never lose one.

Tracking code builds ``EventRecord`` values (plain, JSON-safe) and hands them to the
recorder chosen by ``RECOMMENDATIONS["RECORDER"]``. ``write_events`` is the one place that
inserts rows; every recorder ends there, in this process or in a Celery worker.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from django.db import transaction
from django.utils.dateparse import parse_datetime

from .conf import app_settings
from .models import Event, VisitorLink

logger = logging.getLogger(__name__)


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
    client_event_id: str | None = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
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
        values = dataclasses.asdict(self)
        values["user_id"] = self.user_id if self.user_id is not None else user_id
        return Event(**values)


def write_events(records: Sequence[EventRecord]) -> int:
    """Insert ``records`` in bulk; a record whose ``client_event_id`` is known is skipped.

    Anonymous records of a visitor that has since signed in are attached to that user.
    Returns the number of records handed to the database.
    """
    if not records:
        return 0
    anonymous_keys = {r.session_key for r in records if r.user_id is None and r.session_key}
    linked = (
        dict(VisitorLink.objects.filter(session_key__in=anonymous_keys).values_list("session_key", "user_id"))
        if anonymous_keys
        else {}
    )
    rows = [record.to_model(linked.get(record.session_key)) for record in records]
    Event.objects.bulk_create(rows, batch_size=app_settings.BULK_BATCH_SIZE, ignore_conflicts=True)
    return len(rows)


class BaseRecorder(ABC):
    """Where events go. Subclass and name yours in ``RECOMMENDATIONS["RECORDER"]``."""

    @abstractmethod
    def record(self, records: Sequence[EventRecord]) -> None:
        """Persist ``records`` (all of them, or log loudly why not)."""


class DatabaseRecorder(BaseRecorder):
    """Bulk-insert in this process: one INSERT per request, after the response is sent."""

    def record(self, records: Sequence[EventRecord]) -> None:
        write_events(records)


class CeleryRecorder(BaseRecorder):
    """Enqueue the events for a worker once the current transaction commits.

    If the broker cannot take them, they are written to the database right here: a dead
    Redis costs one INSERT, not the events.
    """

    def __init__(self) -> None:
        from . import extras

        extras.require("celery")
        from . import tasks

        self.tasks = tasks

    def record(self, records: Sequence[EventRecord]) -> None:
        records = list(records)
        if records:
            transaction.on_commit(lambda: self.send(records))

    def send(self, records: list[EventRecord]) -> None:
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
