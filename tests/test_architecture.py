"""The design holds at run time too: ``ml`` imports with no Django at all (as on a GPU
machine). (That a web process loads no TensorFlow, Keras or pandas is in test_extras.) The
static import contracts are checked by ``lint-imports`` in ``make lint``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.no_db

BLOCK_DJANGO = textwrap.dedent(
    """
    import importlib.abc, sys

    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("django", "rest_framework", "celery"):
                raise ImportError(f"{name} is not installed here")
            return None

    sys.meta_path.insert(0, Blocked())
    """
)


def run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_DJANGO + textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_ml_imports_and_preprocesses_where_django_is_not_installed():
    out = run(
        """
        import json, sys
        import pandas as pd
        from recommendations.ml.frames import normalize_frame
        from recommendations.ml.preprocessing import Preprocessor
        from recommendations.ml.training import NextItemRecommender

        rows = [
            {"timestamp": 1_700_000_000 + 60 * i, "session": f"s{i // 4}", "event": "view",
             "item": str(i % 7)}
            for i in range(200)
        ]
        frame = Preprocessor(min_item_count=1, min_shopper_events=1).fit_transform(normalize_frame(pd.DataFrame(rows)))
        print(json.dumps({
            "django": any(name.split(".")[0] == "django" for name in sys.modules),
            "params": sorted(NextItemRecommender().get_params()),
            "rows": len(frame),
        }))
        """
    )
    found = json.loads(out.strip().splitlines()[-1])
    assert found["django"] is False
    assert {"embedding_dim", "dropout", "weight_decay"} <= set(found["params"])
    assert found["rows"] > 0
