"""Settings of the gunicorn server the serving suite starts: the bench database and model files,
a trivial endpoint to compare with (``bench.urls``), and no per-shopper response cache, so every
for-you request computes its list."""

import os

from bench.settings import *  # noqa: F403
from bench.settings import RECOMMENDATIONS

ROOT_URLCONF = "bench.urls"
MEDIA_ROOT = os.environ.get("RECOMMENDATIONS_BENCH_MEDIA", "/tmp/bench-serving-media")  # noqa: S108
RECOMMENDATIONS = {**RECOMMENDATIONS, "RESPONSE_CACHE_SECONDS": 0}
