"""WSGI entry point (gunicorn config.wsgi)."""

import os

# One BLAS thread per web worker (set before numpy is imported): scoring a request is one
# small matrix product, and several workers each spinning a thread per core slow each other
# down (measured: 2.1x the for-you throughput under gunicorn with 2 workers; BENCHMARKS.md).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

from django.core.wsgi import get_wsgi_application  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from django.conf import settings  # noqa: E402  (after Django is set up)

if getattr(settings, "CELERY_INPROCESS_WORKER", False):
    from .celery import start_inprocess_worker

    start_inprocess_worker()
