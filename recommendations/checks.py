"""System checks: misconfiguration is reported at start-up, with a hint that fixes it.

Ids are stable: recommendations.E001 ... E016 and W001 ... W002. Capture's own checks
(middleware, recorder, tracked URLs, signals, capture numbers) are in ``capture/checks.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from . import extras
from .conf import DEFAULTS, app_settings


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


#: Keys that were published (this demo's old default) and so sign nothing.
PUBLIC_SECRET_KEYS = frozenset({"demo-only-insecure-key-change-me"})


@register(Tags.security)
def check_signing_key(app_configs: Any = None, **kwargs: Any) -> list:
    """Click links (and sessions) are signed with SECRET_KEY: a public key lets anyone forge them."""
    key = str(getattr(settings, "SECRET_KEY", "") or "")
    if key in PUBLIC_SECRET_KEYS or len(key) < 32 or len(set(key)) < 5:
        return [
            Error(
                "SECRET_KEY is public or weak: anyone could sign click links and forge events with it.",
                hint="Set a long random SECRET_KEY from the environment (python -c "
                "'import secrets; print(secrets.token_urlsafe(50))').",
                id="recommendations.E015",
            )
        ]
    return []


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
    if app_settings.LOCAL_MODEL_FOLDER is not None and not isinstance(
        app_settings.LOCAL_MODEL_FOLDER, str | Path
    ):
        errors.append(
            Error(
                "RECOMMENDATIONS['LOCAL_MODEL_FOLDER'] must be a path (a string) or None.",
                id="recommendations.E010",
                hint="A folder on the web server's own disk, e.g. '/var/cache/shop-models'.",
            )
        )
    above = app_settings.APPROXIMATE_ABOVE
    if above is not None and (not isinstance(above, int) or isinstance(above, bool) or above < 0):
        errors.append(
            Error(
                "RECOMMENDATIONS['APPROXIMATE_ABOVE'] must be a whole number of items ≥ 0 or None.",
                id="recommendations.E011",
            )
        )
    if not 0 <= float(app_settings.HOLDOUT_FRACTION) < 1:
        errors.append(
            Error("RECOMMENDATIONS['HOLDOUT_FRACTION'] must be in [0, 1).", id="recommendations.E011")
        )
    min_cases = app_settings.PROMOTION_MIN_CASES
    if (
        not isinstance(min_cases, int)
        or isinstance(min_cases, bool)
        or min_cases < 0
        or not isinstance(app_settings.REFIT_ON_ALL_EVENTS, bool)
    ):
        errors.append(
            Error(
                "RECOMMENDATIONS['PROMOTION_MIN_CASES'] must be a whole number ≥ 0 and "
                "RECOMMENDATIONS['REFIT_ON_ALL_EVENTS'] True or False.",
                id="recommendations.E011",
            )
        )
    if not 0 < float(app_settings.HOLDOUT_MAX_SHOPPER_SHARE) <= 1:
        errors.append(
            Error(
                "RECOMMENDATIONS['HOLDOUT_MAX_SHOPPER_SHARE'] must be in (0, 1].", id="recommendations.E011"
            )
        )
    most = app_settings.HOLDOUT_MAX_SHOPPERS
    if most is not None and (not isinstance(most, int) or isinstance(most, bool) or most < 1):
        errors.append(
            Error(
                "RECOMMENDATIONS['HOLDOUT_MAX_SHOPPERS'] must be a whole number ≥ 1 or None.",
                id="recommendations.E011",
            )
        )
    return errors


def _serving_problems() -> list[str]:
    problems = []
    s = app_settings
    if s.ITEM_MODEL is not None:
        try:
            apps.get_model(str(s.ITEM_MODEL))
        except (LookupError, ValueError):
            problems.append(f"ITEM_MODEL {s.ITEM_MODEL!r} is not an installed model ('app_label.ModelName')")
    for name in ("DEFAULT_LIMIT", "MAX_LIMIT", "HISTORY_EVENTS", "API_MAX_BATCH_EVENTS", "ITEM_CACHE_SIZE"):
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
    for name in (
        "POPULARITY_CACHE_SECONDS",
        "RESPONSE_CACHE_SECONDS",
        "HISTORY_CACHE_SECONDS",
        "ITEM_CACHE_SECONDS",
    ):
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
    queues = s.CELERY_QUEUES
    if not isinstance(queues, dict) or set(queues) - {"events", "training"}:
        problems.append("CELERY_QUEUES must be a dict with the keys 'events' and 'training'")
    elif any(queue is not None and not (isinstance(queue, str) and queue) for queue in queues.values()):
        problems.append("CELERY_QUEUES values must be queue names or None")
    proxies = s.TRUSTED_PROXIES
    if not _is_count(proxies):
        problems.append(f"TRUSTED_PROXIES must be how many proxies you run (0 or more), not {proxies!r}")
    if not _is_count(s.BOUGHT_TOGETHER_MIN_SHOPPERS) or s.BOUGHT_TOGETHER_MIN_SHOPPERS < 1:
        problems.append("BOUGHT_TOGETHER_MIN_SHOPPERS must be a whole number, 1 or more")
    if not _is_count(s.SIMILAR_NEW_ITEMS):
        problems.append("SIMILAR_NEW_ITEMS must be a whole number, 0 or more")
    return problems + _experiment_problems(s)


def _experiment_problems(s: Any) -> list[str]:
    problems = []
    experiments, exploration = s.EXPERIMENTS, s.EXPLORATION
    if not isinstance(experiments, dict) or not _is_count(experiments.get("MAX_LOADED_VERSIONS")):
        problems.append("EXPERIMENTS['MAX_LOADED_VERSIONS'] must be a whole number, 0 or more")
    if not isinstance(exploration, dict):
        return [*problems, "EXPLORATION must be a dict"]
    share = exploration.get("SHARE")
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
        problems.append(f"EXPLORATION['SHARE'] must be a number in [0, 1), not {share!r}")
    if not _is_count(exploration.get("POOL")) or exploration.get("POOL") < 1:
        problems.append("EXPLORATION['POOL'] must be a whole number, 1 or more")
    scenarios = exploration.get("SCENARIOS")
    from .models import Experiment  # the models load after the settings are checked

    allowed = Experiment.SCENARIOS  # the lists a model makes
    if not isinstance(scenarios, list | tuple) or any(x not in allowed for x in scenarios):
        problems.append(f"EXPLORATION['SCENARIOS'] must be a list of {', '.join(allowed)}")
    return problems


def _is_count(value: Any) -> bool:
    """A whole number, 0 or more (``True`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
    denylist = value.get("DENYLIST", [])
    if not isinstance(denylist, (list, tuple, set, frozenset)) or not all(
        isinstance(w, str) for w in denylist
    ):
        errors.append(
            Error(
                "RECOMMENDATIONS['SUGGEST']['DENYLIST'] must be a list of words.", id="recommendations.E013"
            )
        )
    for key in DEFAULTS["SUGGEST"]:
        number = value.get(key)
        if key == "DENYLIST" or (key == "WINDOW_DAYS" and number is None):
            continue
        if not isinstance(number, (int, float)) or isinstance(number, bool) or number < 0:
            errors.append(
                Error(
                    f"RECOMMENDATIONS['SUGGEST'][{key!r}] must be a non-negative number, not {number!r}.",
                    id="recommendations.E013",
                )
            )
        elif key in ("LIMIT", "CANDIDATES", "HALF_LIFE_DAYS", "CHECK_INTERVAL", "MAX_WORDS") and number == 0:
            errors.append(
                Error(f"RECOMMENDATIONS['SUGGEST'][{key!r}] must be positive.", id="recommendations.E013")
            )
    return errors


@register(Tags.compatibility)
def check_vigilance(app_configs: Any = None, **kwargs: Any) -> list:
    value = app_settings.VIGILANCE
    if not isinstance(value, dict):
        return [Error("RECOMMENDATIONS['VIGILANCE'] must be a dict.", id="recommendations.E016")]
    errors = []
    for key, limit in value.items():
        if key not in DEFAULTS["VIGILANCE"]:
            errors.append(
                Error(
                    f"RECOMMENDATIONS['VIGILANCE'] has an unknown key {key!r}.",
                    hint=f"Known keys: {', '.join(sorted(DEFAULTS['VIGILANCE']))}.",
                    id="recommendations.E016",
                )
            )
        elif limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            errors.append(
                Error(
                    f"RECOMMENDATIONS['VIGILANCE'][{key!r}] must be a whole number of at least 1 or None, not {limit!r}.",
                    id="recommendations.E016",
                )
            )
    return errors
