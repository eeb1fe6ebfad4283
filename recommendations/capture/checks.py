"""Capture's system checks: the middleware, the recorder, tracked URLs, signals, numbers.

Ids are shared with the kernel's ``checks`` (one sequence, stable): W001, E002 ... E006, E014.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.dispatch import Signal
from django.urls import get_resolver
from django.utils.module_loading import import_string

from .. import extras
from ..conf import app_settings
from ..models import ITEM_EVENTS, EventType
from .recorders import BaseRecorder, CeleryRecorder

MIDDLEWARE_PATH = "recommendations.capture.middleware.EventMiddleware"
#: The path before the capture package (a deprecation shim still serves it).
OLD_MIDDLEWARE_PATH = "recommendations.middleware.EventMiddleware"
NEEDED_BEFORE = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
)


@register(Tags.compatibility)
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list:
    middleware = [MIDDLEWARE_PATH if m == OLD_MIDDLEWARE_PATH else m for m in settings.MIDDLEWARE]
    if MIDDLEWARE_PATH not in middleware:
        return [
            Warning(
                "EventMiddleware is not installed: product views, category views and searches "
                "are not recorded, and track() writes each event at once.",
                hint=f"Add '{MIDDLEWARE_PATH}' to MIDDLEWARE after AuthenticationMiddleware.",
                id="recommendations.W001",
            )
        ]
    position = middleware.index(MIDDLEWARE_PATH)
    misplaced = [m for m in NEEDED_BEFORE if m not in middleware[:position]]
    if misplaced:
        return [
            Error(
                f"EventMiddleware must come after {', '.join(misplaced)}.",
                hint="It needs request.session and request.user to know who the shopper is.",
                id="recommendations.E002",
            )
        ]
    return []


@register(Tags.compatibility)
def check_import_strings(app_configs: Any = None, **kwargs: Any) -> list:
    errors = []
    expected = {"RECORDER": BaseRecorder, "CATALOGUE_ADAPTER": None, "CONSENT_CHECK": None}
    for name, base in expected.items():
        path = getattr(app_settings, name)
        if path is None and name == "CONSENT_CHECK":
            continue
        try:
            obj = import_string(path)
        except (ImportError, TypeError, ValueError) as exc:
            errors.append(
                Error(
                    f"RECOMMENDATIONS['{name}'] = {path!r} cannot be imported ({exc}).",
                    hint="Use a dotted path to an existing class or callable.",
                    id="recommendations.E003",
                )
            )
            continue
        if base is not None and not (isinstance(obj, type) and issubclass(obj, base)):
            errors.append(
                Error(
                    f"RECOMMENDATIONS['{name}'] = {path!r} is not a subclass of {base.__name__}.",
                    id="recommendations.E003",
                )
            )
    try:
        recorder = app_settings.get_class("RECORDER")
    except (ImportError, TypeError, ValueError):
        recorder = None  # reported above
    celery_recorder = isinstance(recorder, type) and issubclass(recorder, CeleryRecorder)
    if celery_recorder and not extras.is_installed("celery"):
        errors.append(
            Error(
                "The Celery recorder is configured but Celery is not installed.",
                hint=f'pip install "{extras.PACKAGE}[celery]", or use the DatabaseRecorder.',
                id="recommendations.E006",
            )
        )
    return errors


def url_name_exists(view_name: str) -> bool:
    """Whether ``namespace:name`` names a URL pattern (without needing its arguments)."""
    *namespaces, name = view_name.split(":")
    resolver = get_resolver()
    for namespace in namespaces:
        if namespace not in resolver.namespace_dict:
            return False
        resolver = resolver.namespace_dict[namespace][1]
    return name in resolver.reverse_dict


@register(Tags.urls)
def check_tracked_urls(app_configs: Any = None, **kwargs: Any) -> list:
    errors = []
    rules = app_settings.TRACKED_URLS
    if not isinstance(rules, dict):
        return [Error("RECOMMENDATIONS['TRACKED_URLS'] must be a dict.", id="recommendations.E004")]
    for view_name, rule in rules.items():
        problem = None
        if not isinstance(rule, dict) or rule.get("event") not in EventType.values:
            problem = f"needs an 'event', one of {', '.join(EventType.values)}"
        elif rule["event"] in ITEM_EVENTS and not (rule.get("item_kwarg") or rule.get("item_param")):
            problem = "needs 'item_kwarg' or 'item_param' to know the item"
        elif rule["event"] == EventType.SEARCH and not rule.get("query_param"):
            problem = "needs 'query_param' to know the query"
        elif rule["event"] == EventType.CATEGORY_VIEW and not (
            rule.get("category_kwarg") or rule.get("category_param")
        ):
            problem = "needs 'category_kwarg' or 'category_param' to know the category"
        elif not url_name_exists(view_name):
            problem = "does not resolve to any URL pattern"
        if problem:
            errors.append(
                Error(
                    f"RECOMMENDATIONS['TRACKED_URLS'][{view_name!r}] {problem}.",
                    hint="Keys are URL names as used with reverse(), such as 'shop:product'.",
                    id="recommendations.E004",
                )
            )
    return errors


@register(Tags.signals)
def check_signals(app_configs: Any = None, **kwargs: Any) -> list:
    errors = []
    for path, event in app_settings.SIGNALS.items():
        try:
            signal = import_string(path)
        except ImportError as exc:
            signal, reason = None, f"cannot be imported ({exc})"
        else:
            reason = None if isinstance(signal, Signal) else "is not a django.dispatch.Signal"
        if reason is None and event not in ("cart", "purchase"):
            reason = f"maps to {event!r}; expected 'cart' or 'purchase'"
        if reason:
            errors.append(Error(f"RECOMMENDATIONS['SIGNALS'][{path!r}] {reason}.", id="recommendations.E005"))
    return errors


#: Capture settings that must be whole numbers, and their least value.
CAPTURE_COUNTS = {
    "FLUSH_SIZE": 1,
    "MAX_PENDING_EVENTS": 0,
    "MAX_EVENTS_PER_REQUEST": 1,
    "EVENT_WRITE_RETRIES": 0,
    "CLIENT_CLOCK_SKEW_SECONDS": 0,
    "CLIENT_MAX_EVENT_AGE_SECONDS": 1,
    "CLICK_MAX_AGE_SECONDS": 1,
}


@register(Tags.compatibility)
def check_capture_numbers(app_configs: Any = None, **kwargs: Any) -> list:
    errors = []
    for name, least in CAPTURE_COUNTS.items():
        value = getattr(app_settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            errors.append(
                Error(
                    f"RECOMMENDATIONS[{name!r}] must be a whole number >= {least}.", id="recommendations.E014"
                )
            )
    interval = app_settings.FLUSH_INTERVAL
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 0:
        errors.append(
            Error(
                "RECOMMENDATIONS['FLUSH_INTERVAL'] must be a number of seconds >= 0.",
                hint="0 writes each request's events at the end of that request.",
                id="recommendations.E014",
            )
        )
    batch, per_request = app_settings.API_MAX_BATCH_EVENTS, app_settings.MAX_EVENTS_PER_REQUEST
    if (
        all(isinstance(v, int) and not isinstance(v, bool) for v in (batch, per_request))
        and batch > per_request
    ):
        errors.append(
            Error(
                f"RECOMMENDATIONS['API_MAX_BATCH_EVENTS'] ({batch}) exceeds MAX_EVENTS_PER_REQUEST ({per_request}).",
                hint="An API batch is one request: its events beyond MAX_EVENTS_PER_REQUEST would be dropped.",
                id="recommendations.E014",
            )
        )
    return errors
