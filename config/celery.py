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
