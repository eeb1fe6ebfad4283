"""System checks: misconfiguration is reported at start-up, with a hint that fixes it.

Ids are stable: recommendations.E001 ... E014 and W001 ... W002.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.dispatch import Signal
from django.urls import get_resolver
from django.utils.module_loading import import_string

from . import extras
from .conf import DEFAULTS, app_settings
from .models import ITEM_EVENTS, EventType
from .recorders import BaseRecorder

MIDDLEWARE_PATH = "recommendations.middleware.EventMiddleware"
NEEDED_BEFORE = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
)


@register(Tags.compatibility)
def check_settings_dict(app_configs: Any = None, **kwargs: Any) -> list:
    value = getattr(settings, "RECOMMENDATIONS", {})
    if not isinstance(value, dict):
        return [Error("RECOMMENDATIONS must be a dict.", id="recommendations.E007")]
    unknown = sorted(set(value) - set(DEFAULTS))
    if unknown:
        return [
            Warning(
                f"Unknown RECOMMENDATIONS keys: {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                id="recommendations.W002",
            )
        ]
    return []


@register(Tags.compatibility)
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list:
    middleware = list(settings.MIDDLEWARE)
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
    celery_recorder = app_settings.RECORDER == "recommendations.recorders.CeleryRecorder"
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


@register(Tags.compatibility)
def check_training(app_configs: Any = None, **kwargs: Any) -> list:
    errors = []
    if app_settings.TRAINING_ENABLED and not extras.is_installed("ml"):
        errors.append(
            Error(
                "Training is enabled but the machine-learning packages are not installed.",
                hint=f'pip install "{extras.PACKAGE}[ml]", or set RECOMMENDATIONS["TRAINING_ENABLED"] = False.',
                id="recommendations.E008",
            )
        )
    variant, _, metric = str(app_settings.PROMOTION_METRIC).partition(":")
    if variant not in ("all", "new") or metric.split("@")[0] not in (
        "hr",
        "mrr",
        "ndcg",
        "coverage",
        "novelty",
    ):
        errors.append(
            Error(
                f"RECOMMENDATIONS['PROMOTION_METRIC'] = {app_settings.PROMOTION_METRIC!r} is not a metric.",
                hint="Use 'variant:metric@k' with variant all or new, e.g. 'new:mrr@20'.",
                id="recommendations.E009",
            )
        )
    elif metric.partition("@")[2] != str(app_settings.EVALUATION_K):
        errors.append(
            Error(
                f"PROMOTION_METRIC {app_settings.PROMOTION_METRIC!r} uses a k other than EVALUATION_K "
                f"({app_settings.EVALUATION_K}).",
                id="recommendations.E009",
            )
        )
    if app_settings.ARTIFACT_STORAGE not in settings.STORAGES:
        errors.append(
            Error(
                f"RECOMMENDATIONS['ARTIFACT_STORAGE'] = {app_settings.ARTIFACT_STORAGE!r} is not in STORAGES.",
                id="recommendations.E010",
            )
        )
    if not 0 <= float(app_settings.HOLDOUT_FRACTION) < 1:
        errors.append(
            Error("RECOMMENDATIONS['HOLDOUT_FRACTION'] must be in [0, 1).", id="recommendations.E011")
        )
    return errors


def _serving_problems() -> list[str]:
    problems = []
    s = app_settings
    if s.ITEM_MODEL is not None:
        from django.apps import apps

        try:
            apps.get_model(str(s.ITEM_MODEL))
        except (LookupError, ValueError):
            problems.append(f"ITEM_MODEL {s.ITEM_MODEL!r} is not an installed model ('app_label.ModelName')")
    for name in ("DEFAULT_LIMIT", "MAX_LIMIT", "HISTORY_EVENTS", "API_MAX_BATCH_EVENTS"):
        value = getattr(s, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{name} must be a positive integer, not {value!r}")
    if isinstance(s.DEFAULT_LIMIT, int) and isinstance(s.MAX_LIMIT, int) and s.DEFAULT_LIMIT > s.MAX_LIMIT:
        problems.append("DEFAULT_LIMIT must not exceed MAX_LIMIT")
    cap = s.MAX_PER_CATEGORY
    if cap is not None and (not isinstance(cap, int) or cap < 1):
        problems.append(f"MAX_PER_CATEGORY must be None or a positive integer, not {cap!r}")
    if not isinstance(s.HIDE_ITEMS, (list, tuple, set, frozenset)):
        problems.append("HIDE_ITEMS must be a list of item ids")
    if not isinstance(s.PIN_ITEMS, dict) or not all(
        isinstance(v, (list, tuple)) for v in s.PIN_ITEMS.values()
    ):
        problems.append("PIN_ITEMS must map a scenario to a list of item ids")
    if not isinstance(s.BOOST, dict):
        problems.append("BOOST must be a dict")
    else:
        for key, factor in s.BOOST.items():
            kind, _, value = str(key).partition(":")
            if kind not in ("item", "category") or not value:
                problems.append(f"BOOST key {key!r} must be 'item:<id>' or 'category:<id>'")
            if not isinstance(factor, (int, float)) or isinstance(factor, bool) or factor <= 0:
                problems.append(f"BOOST[{key!r}] must be a positive number, not {factor!r}")
    sponsored = s.SPONSORED
    if not isinstance(sponsored, dict) or set(sponsored) - {"ITEMS", "POSITION", "MIN_PROBABILITY"}:
        problems.append("SPONSORED must be a dict with keys ITEMS, POSITION, MIN_PROBABILITY")
    else:
        if not isinstance(sponsored.get("ITEMS", []), (list, tuple)):
            problems.append("SPONSORED['ITEMS'] must be a list of item ids")
        if not isinstance(sponsored.get("POSITION", 0), int) or sponsored.get("POSITION", 0) < 0:
            problems.append("SPONSORED['POSITION'] must be a non-negative integer")
        if not isinstance(sponsored.get("MIN_PROBABILITY", 1.0), (int, float)):
            problems.append("SPONSORED['MIN_PROBABILITY'] must be a number")
    for name in ("MODEL_CHECK_INTERVAL", "TRENDING_DAYS", "TRENDING_HALF_LIFE_HOURS"):
        value = getattr(s, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            problems.append(f"{name} must be a positive number, not {value!r}")
    for name in ("POPULARITY_CACHE_SECONDS", "RESPONSE_CACHE_SECONDS"):
        value = getattr(s, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            problems.append(f"{name} must be a number of seconds, not {value!r}")
    rates = s.API_THROTTLE_RATES
    if not isinstance(rates, dict):
        problems.append("API_THROTTLE_RATES must be a dict like {'events': '120/minute'}")
    else:
        for scope, rate in rates.items():
            if rate is not None and not (
                isinstance(rate, str)
                and rate.partition("/")[0].isdigit()
                and rate.partition("/")[2][:1] in ("s", "m", "h", "d")
            ):
                problems.append(f"API_THROTTLE_RATES[{scope!r}] = {rate!r} is not like '120/minute'")
    if not 0 <= float(s.SIMILAR_EMBEDDING_WEIGHT) <= 1:
        problems.append("SIMILAR_EMBEDDING_WEIGHT must be between 0 and 1")
    return problems


@register(Tags.compatibility)
def check_serving(app_configs: Any = None, **kwargs: Any) -> list:
    return [
        Error(f"RECOMMENDATIONS: {problem}.", id="recommendations.E012") for problem in _serving_problems()
    ]


@register(Tags.compatibility)
def check_suggest(app_configs: Any = None, **kwargs: Any) -> list:
    value = app_settings.SUGGEST
    if not isinstance(value, dict):
        return [Error("RECOMMENDATIONS['SUGGEST'] must be a dict.", id="recommendations.E013")]
    errors = []
    unknown = sorted(set(value) - set(DEFAULTS["SUGGEST"]))
    if unknown:
        errors.append(
            Error(
                f"RECOMMENDATIONS['SUGGEST'] has unknown keys: {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS['SUGGEST']))}.",
                id="recommendations.E013",
            )
        )
    for key in DEFAULTS["SUGGEST"]:
        number = value.get(key)
        if key == "WINDOW_DAYS" and number is None:
            continue
        if not isinstance(number, (int, float)) or isinstance(number, bool) or number < 0:
            errors.append(
                Error(
                    f"RECOMMENDATIONS['SUGGEST'][{key!r}] must be a non-negative number, not {number!r}.",
                    id="recommendations.E013",
                )
            )
        elif key in ("LIMIT", "CANDIDATES", "HALF_LIFE_DAYS", "CHECK_INTERVAL") and number == 0:
            errors.append(
                Error(f"RECOMMENDATIONS['SUGGEST'][{key!r}] must be positive.", id="recommendations.E013")
            )
    return errors


#: Capture settings that must be whole numbers, and their least value.
CAPTURE_COUNTS = {
    "FLUSH_SIZE": 1,
    "MAX_PENDING_EVENTS": 0,
    "MAX_EVENTS_PER_REQUEST": 1,
    "EVENT_WRITE_RETRIES": 0,
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
    return errors
