"""The lifecycle's Celery tasks: train a model version, read experiments (needs the ``celery`` extra)."""

from __future__ import annotations

from celery import shared_task

from . import experiments, registry


@shared_task(name="recommendations.retrain", acks_late=True, ignore_result=True)
def retrain(version_id: int | None = None) -> int | None:
    """Train a model version (the one given, or a new one); returns its id.

    Safe to run twice: a version that is no longer training is left alone, and without an
    id a new version is created only when no other training holds the lock.
    """
    if version_id is None:
        version, created = registry.request_training()
        if not created:
            return None
        version_id = version.pk
    return registry.train_version(version_id).pk


@shared_task(name="recommendations.experiment_outcomes", ignore_result=True)
def experiment_outcomes() -> int:
    """Compute every running experiment's figures of the day and apply its stopping rules."""
    return experiments.update_running()
