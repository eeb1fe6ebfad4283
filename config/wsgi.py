"""WSGI entry point (gunicorn config.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from django.conf import settings  # noqa: E402  (after Django is set up)

if getattr(settings, "CELERY_INPROCESS_WORKER", False):
    from .celery import start_inprocess_worker

    start_inprocess_worker()
