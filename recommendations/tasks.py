"""Celery tasks: thin wrappers that reload what they need and call the app's modules.

Needs the ``celery`` extra; the core app never imports this module unless the Celery
recorder (or a Celery worker's autodiscovery) asks for it.
"""

from __future__ import annotations

import logging
import random

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from .conf import app_settings
from .recorders import EventRecord, note_dropped, write_events

logger = logging.getLogger(__name__)


def send(task, *args, **options):
    """Queue ``task`` on the app's queue (``RECOMMENDATIONS["CELERY_QUEUE"]``, else Celery's default)."""
    if app_settings.CELERY_QUEUE:
        options.setdefault("queue", app_settings.CELERY_QUEUE)
    return task.apply_async(args=list(args), **options)


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
        return write_events([EventRecord.from_json(item) for item in payload])
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


@shared_task(name="recommendations.retrain", acks_late=True, ignore_result=True)
def retrain(version_id: int | None = None) -> int | None:
    """Train a model version (the one given, or a new one); returns its id.

    Safe to run twice: a version that is no longer training is left alone, and without an
    id a new version is created only when no other training holds the lock.
    """
    from . import registry

    if version_id is None:
        version, created = registry.request_training()
        if not created:
            return None
        version_id = version.pk
    return registry.train_version(version_id).pk


@shared_task(name="recommendations.rebuild_suggestions", acks_late=True, ignore_result=True)
def rebuild_suggestions() -> int:
    """Rebuild the search suggestions from the search log and the catalogue (idempotent)."""
    from .suggest.stats import rebuild

    return rebuild()


@shared_task(name="recommendations.purge_expired_events", ignore_result=True)
def purge_expired_events() -> int:
    """Delete events older than ``RETENTION_DAYS`` (run daily by beat)."""
    from .privacy import purge_expired_events as purge

    return purge()


@shared_task(name="recommendations.refresh_rankings", ignore_result=True, expires=600)
def refresh_rankings() -> None:
    """Recompute trending and popular into the cache (beat, every few minutes), so that no
    shopper's request pays for them when their cache entry expires."""
    from .serving.popularity import refresh_rankings as refresh

    refresh()
