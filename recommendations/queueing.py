"""Sending Celery tasks on the app's queue (``RECOMMENDATIONS["CELERY_QUEUE"]``).

Takes a task object, so this module itself needs no Celery; each stage's ``tasks`` module
(which does) passes its own tasks here.
"""

from __future__ import annotations

from typing import Any

from .conf import app_settings


def send(task: Any, *args: Any, **options: Any) -> Any:
    """Queue ``task`` on the app's queue, else Celery's default."""
    if app_settings.CELERY_QUEUE:
        options.setdefault("queue", app_settings.CELERY_QUEUE)
    return task.apply_async(args=list(args), **options)
