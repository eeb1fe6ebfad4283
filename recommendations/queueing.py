"""Sending Celery tasks on the app's queues: each kind of task on its own.

Event batches arrive from every web server and must be stored within seconds; a training
runs for minutes or hours. On one queue a batch waits behind a training (a worker takes
one task at a time), so ``RECOMMENDATIONS["CELERY_QUEUES"]`` names a queue per kind:
``events`` (``recommendations.record_events``) and ``training`` (``recommendations.retrain``,
``recommendations.estimate_off_policy``); every other task, and a kind without a queue,
goes to ``CELERY_QUEUE`` (else Celery's default). Run a worker per queue. ``route`` is the
same rule as a Celery router, so that tasks sent by beat follow it too::

    CELERY_TASK_ROUTES = ["recommendations.queueing.route"]

Takes a task object, so this module itself needs no Celery; each stage's ``tasks`` module
(which does) passes its own tasks here.
"""

from __future__ import annotations

from typing import Any

from .conf import app_settings

#: The kind of each task with a queue of its own (``CELERY_QUEUES``).
KINDS = {
    "recommendations.record_events": "events",
    "recommendations.retrain": "training",
    "recommendations.estimate_off_policy": "training",
}


def queue_for(task_name: str) -> str | None:
    """The queue of a task of this name: its kind's, else ``CELERY_QUEUE`` (None: Celery's default)."""
    kind = KINDS.get(task_name)
    queues = app_settings.CELERY_QUEUES or {}
    return (queues.get(kind) if kind else None) or app_settings.CELERY_QUEUE or None


def route(name: str, args: Any = None, kwargs: Any = None, options: Any = None, task: Any = None, **kw: Any):
    """A Celery router (``task_routes``): the app's tasks on their queues, others untouched."""
    if not name.startswith("recommendations."):
        return None
    queue = queue_for(name)
    return {"queue": queue} if queue else None


def send(task: Any, *args: Any, **options: Any) -> Any:
    """Queue ``task`` on its queue (see the module docstring)."""
    queue = queue_for(task.name)
    if queue:
        options.setdefault("queue", queue)
    return task.apply_async(args=list(args), **options)
