"""Serving's Celery task: keep trending and popular fresh in the cache (``celery`` extra)."""

from __future__ import annotations

from celery import shared_task

from .popularity import refresh_rankings as refresh


@shared_task(name="recommendations.refresh_rankings", ignore_result=True, expires=600)
def refresh_rankings() -> None:
    """Recompute trending and popular into the cache (beat, every few minutes), so that no
    shopper's request pays for them when their cache entry expires."""
    refresh()
