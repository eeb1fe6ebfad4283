"""Capture's Celery tasks: store a batch of events sent by ``CeleryRecorder``; retention.

Needs the ``celery`` extra; imported only by the Celery recorder and by a worker (through
``recommendations.tasks``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from ..conf import app_settings
from ..queueing import send
from ..records import EventRecord
from .privacy import purge_expired_events as purge
from .store import note_dropped, store_events

logger = logging.getLogger(__name__)


class EventTask(Task):
    """Counts a batch of events as dropped when its task fails for good."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        payload = args[0] if args else kwargs.get("payload", [])
        note_dropped(len(payload), f"a worker could not store them ({type(exc).__name__})")


@shared_task(
    bind=True, base=EventTask, name="recommendations.record_events", acks_late=True, ignore_result=True
)
def record_events(self, payload: list[dict]) -> int:
    """Bulk-insert a batch of events sent by ``CeleryRecorder``.

    Safe to run twice: every event carries a ``client_event_id``, and known ids are skipped.
    While the database is unreachable the batch waits in the broker and is retried with
    backoff (``EVENT_WRITE_RETRIES``); a batch given up on is counted as dropped.
    """
    try:
        return store_events([EventRecord.from_json(item) for item in payload])
    except (OperationalError, InterfaceError) as exc:
        attempt, allowed = self.request.retries, app_settings.EVENT_WRITE_RETRIES
        if attempt >= allowed:
            raise
        countdown = random.uniform(0.5, 1.0) * min(2**attempt, 60)  # jitter: workers do not retry in step
        logger.warning(
            "Could not store %d events (%s); retry %d of %d in %.0f s.",
            len(payload),
            type(exc).__name__,
            attempt + 1,
            allowed,
            countdown,
        )
        raise self.retry(exc=exc, countdown=countdown, max_retries=allowed) from exc


def send_events(records: Sequence[EventRecord]) -> None:
    """Queue one batch for ``record_events`` (raises when the broker cannot take it)."""
    send(record_events, [record.to_json() for record in records], retry=False)


@shared_task(name="recommendations.purge_expired_events", ignore_result=True)
def purge_expired_events() -> int:
    """Delete events older than ``RETENTION_DAYS`` (run daily by beat)."""
    return purge()
