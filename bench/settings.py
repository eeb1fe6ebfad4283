"""Settings of the benchmark suite (``python -m bench``): the demo shop on its own PostgreSQL database.

Based on the project's settings, with what a benchmark needs: a dedicated database
``recommendations_bench`` (created and migrated by ``bench.common.setup_django``), DEBUG off so
Django keeps no query log, persistent connections, a real Celery broker (Redis db 14) with a
worker started by the suite, and quiet logging. The Celery worker the suite starts reads these
settings too.
"""

import os

# Built on the demo's configuration (plain HTTP on loopback, this checkout's random key), then
# DEBUG off below.
os.environ.setdefault("DJANGO_DEBUG", "1")

from config.settings import *  # noqa: F403
from config.settings import RECOMMENDATIONS

DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("RECOMMENDATIONS_BENCH_DB", "recommendations_bench"),
        "USER": os.environ.get("POSTGRES_USER", "postgres"),
        "PASSWORD": os.environ.get("POSTGRES_PASSWORD", ""),
        "HOST": os.environ.get("POSTGRES_HOST", "127.0.0.1"),
        "PORT": os.environ.get("POSTGRES_PORT", "5432"),
        "CONN_MAX_AGE": 600,
    }
}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

CELERY_BROKER_URL = os.environ.get("RECOMMENDATIONS_BENCH_BROKER", "redis://127.0.0.1:6379/14")
CELERY_TASK_ALWAYS_EAGER = False
CELERY_INPROCESS_WORKER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

RECOMMENDATIONS = {
    **RECOMMENDATIONS,
    "RECORDER": "recommendations.capture.recorders.CeleryRecorder",
    "CELERY_QUEUE": os.environ.get("RECOMMENDATIONS_BENCH_QUEUE", "recommendations-bench"),
    "CELERY_QUEUES": {"events": None, "training": None},
    # The load runs are thousands of simulated shoppers from 127.0.0.1: the network limits
    # would flag nearly all of them. `bench abuse` measures those limits with them on.
    "VIGILANCE": {"NETWORK_NEW_SHOPPERS_PER_HOUR": None, "NETWORK_EVENTS_PER_MINUTE": None},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "ERROR"},
    "loggers": {
        "recommendations": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "django": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}

#: Django's cache in Redis, one store for every process (the serving suite's servers use it).
SHARED_CACHES = {
    "default": {
        "BACKEND": "recommendations.cache.RedisCache",
        "LOCATION": os.environ.get("RECOMMENDATIONS_BENCH_REDIS", "redis://127.0.0.1:6379/13"),
        "KEY_PREFIX": "bench-serving",
    }
}
