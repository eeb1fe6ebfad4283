"""System checks fire on bad settings, with stable ids, and stay quiet on good ones."""

from __future__ import annotations

import pytest
from django.core import checks

from recommendations.capture.checks import url_name_exists

MIDDLEWARE = "recommendations.capture.middleware.EventMiddleware"


def ids() -> set[str]:
    return {message.id for message in checks.run_checks(include_deployment_checks=False)}


def test_the_demo_configuration_passes():
    assert not {i for i in ids() if i.startswith("recommendations.")}


def test_the_old_middleware_path_still_counts_as_installed(settings):
    old = "recommendations.middleware.EventMiddleware"
    settings.MIDDLEWARE = [old if m == MIDDLEWARE else m for m in settings.MIDDLEWARE]
    assert not {"recommendations.W001", "recommendations.E002"} & ids()


def test_missing_middleware_warns(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE]
    assert "recommendations.W001" in ids()


def test_middleware_before_sessions_and_auth_is_an_error(settings):
    settings.MIDDLEWARE = [MIDDLEWARE] + [m for m in settings.MIDDLEWARE if m != MIDDLEWARE]
    assert "recommendations.E002" in ids()


@pytest.mark.parametrize(
    "values",
    [
        {"RECORDER": "recommendations.capture.recorders.NoSuchRecorder"},
        {"RECORDER": "recommendations.adapters.CatalogueAdapter"},  # not a recorder
        {"CATALOGUE_ADAPTER": "nowhere.Adapter"},
        {"CONSENT_CHECK": "nowhere.consent"},
    ],
)
def test_unknown_import_strings_are_errors(recorder_settings, values):
    recorder_settings(**values)
    assert "recommendations.E003" in ids()


@pytest.mark.parametrize(
    "rule",
    [
        {"shop:no-such-page": {"event": "view", "item_kwarg": "pk"}},
        {"shop:product": {"event": "teleport", "item_kwarg": "pk"}},
        {"shop:product": {"event": "view"}},
        {"shop:search": {"event": "search"}},
        {"shop:category": {"event": "category_view"}},
        {"nonamespace:product": {"event": "view", "item_kwarg": "pk"}},
    ],
)
def test_bad_tracked_urls_are_errors(recorder_settings, rule):
    recorder_settings(TRACKED_URLS=rule)
    assert "recommendations.E004" in ids()


@pytest.mark.parametrize(
    "signals",
    [
        {"shop.signals.no_such_signal": "cart"},
        {"shop.models.Product": "cart"},
        {"shop.signals.order_placed": "refund"},
    ],
)
def test_bad_signals_are_errors(recorder_settings, signals):
    recorder_settings(SIGNALS=signals)
    assert "recommendations.E005" in ids()


def test_celery_recorder_without_celery_is_an_error(recorder_settings, monkeypatch):
    from recommendations import extras

    recorder_settings(RECORDER="recommendations.capture.recorders.CeleryRecorder")
    monkeypatch.setattr(extras, "is_installed", lambda extra: extra != "celery")
    assert "recommendations.E006" in ids()


def test_unknown_keys_warn_and_a_non_dict_is_an_error(settings):
    settings.RECOMMENDATIONS = {"RECORDR": "typo"}
    assert "recommendations.W002" in ids()
    settings.RECOMMENDATIONS = ["not", "a", "dict"]
    assert "recommendations.E007" in ids()


@pytest.mark.parametrize(
    "bad",
    [
        {"FLUSH_INTERVAL": -1},
        {"FLUSH_INTERVAL": "0.5"},
        {"FLUSH_SIZE": 0},
        {"MAX_PENDING_EVENTS": 1.5},
        {"EVENT_WRITE_RETRIES": -1},
        {"EVENT_WRITE_RETRIES": True},
        {"API_MAX_BATCH_EVENTS": 300, "MAX_EVENTS_PER_REQUEST": 200},  # a batch would be cut short
    ],
)
def test_bad_capture_numbers_are_errors(recorder_settings, bad):
    recorder_settings(**bad)
    assert "recommendations.E014" in ids()


def test_url_name_lookup_understands_namespaces():
    assert url_name_exists("shop:product")
    assert url_name_exists("login")
    assert not url_name_exists("shop:login")
    assert not url_name_exists("product")


@pytest.mark.parametrize(
    "bad", [{"HOLDOUT_MAX_SHOPPERS": 0}, {"HOLDOUT_MAX_SHOPPERS": 2.5}, {"HOLDOUT_FRACTION": 1}]
)
def test_bad_evaluation_settings_are_errors(recorder_settings, bad):
    recorder_settings(**bad)
    assert "recommendations.E011" in ids()


@pytest.mark.parametrize(
    "bad, error",
    [
        ({"APPROXIMATE_ABOVE": -1}, "recommendations.E011"),
        ({"APPROXIMATE_ABOVE": "200000"}, "recommendations.E011"),
        ({"APPROXIMATE_ABOVE": True}, "recommendations.E011"),
        ({"LOCAL_MODEL_FOLDER": 7}, "recommendations.E010"),
    ],
)
def test_bad_large_catalogue_settings_are_errors(recorder_settings, bad, error):
    recorder_settings(**bad)
    assert error in ids()


@pytest.mark.parametrize("good", [{"APPROXIMATE_ABOVE": None}, {"LOCAL_MODEL_FOLDER": "/var/cache/models"}])
def test_good_large_catalogue_settings_pass(recorder_settings, good):
    recorder_settings(**good)
    assert not {"recommendations.E010", "recommendations.E011"} & ids()
