"""Settings of the demo shop.

Defaults are safe for production: DEBUG off, the secret key, hosts and HTTPS settings from
the environment (``manage.py check --deploy`` is clean with ``DJANGO_SECRET_KEY`` and
``DJANGO_ALLOWED_HOSTS`` set). ``make demo`` turns DEBUG on explicitly (``DJANGO_DEBUG=1``),
and with DEBUG on a random key is kept in ``var/secret-key``, never a public one.
The demo's stack is SQLite and in-process Celery; environment variables switch to the real one:
``POSTGRES_DB`` (with ``POSTGRES_HOST``, ``POSTGRES_PORT``, ``POSTGRES_USER``) selects
PostgreSQL, ``CELERY_BROKER_URL`` a real broker and worker.
"""

import os
import secrets
from pathlib import Path

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.lower() in {"1", "true", "yes", "on"}


def local_secret_key() -> str:
    """A random key for this checkout (DEBUG only), made once and kept in ``var/secret-key``."""
    path = BASE_DIR / "var" / "secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or (local_secret_key() if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "Set DJANGO_SECRET_KEY (DEBUG is off). For the local demo use `make demo`, which sets DJANGO_DEBUG=1."
    )
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "recommendations",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "recommendations.capture.middleware.EventMiddleware",
]

# HTTPS in production (DEBUG off); each can be turned off from the environment, e.g. behind
# a proxy that terminates TLS (then set DJANGO_SECURE_PROXY_SSL_HEADER=1 too).
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", 31_536_000))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.context_processors.shop",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

if os.environ.get("POSTGRES_DB"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["POSTGRES_DB"],
            "USER": os.environ.get("POSTGRES_USER", "postgres"),
            "PASSWORD": os.environ.get("POSTGRES_PASSWORD", ""),
            "HOST": os.environ.get("POSTGRES_HOST", "127.0.0.1"),
            "PORT": os.environ.get("POSTGRES_PORT", "5432"),
            "CONN_MAX_AGE": int(os.environ.get("POSTGRES_CONN_MAX_AGE", "60")),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            # A page view and a background write may meet; wait instead of failing.
            "OPTIONS": {"timeout": 20},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT", BASE_DIR / "var" / "media"))
MEDIA_URL = "media/"

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "shop:home"
LOGOUT_REDIRECT_URL = "shop:home"

# Celery: a real broker and worker when CELERY_BROKER_URL is set; otherwise (the demo) an
# in-memory broker and one worker thread inside the web process (config/wsgi.py starts it).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "memory://")
CELERY_INPROCESS_WORKER = CELERY_BROKER_URL == "memory://"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# A page must never hang on a dead broker: fail fast, the recorder falls back to the database.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The app's tasks on their queues (RECOMMENDATIONS["CELERY_QUEUES"]), beat's included.
CELERY_TASK_ROUTES = ["recommendations.queueing.route"]
# Celery beat (`celery -A config beat`): retrain every night; the task trains at most one
# version at a time and activates it only when it beats the active one on later data.
CELERY_BEAT_SCHEDULE = {
    "recommendations-retrain-nightly": {
        "task": "recommendations.retrain",
        "schedule": crontab(hour=3, minute=15),
    },
    # Searches also schedule a rebuild a minute later; this catches catalogue changes.
    "recommendations-suggestions-hourly": {
        "task": "recommendations.rebuild_suggestions",
        "schedule": crontab(minute=40),
    },
    # Trending and popular, recomputed off the request path; keep the interval below
    # RECOMMENDATIONS["POPULARITY_CACHE_SECONDS"] x 2 (the task caches them that long).
    "recommendations-rankings": {
        "task": "recommendations.refresh_rankings",
        "schedule": 240.0,
    },
    # A/B tests: each running experiment's figures, verdict and stopping rules, hourly.
    "recommendations-experiments-hourly": {
        "task": "recommendations.experiment_outcomes",
        "schedule": crontab(minute=20),
    },
    # Deletes events older than RECOMMENDATIONS["RETENTION_DAYS"] (nothing while it is None).
    "recommendations-retention-daily": {
        "task": "recommendations.purge_expired_events",
        "schedule": crontab(hour=4, minute=5),
    },
}

# The mobile API: session (browser) and token (app) authentication, OpenAPI 3 schema.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Recommendations API",
    "DESCRIPTION": "Recommendations for the signed-in user or an anonymous device (X-Device-Id), "
    "and a batch endpoint for the app's events.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI files are served from this site (drf-spectacular-sidecar), not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

RECOMMENDATIONS = {
    # With a real broker, events go through Celery; the one-process demo writes them directly.
    "RECORDER": os.environ.get(
        "RECOMMENDATIONS_RECORDER",
        "recommendations.capture.recorders.DatabaseRecorder"
        if CELERY_INPROCESS_WORKER
        else "recommendations.capture.recorders.CeleryRecorder",
    ),
    # With a real broker, event batches and trainings have queues of their own, one worker each:
    #   celery -A config worker -Q recommendations-events,celery
    #   celery -A config worker -Q recommendations-training --concurrency 1
    "CELERY_QUEUES": {}
    if CELERY_INPROCESS_WORKER
    else {"events": "recommendations-events", "training": "recommendations-training"},
    "CATALOGUE_ADAPTER": "shop.adapters.ShopCatalogueAdapter",
    "TRACKED_URLS": {
        "shop:product": {"event": "view", "item_kwarg": "pk"},
        "shop:category": {"event": "category_view", "category_kwarg": "slug"},
        "shop:search": {"event": "search", "query_param": "q"},
    },
    "SIGNALS": {
        "shop.signals.product_added_to_cart": "cart",
        "shop.signals.order_placed": "purchase",
    },
    # The demo's log is from October 2019 and its shoppers browse today: windows counted back
    # from the newest event would drop the log as soon as someone clicks, so the demo keeps it
    # all (a live shop keeps the defaults: the last 180 days, a 30-day half-life).
    "TRAINING_WINDOW_DAYS": None,
    "SUGGEST": {"WINDOW_DAYS": None, "HALF_LIFE_DAYS": 3650.0},
    # The demo's slice has 139 purchases and no pair of products bought together by two
    # shoppers: one shopper's basket is evidence here. A live shop keeps the default, 2, so
    # one fake basket moves nothing.
    "BOUGHT_TOGETHER_MIN_SHOPPERS": 1,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "recommendations": {
            "handlers": ["console"],
            "level": os.environ.get("RECOMMENDATIONS_LOG_LEVEL", "INFO"),
        },
    },
}
