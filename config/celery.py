"""The demo's Celery app: configured from Django settings (``CELERY_*``), tasks auto-discovered.

Without ``CELERY_BROKER_URL`` the demo runs tasks in-process (eager), so nothing but
Python is needed; with it, a real worker on Redis does the work.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def start_inprocess_worker() -> None:
    """Run one Celery worker in a daemon thread of this process (the demo's "in-process Celery").

    With the in-memory broker only this process's tasks reach it, so nothing but Python is
    needed, and a retrain queued from the admin runs in the background like on a real worker.
    """
    import threading

    from celery.worker import WorkController

    worker = WorkController(
        app=app,
        hostname="demo@in-process",
        pool="solo",
        concurrency=1,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="INFO",
    )
    threading.Thread(target=worker.start, name="celery-in-process", daemon=True).start()
