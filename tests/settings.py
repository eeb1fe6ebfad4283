"""Settings for the test suite: PostgreSQL by default, SQLite with RECOMMENDATIONS_TEST_DB=sqlite.

A Celery worker started by the tests uses these settings too; it is pointed at the test
database by RECOMMENDATIONS_WORKER_DB_NAME.
"""

import os

# The tests run the demo's configuration (DEBUG on: no HTTPS redirects for the test client and
# the servers it starts, a random key of this checkout); pytest-django turns DEBUG off in-process.
os.environ.setdefault("DJANGO_DEBUG", "1")

from config.settings import *  # noqa: F403
from config.settings import RECOMMENDATIONS

TEST_DB = os.environ.get("RECOMMENDATIONS_TEST_DB", "postgres")

if TEST_DB == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("RECOMMENDATIONS_WORKER_DB_NAME", "recommendations"),
            "USER": os.environ.get("POSTGRES_USER", "postgres"),
            "PASSWORD": os.environ.get("POSTGRES_PASSWORD", ""),
            "HOST": os.environ.get("POSTGRES_HOST", "127.0.0.1"),
            "PORT": os.environ.get("POSTGRES_PORT", "5432"),
            "TEST": {"NAME": "test_recommendations"},
        }
    }
elif TEST_DB == "sqlite":
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
else:
    raise ValueError(f"RECOMMENDATIONS_TEST_DB must be 'postgres' or 'sqlite', not {TEST_DB!r}")

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Tests that need a worker start a real one on this broker; nothing runs eagerly.
CELERY_BROKER_URL = os.environ.get("RECOMMENDATIONS_TEST_BROKER", "redis://127.0.0.1:6379/15")
CELERY_TASK_ALWAYS_EAGER = False
CELERY_INPROCESS_WORKER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

RECOMMENDATIONS = {
    **RECOMMENDATIONS,
    # A server started by a fault test may ask for the Celery recorder.
    "RECORDER": os.environ.get(
        "RECOMMENDATIONS_TEST_RECORDER", "recommendations.capture.recorders.DatabaseRecorder"
    ),
    # Tests see each request's events at once; the background batching has its own tests.
    "FLUSH_INTERVAL": float(os.environ.get("RECOMMENDATIONS_TEST_FLUSH_INTERVAL", "0")),
    "CELERY_QUEUE": os.environ.get("RECOMMENDATIONS_TEST_QUEUE", "recommendations-tests"),
    # Every task on CELERY_QUEUE (the routing test sets queues of its own).
    "CELERY_QUEUES": {"events": None, "training": None},
    # Tests of ranking plant a search or two per query; the thresholds that keep anyone's
    # single search out of everyone's suggestions are tested on their own (tests/test_trust.py).
    "SUGGEST": {"MIN_SEARCHES": 1, "MIN_SHOPPERS": 1},
    # The app's default, not the demo's (which lowers it for its small slice).
    "BOUGHT_TOGETHER_MIN_SHOPPERS": 2,
    # Every test client comes from 127.0.0.1 and many plant dozens of shoppers a second: the
    # burst and network limits are tested on their own (tests/test_trust.py).
    "VIGILANCE": {
        "SHOPPER_EVENTS_PER_MINUTE": None,
        "NETWORK_NEW_SHOPPERS_PER_HOUR": None,
        "NETWORK_EVENTS_PER_MINUTE": None,
        "SETTLE_SECONDS": None,  # the tests' shoppers are all seconds old
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"recommendations": {"level": "DEBUG", "propagate": True}},
}
