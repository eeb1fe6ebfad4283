"""Serving's Celery tasks: keep trending and popular fresh in the cache; estimate a version on
logged traffic (``celery`` extra)."""

from __future__ import annotations

from celery import shared_task

from .popularity import refresh_rankings as refresh


@shared_task(name="recommendations.refresh_rankings", ignore_result=True, expires=600)
def refresh_rankings() -> None:
    """Recompute trending and popular into the cache (beat, every few minutes), so that no
    shopper's request pays for them when their cache entry expires."""
    refresh()


@shared_task(name="recommendations.estimate_off_policy", ignore_result=True)
def estimate_off_policy(version_id: int) -> None:
    """A version's click-through on the logged lists (``off_policy.estimate_version``): one
    scoring per logged list, so a worker does it, never the admin's request."""
    from ..models import ModelVersion
    from .off_policy import estimate_version

    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is not None:
        estimate_version(version)
