"""Fixtures shared by the tests: a browser-like client, a real Celery worker, settings helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
)
#: What a shop's mobile app sends (its HTTP library's name and version, as okhttp or CFNetwork do).
APP_UA = "DemoShopApp/2.4 (Android 14; okhttp/4.12)"


def device_id(name: str = "") -> str:
    """A device id as this server issues them; the same name always gives the same id."""
    import base64
    import hashlib

    from recommendations.identity import issue_device_id

    if not name:
        return issue_device_id()
    random_part = base64.urlsafe_b64encode(hashlib.sha256(name.encode()).digest()[:16]).decode().rstrip("=")
    return issue_device_id(random_part)


def visitor_of(client) -> str:
    """The anonymous visitor id a test browser was given (its signed cookie)."""
    from django.core import signing

    from recommendations.identity import VISITOR_COOKIE, VISITOR_SALT

    return signing.Signer(salt=VISITOR_SALT).unsign(client.cookies[VISITOR_COOKIE].value)


def app_client(**defaults):
    """A REST API client that looks like the shop's mobile app (the same rules as pages: no bots)."""
    from rest_framework.test import APIClient

    return APIClient(HTTP_USER_AGENT=APP_UA, **defaults)


@pytest.fixture
def browser(db) -> Client:
    """A test client that looks like a shopper's browser (the tracker ignores bots)."""
    return Client(HTTP_USER_AGENT=BROWSER_UA)


@pytest.fixture(autouse=True)
def fresh_serving_state():
    """Each test starts with an empty cache and no model loaded in this process."""
    from django.core.cache import cache

    from recommendations.serving import catalogue, experiments, loader

    cache.clear()
    loader.reset()
    experiments.reset()
    catalogue.reset()
    yield
    loader.reset()
    experiments.reset()


@pytest.fixture
def catalogue(db):
    from tests import serving_world

    return serving_world.make_catalogue()


@pytest.fixture
def served_model(catalogue, settings, tmp_path):
    """The serving world's trained model, active (files in this test's storage)."""
    pytest.importorskip("keras", reason="the ml extra is not installed")
    from tests import serving_world

    settings.MEDIA_ROOT = tmp_path / "media"
    return serving_world.install_version()


@pytest.fixture
def recorder_settings(settings):
    """Change RECOMMENDATIONS keys for one test: ``recorder_settings(RECORDER=...)``."""

    def apply(**values):
        current = settings.RECOMMENDATIONS
        # SUGGEST and VIGILANCE hold keys of their own: given ones change, the others stay.
        merged = {
            key: {**current.get(key, {}), **value} if key in ("SUGGEST", "VIGILANCE") else value
            for key, value in values.items()
        }
        settings.RECOMMENDATIONS = {**current, **merged}

    return apply


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, tmp_path_factory):
    """A real Celery worker process on the Redis broker, writing to the test database.

    PostgreSQL only: an in-memory SQLite test database cannot be shared with another process.
    """
    if connection.vendor != "postgresql":
        pytest.skip("a real Celery worker needs the PostgreSQL test database (this run uses SQLite)")
    from config.celery import app

    queue = f"recommendations-tests-{os.getpid()}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "RECOMMENDATIONS_WORKER_DB_NAME": connection.settings_dict["NAME"],
        "RECOMMENDATIONS_TEST_QUEUE": queue,
        "DJANGO_MEDIA_ROOT": str(tmp_path_factory.mktemp("worker-media")),
    }
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    log = open(log_path, "w")  # noqa: SIM115  (closed in the finally below)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--queues",
            queue,
            "--hostname",
            f"tests-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        hostname = f"tests-{os.getpid()}@"
        ready = wait_for(
            lambda: any(
                name.startswith(hostname) for reply in app.control.ping(timeout=0.5) for name in reply
            ),
            timeout=60,
            interval=0.5,
        )
        if not ready:
            raise RuntimeError(f"the Celery worker did not answer a ping within 60 s; see {log_path}")
        yield {"queue": queue, "app": app, "log": log_path}
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
