"""The suggestions' Celery task: rebuild the statistics and the index (``celery`` extra)."""

from __future__ import annotations

from celery import shared_task

from .stats import rebuild


@shared_task(name="recommendations.rebuild_suggestions", acks_late=True, ignore_result=True)
def rebuild_suggestions() -> int:
    """Rebuild the search suggestions from the search log and the catalogue (idempotent)."""
    return rebuild()
