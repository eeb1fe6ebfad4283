"""The core app works without the optional extras; a missing extra says what to install."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from recommendations.extras import MissingExtra, require

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = {"keras", "tensorflow", "pandas", "numpy", "rest_framework", "drf_spectacular", "celery", "redis", "kombu"}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: extras are not installed")

    sys.meta_path.insert(0, Block())

    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="core-only-test-key-" + "0123456789abcdef" * 3,
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
                        "django.contrib.admin", "django.contrib.messages", "recommendations"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware",
                    "django.contrib.auth.middleware.AuthenticationMiddleware",
                    "django.contrib.messages.middleware.MessageMiddleware",
                    "recommendations.capture.middleware.EventMiddleware"],
        ROOT_URLCONF=__name__,
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
                    "OPTIONS": {"context_processors": ["django.contrib.auth.context_processors.auth",
                                                       "django.contrib.messages.context_processors.messages",
                                                       "django.template.context_processors.request"]}}],
        USE_TZ=True,
        # A capture-only install; the users stand in for a catalogue, so the fallbacks can serve.
        RECOMMENDATIONS={"TRAINING_ENABLED": False, "ITEM_MODEL": "auth.User"},
    )
    django.setup()
    from django.contrib import admin
    from django.core.management import call_command
    from django.urls import path

    urlpatterns = [path("admin/", admin.site.urls)]
    call_command("migrate", verbosity=0)
    call_command("check", fail_level="ERROR")

    from recommendations import track
    from recommendations.models import Event

    assert track(None, "purchase", "17", quantity=1)
    from recommendations.capture.recorders import get_recorder

    get_recorder().batcher.flush()  # the default background batcher, flushed now
    assert Event.objects.get().item_id == "17"
    try:
        from recommendations.capture.recorders import CeleryRecorder
        CeleryRecorder()
    except ImportError as exc:
        print("MISSING:", exc)
    from django.contrib.auth.models import User
    from recommendations.serving import services

    item = User.objects.create(username="an-item")
    track(None, "view", str(item.pk))
    get_recorder().batcher.flush()
    assert [r.item_id for r in services.trending(None, limit=3)] == [str(item.pk)]
    assert [r.reason for r in services.for_you(None, limit=3)] == ["Trending now"]
    leaked = BLOCKED & {name.split(".")[0] for name in sys.modules}
    assert not leaked, leaked
    print("CORE OK")
    """
)


def test_core_app_runs_without_ml_api_and_celery_extras(tmp_path):
    script = tmp_path / "core_only.py"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "CORE OK" in result.stdout
    assert 'pip install "django-shop-recommendations[celery]"' in result.stdout


def test_require_names_the_pip_install():
    with pytest.raises(MissingExtra, match=r'pip install "django-shop-recommendations\[ml\]"') as error:
        require("ml", "a_module_that_does_not_exist")
    assert isinstance(error.value, ImportError)


def test_keras_starts_without_tensorflows_start_up_notes_but_keeps_real_warnings(tmp_path):
    """TensorFlow writes its notes to file descriptor 2 before its logging starts (twice, on
    every command); a stand-in ``keras`` writes one note and one real warning the same way."""
    (tmp_path / "keras.py").write_text(
        "import os\n"
        "os.write(2, b'I0000 port.cc:153] oneDNN custom operations are on.\\n')\n"
        "os.write(2, b'UserWarning: a real one\\n')\n"
    )
    script = "from recommendations.extras import require; require('ml', 'keras'); print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.strip() == "ok"
    assert "oneDNN" not in result.stderr and "a real one" in result.stderr


def test_serving_a_model_loads_numpy_but_not_pandas_keras_or_tensorflow():
    """What a web process imports to serve a version (the exported weights, the numpy tower,
    scoring, exploration, experiments): training's libraries stay out of it."""
    script = (
        "import sys, django, os\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings'\n"
        "django.setup()\n"
        "import recommendations.ml.exported, recommendations.serving.scoring\n"
        "import recommendations.serving.services, recommendations.serving.experiments\n"
        "print(sorted(m for m in ('pandas', 'keras', 'tensorflow') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(ROOT), "RECOMMENDATIONS_TEST_DB": "sqlite"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
