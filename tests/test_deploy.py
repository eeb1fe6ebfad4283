"""Safe defaults (issue "Trust", finding 6): with DEBUG off the project refuses to start
without a secret key, a production configuration passes ``check --deploy``, and a public
signing key is an error of the app's own check."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from django.core import checks

from tests.conftest import ROOT

pytestmark = pytest.mark.no_db


def manage(*args: str, **environment: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", **environment)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_with_debug_off_and_no_key_the_project_refuses_to_start():
    result = manage("check")
    assert result.returncode != 0
    assert "Set DJANGO_SECRET_KEY" in result.stderr


def test_a_production_configuration_passes_the_deploy_checks():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="shop.example.com",
        DJANGO_SECURE_HSTS_PRELOAD="1",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("key", ["demo-only-insecure-key-change-me", "short", "a" * 60])
def test_a_public_or_weak_signing_key_is_an_error(settings, key):
    settings.SECRET_KEY = key
    assert "recommendations.E015" in {m.id for m in checks.run_checks(include_deployment_checks=False)}
