"""Cache keys that one stage writes and another reads, named once; and whether the cache they
live in is one store for every process."""

from django.core.cache import caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache

#: How long a value read from the database stays in a shared cache, where the stage that
#: changes it also deletes or rewrites it (so this bounds only changes made behind its back).
SHARED_SECONDS = 60.0


def cache_is_shared() -> bool:
    """Whether Django's default cache is one store for every process (not LocMem, not dummy)."""
    return not isinstance(caches["default"], (LocMemCache, DummyCache))


def polled_seconds(interval: float) -> float:
    """How long to keep a value the database holds: ``interval`` in a per-process cache (each
    process must notice a change by itself), at least ``SHARED_SECONDS`` in a shared one."""
    return max(float(interval), SHARED_SECONDS) if cache_is_shared() else float(interval)


#: Id of the active model version: the lifecycle writes it on activation, serving polls it.
ACTIVE_VERSION = "recommendations:active-version"
#: The dropped-events metric (count, first and last time): capture writes it, the admin shows it.
DROPPED_EVENTS = "recommendations:dropped-events"
#: The running experiments (serving reads them): written empty whenever an experiment changes.
EXPERIMENTS = "recommendations:experiments"
#: Prefix of a signed-in user's assignment unit (their first browser or device, see serving/experiments.py).
ASSIGNMENT_UNIT = "recommendations:unit:"
