"""Celery tasks: thin wrappers that reload what they need and call the app's modules.

Needs the ``celery`` extra; the core app never imports this module unless the Celery
recorder (or a Celery worker's autodiscovery) asks for it.
"""

from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError

from .conf import app_settings
from .recorders import EventRecord, write_events


def send(task, *args, **options):
    """Queue ``task`` on the app's queue (``RECOMMENDATIONS["CELERY_QUEUE"]``, else Celery's default)."""
    if app_settings.CELERY_QUEUE:
        options.setdefault("queue", app_settings.CELERY_QUEUE)
    return task.apply_async(args=list(args), **options)


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
