"""Every Celery task of the app, for a worker's ``autodiscover_tasks()``.

Each stage keeps its own tasks beside the code they call; this module only gathers them
under the app's name. Task names (``recommendations.retrain`` ...) are what beat schedules
and queues refer to, and they do not change when a module moves. Needs the ``celery`` extra.
"""

from .capture.tasks import purge_expired_events, record_events
from .lifecycle.tasks import experiment_outcomes, retrain
from .queueing import send
from .serving.tasks import estimate_off_policy, refresh_rankings
from .suggest.tasks import rebuild_suggestions

__all__ = [
    "estimate_off_policy",
    "experiment_outcomes",
    "purge_expired_events",
    "rebuild_suggestions",
    "record_events",
    "refresh_rankings",
    "retrain",
    "send",
]
