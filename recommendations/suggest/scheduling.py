"""New searches reach the suggestions soon: one rebuild queued a little after them.

Listens to capture's ``events_recorded`` (and to ``shopper_forgotten``: an erased shopper's
searches leave the statistics); capture does not know that suggestions exist.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.core.cache import cache
from django.dispatch import receiver

from .. import extras
from ..conf import app_settings
from ..models import EventType
from ..queueing import send
from ..records import EventRecord
from ..signals import events_recorded, shopper_forgotten

logger = logging.getLogger(__name__)
PENDING_KEY = "recommendations:suggest-rebuild-pending"


def schedule_rebuild() -> bool:
    """Queue one rebuild ``REBUILD_DELAY`` seconds from now, unless one is already queued.

    Searches arriving meanwhile join that rebuild. Without the ``celery`` extra nothing is
    queued: run ``manage.py recommendations_rebuild_suggestions`` from cron instead.
    """
    if not extras.is_installed("celery"):
        return False
    delay = int(app_settings.SUGGEST["REBUILD_DELAY"])
    if not cache.add(PENDING_KEY, 1, max(delay, 1)):
        return False
    from .tasks import rebuild_suggestions  # Celery loads only where the extra is installed

    send(rebuild_suggestions, countdown=delay, retry=False)
    return True


@receiver(shopper_forgotten, dispatch_uid="recommendations.suggest.rebuild_after_erasure")
def on_shopper_forgotten(sender: Any, **kwargs: Any) -> None:
    """Erasure: the shopper's searches leave the statistics at the next rebuild, queued now."""
    schedule_rebuild()


@receiver(events_recorded, dispatch_uid="recommendations.suggest.schedule_rebuild")
def on_events_recorded(sender: Any, records: Sequence[EventRecord], **kwargs: Any) -> None:
    if any(record.event_type == EventType.SEARCH for record in records):
        schedule_rebuild()
