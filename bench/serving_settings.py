"""Settings of the gunicorn server the serving suite starts: the bench database and model files,
a trivial endpoint to compare with (``bench.urls``), and the per-shopper response cache off
(every for-you request computes its list) unless RECOMMENDATIONS_BENCH_RESPONSE_CACHE says
how many seconds to keep responses. Django's cache is Redis, shared by the workers, as web
servers of a shop run it (README, *Deploying at scale*): a returning shopper's list then
runs no SQL; RECOMMENDATIONS_BENCH_CACHE=local gives each worker its own LocMemCache."""

import os

from bench.settings import *  # noqa: F403
from bench.settings import RECOMMENDATIONS, SHARED_CACHES

ROOT_URLCONF = "bench.urls"
if os.environ.get("RECOMMENDATIONS_BENCH_CACHE", "redis") == "redis":
    CACHES = SHARED_CACHES
MEDIA_ROOT = os.environ.get("RECOMMENDATIONS_BENCH_MEDIA", "/tmp/bench-serving-media")  # noqa: S108
RECOMMENDATIONS = {
    **RECOMMENDATIONS,
    "RESPONSE_CACHE_SECONDS": int(os.environ.get("RECOMMENDATIONS_BENCH_RESPONSE_CACHE", "0")),
}
