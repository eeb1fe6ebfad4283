"""``EventRecord``: one validated event on its way to the ``Event`` table.

Capture builds records (``capture.ingress``, the importers), recorders write them, serving
and suggestions hear of them through the ``events_recorded`` signal. Plain and JSON-safe,
so a batch travels through Celery as it is.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from decimal import Decimal

from django.utils.dateparse import parse_datetime

from .models import Event


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
    experiment_id: int | None = None
    arm: str = ""
    list_id: str = ""
    position: int | None = None
    shown: dict | None = None
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
