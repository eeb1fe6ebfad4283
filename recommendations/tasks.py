"""Celery tasks: thin wrappers that reload what they need and call the app's modules.

Needs the ``celery`` extra; the core app never imports this module unless the Celery
recorder (or a Celery worker's autodiscovery) asks for it.
"""

from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError

from .recorders import EventRecord, write_events


@shared_task(
    name="recommendations.record_events",
    acks_late=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    max_retries=8,
    ignore_result=True,
)
def record_events(payload: list[dict]) -> int:
    """Bulk-insert a batch of events sent by ``CeleryRecorder``.

    Safe to run twice: every event carries a ``client_event_id``, and known ids are skipped.
    """
    return write_events([EventRecord.from_json(item) for item in payload])
