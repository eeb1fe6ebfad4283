"""Serving suite: the cost of a "for you" list, in process and under a real WSGI server.

1. **Compute per request** (in process, interleaved): our path (the shopper's history
   featurized, the numpy user tower, every item scored, exclusions, top-k, reasons) against
   the bare bound — one float32 matrix-vector product and ``argpartition`` over the same
   catalogue. The full ``services.for_you`` is timed beside them twice: with a per-process
   cache (the event table read on every list) and with Django's cache in Redis (a returning
   shopper's list runs no SQL), its SQL queries counted.
2. **Endpoint under gunicorn** (loopback, 2 sync workers, ``wrk`` with a fixed duration):
   ``/api/v1/recommendations/for-you/`` for shoppers with stored histories (a random device id
   per request), interleaved with a trivial DRF endpoint that returns a fixed list, in the same
   server (Django's cache in Redis, shared by the workers): requests/s and p50/p99; once with
   the response cache off (every request computes), once with it on (the default).
3. **Memory**: resident size of a gunicorn worker once the 50k-item model is loaded, and
   whether TensorFlow, Keras or pandas were loaded into it.

The model: trained for one epoch on the demo's real REES46 slice with the default settings,
then its item tables resized to the catalogue size with random rows (cost and memory depend on
the shapes, not on the values). The catalogue is that many products in the bench database.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from io import StringIO
from pathlib import Path

from bench import common
from bench.report import Part, Section, Table, strong, verdict

BENCH_ID_START = 900_000_000
COMPUTE, CACHED = "for-you", "for-you (cached)"
UNRECORDED = "for-you (impression not recorded)"
BARE = "bare bound as an endpoint"
#: Stages of our compute path, timed one by one.
STAGES = (
    "history → model inputs (featurize)",
    "user tower (attention, MLP) + repeat/prior weights",
    "score every item: matrix product, bias, repeat and prior adds, softmax denominator",
    "top-k (argpartition + sort)",
    "reasons for the shown items",
)
#: Suffix of the compute times taken with numpy's default BLAS threads.
THREADED = "_threaded"
DEVICE_PREFIX = "bench-shopper-"
HISTORY = 20


@dataclass(frozen=True)
class Sizes:
    n_items: int
    n_shoppers: int
    compute_reps: int
    wrk_seconds: int
    rounds: int
    connections: int


FULL = Sizes(n_items=50_000, n_shoppers=200, compute_reps=600, wrk_seconds=12, rounds=2, connections=4)
QUICK = Sizes(n_items=5_000, n_shoppers=20, compute_reps=60, wrk_seconds=3, rounds=1, connections=4)


def scaled_bundle(n_items: int, item_ids: list[str], category_ids: list[str], item_category: list[int]):
    """A model trained on the demo slice, its item tables resized to ``n_items`` rows."""
    import numpy as np

    from recommendations.lifecycle import registry
    from recommendations.ml.features import ease_prior
    from recommendations.ml.preprocessing import Preprocessor
    from recommendations.ml.tower import PriorTable
    from recommendations.ml.training import NextItemRecommender

    frame = common.read_events(common.ROOT / "shop/demo_data/rees46_oct2019_slice.csv.gz", "rees46")
    preprocessor = Preprocessor()
    train = preprocessor.fit_transform(frame)
    model = NextItemRecommender(epochs=1, random_state=0).fit_preprocessed(train, preprocessor)
    bundle = registry.bundle_of(model, preprocessor)
    weights, rng = dict(bundle.weights), np.random.default_rng(0)
    table = weights["item_embedding"]
    size = n_items + 1

    def resized(array, fill):
        rows = fill((size, *array.shape[1:])).astype(array.dtype)
        rows[0] = array[0]
        return rows

    weights["item_embedding"] = resized(table, lambda shape: rng.normal(0, table[1:].std(), shape))
    weights["item_bias"] = resized(weights["item_bias"], lambda shape: rng.normal(0, 0.1, shape))
    weights["item_category"] = np.asarray([0, *item_category], dtype=weights["item_category"].dtype)
    # Every bench product has events (trained) and was added at one of the slice's times.
    if "item_trained" in weights:
        weights["item_trained"] = resized(weights["item_trained"], lambda shape: np.ones(shape))
    if "item_added" in weights:
        added = weights["item_added"][1:]
        weights["item_added"] = resized(weights["item_added"], lambda shape: rng.choice(added, shape))
    # Each resized row of a prior holds as many neighbours as a random row of the trained
    # model's same prior (most rows of a large catalogue hold fewer than k); EASE's rows past
    # the items it models (ease_prior's max_items, the most popular) hold none.
    trained = PriorTable.from_exported(weights)
    trained_counts = np.diff(trained.offsets).reshape(trained.n_priors, trained.size)
    priors, k = trained.n_priors, max(int(trained_counts.max()), 1)
    counts = np.stack([rng.choice(trained_counts[p, 1:], size) for p in range(priors)])
    counts[:, 0] = 0
    names = [str(name) for name in weights.get("prior_names", [])]
    if "ease" in names:
        counts[names.index("ease"), inspect.signature(ease_prior).parameters["max_items"].default + 1 :] = 0
    filled = np.arange(k)[None, None, :] < counts[..., None]
    neighbours = np.where(filled, rng.integers(1, size, (priors, size, k), dtype=np.int32), 0)
    scores = np.sort(rng.random((priors, size, k), dtype=np.float32), axis=2)[:, :, ::-1]
    weights.update(PriorTable(neighbours, np.where(filled, scores, 0)).exported())
    del neighbours, scores
    weights["category_embedding"] = rng.normal(
        0, 0.05, (len(category_ids) + 1, weights["category_embedding"].shape[1])
    ).astype(np.float32)
    vocabulary = dict(bundle.vocabulary)
    vocabulary["preprocessor"] = {
        **vocabulary["preprocessor"],
        "item_ids": item_ids,
        "category_ids": ["", *category_ids],  # index 0: unknown, as the preprocessor numbers them
    }
    vocabulary["item_features"] = {
        "category": [0, *item_category],
        "price_bucket": [0, *rng.integers(1, 11, n_items).tolist()],
        "n_categories": len(category_ids) + 1,
        "n_price_buckets": 10,
    }
    spec = dict(vocabulary["feature_spec"])
    # Same number of affinity slots as trained (the context width is in the weights).
    spec["top_categories"] = [(c - 1) % len(category_ids) + 1 for c in spec["top_categories"]]
    vocabulary["feature_spec"] = spec
    return bundle.__class__(weights=weights, vocabulary=vocabulary, keras_model=None)


def build_world(sizes: Sizes, media: Path) -> tuple[int, list]:
    """Products, shopper histories and an active model version in the bench database."""
    from decimal import Decimal

    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from recommendations import artifacts
    from recommendations.lifecycle import registry
    from recommendations.models import Event, ModelVersion
    from shop.models import Category, Product

    settings.MEDIA_ROOT = str(media)
    call_command("shop_load_demo", "--no-events", stdout=StringIO())
    cleanup()
    categories = list(Category.objects.exclude(parent=None).order_by("slug"))
    common.progress(f"creating {sizes.n_items:,} products")
    Product.objects.bulk_create(
        (
            Product(
                id=BENCH_ID_START + i,
                name=f"Bench product {i}",
                category=categories[i % len(categories)],
                price=Decimal(10 + i % 500),
                stock=5,
            )
            for i in range(1, sizes.n_items + 1)
        ),
        batch_size=5000,
    )
    item_ids = [str(BENCH_ID_START + i) for i in range(1, sizes.n_items + 1)]
    category_ids = sorted(c.slug for c in categories)
    index = {slug: i + 1 for i, slug in enumerate(category_ids)}
    item_category = [index[categories[i % len(categories)].slug] for i in range(1, sizes.n_items + 1)]
    common.progress("training the base model on the demo slice and resizing it")
    bundle = scaled_bundle(sizes.n_items, item_ids, category_ids, item_category)
    version = ModelVersion.objects.create(
        status=ModelVersion.Status.READY, running=None, params={"bench": True}
    )
    folder, size = artifacts.save_bundle(version.pk, bundle)
    ModelVersion.objects.filter(pk=version.pk).update(artifact_path=folder, artifact_size=size)
    version.refresh_from_db()
    ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).update(status=ModelVersion.Status.RETIRED)
    registry.activate(version)

    import random

    rng = random.Random(1)
    now = timezone.now()
    events = []
    for s in range(sizes.n_shoppers):
        for j in range(HISTORY):
            events.append(
                Event(
                    event_type="view",
                    session_key=common.device_visitor(f"{DEVICE_PREFIX}{s:04d}"),
                    item_id=item_ids[rng.randrange(len(item_ids))],
                    timestamp=now - timedelta(minutes=HISTORY - j),
                    source="bench",
                )
            )
    Event.objects.bulk_create(events, batch_size=5000)
    from django.db import connection

    with connection.cursor() as cursor:  # fresh statistics, as autovacuum keeps them in a live shop
        cursor.execute("ANALYZE recommendations_event, shop_product, shop_category")
    return version.pk, item_ids


def cleanup() -> None:
    from recommendations.models import Event, ModelVersion
    from shop.models import Product

    Event.objects.filter(source="bench").delete()
    Product.objects.filter(id__gt=BENCH_ID_START).delete()
    ModelVersion.objects.filter(params__bench=True).delete()


def measure_compute(sizes: Sizes) -> dict[str, list[float]]:
    """Per-request seconds of our path, the bare bound and the full service, interleaved."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from recommendations.identity import Shopper
    from recommendations.serving import loader, services
    from recommendations.serving.history import recent_events
    from recommendations.serving.scoring import score_shopper

    model = loader.active_model()
    assert model is not None and model.n_items == sizes.n_items, "the bench model is not active"
    shoppers = [
        Shopper(visitor=common.device_visitor(f"{DEVICE_PREFIX}{s:04d}")) for s in range(sizes.n_shoppers)
    ]
    histories = [recent_events(shopper) for shopper in shoppers]
    table = model.tower.item_table
    users = common.bare_users(len(shoppers), table.shape[1])
    times: dict[str, list[float]] = {"service": [], **{name: [] for name in STAGES}}

    def ours(s: int) -> tuple[float, float]:
        """(seconds to the top-k list, seconds with the reasons too)."""
        events = histories[s]
        start = time.perf_counter()
        scores = score_shopper(model, events, shoppers[s].visitor, {e.item_id for e in events})
        top = scores.top(40)
        listed = time.perf_counter()
        scores.explain([model.item_ids[i] for i, _ in top[:10]])
        return listed - start, time.perf_counter() - start

    def bare(s: int) -> float:
        start = time.perf_counter()
        common.bare_bound(users[s], table)
        return time.perf_counter() - start

    def interleaved(reps: int, suffix: str = "") -> None:
        """The order swapped every repetition: neither side inherits a warm cache."""
        for rep in range(reps):
            s = rep % len(shoppers)
            pair = (ours, bare) if rep % 2 else (bare, ours)
            for function in pair:
                if function is ours:
                    listed, explained = ours(s)
                    times.setdefault(f"ours{suffix}", []).append(explained)
                    times.setdefault(f"ours_list{suffix}", []).append(listed)
                else:
                    times.setdefault(f"bare{suffix}", []).append(bare(s))

    # With numpy's default BLAS threads (one per core), which no web worker uses: for the record.
    interleaved(sizes.compute_reps // 2, THREADED)
    # One BLAS thread, as a gunicorn worker runs (``config/wsgi.py``): the target's measure.
    with threadpool_limits(1, "blas"):
        interleaved(sizes.compute_reps)
        # Where our time goes: each stage timed on its own, same shoppers, same interleaving.
        from recommendations.serving.scoring import ShopperScores, shopper_inputs

        tower = model.tower
        for rep in range(sizes.compute_reps):
            s = rep % len(shoppers)
            events, current = histories[s], shoppers[s].visitor
            marks = [time.perf_counter()]
            inputs, history = shopper_inputs(model, events, current)
            marks.append(time.perf_counter())
            user, mix, attention = tower.forward_with_attention(inputs)
            terms = tower.history_terms(inputs, mix)
            marks.append(time.perf_counter())
            scored, normalizers = tower.scores_and_normalizer(
                inputs, (user, mix), terms, now=np.array([time.time()])
            )
            marks.append(time.perf_counter())
            scores = ShopperScores(
                model, scored[0], float(normalizers[0]), inputs, mix, attention, terms, history
            )
            best = scores.top(40)
            marks.append(time.perf_counter())
            scores.explain([model.item_ids[i] for i, _ in best[:10]])
            marks.append(time.perf_counter())
            bare(s)
            for name, start, end in zip(STAGES, marks, marks[1:], strict=False):
                times[name].append(end - start)
        # The full service on its own loop, over the same shoppers (each seen once before): with
        # the per-process cache the table is read every time; with a shared cache (Redis), as
        # web servers run, a returning shopper's list runs no SQL. Queries counted per call.
        from django.conf import settings
        from django.core.cache import cache
        from django.db import connection
        from django.test.utils import CaptureQueriesContext, override_settings

        from recommendations.serving import catalogue

        for name, caches in (("service", settings.CACHES), ("service_shared", settings.SHARED_CACHES)):
            with override_settings(CACHES=caches):
                cache.clear()
                catalogue.reset()
                for shopper in shoppers:
                    services.for_you(shopper, limit=10)
                times[name], times[f"{name}_queries"] = [], []
                for rep in range(sizes.compute_reps // 3):
                    with CaptureQueriesContext(connection) as queries:
                        start = time.perf_counter()
                        services.for_you(shoppers[rep % len(shoppers)], limit=10)
                        times[name].append(time.perf_counter() - start)
                    times[f"{name}_queries"].append(len(queries.captured_queries))
                cache.clear()
    return times


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


WRK_SCRIPT = """
local devices = {%(devices)s}
math.randomseed(%(seed)d)
request = function()
  wrk.headers["X-Device-Id"] = devices[math.random(#devices)]
  return wrk.format("GET", "%(path)s")
end
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass
class LoadRun:
    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


def run_wrk(
    port: int, path: str, name: str, sizes: Sizes, n_shoppers: int, lua: str | None = None
) -> LoadRun:
    """One fixed-duration wrk run; ``lua`` replaces the default script (a random shopper per request)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        devices = ", ".join(f'"{common.device_id(f"{DEVICE_PREFIX}{s:04d}")}"' for s in range(n_shoppers))
        script.write(lua or WRK_SCRIPT % {"devices": devices, "seed": 7, "path": path})
    try:
        result = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{sizes.connections}",
                f"-d{sizes.wrk_seconds}s",
                "--latency",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=sizes.wrk_seconds + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)

    def latency(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", result, re.MULTILINE)
        return float(match[1]) * UNITS[match[2]] if match else float("nan")

    rate = re.search(r"Requests/sec:\s+([\d.]+)", result)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", result)
    return LoadRun(
        name, float(rate[1]) if rate else 0.0, latency("50"), latency("99"), int(errors[1]) if errors else 0
    )


def worker_memory(master: int) -> tuple[float, dict[str, bool]]:
    """Largest resident size (MB) among the master's workers, and which big libraries they mapped."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    rss, loaded = 0.0, {"tensorflow": False, "keras": False, "pandas": False}
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = max(rss, int(re.search(r"VmRSS:\s+(\d+)", status)[1]) / 1024)
        maps = Path(f"/proc/{pid}/maps").read_text()
        for name in loaded:
            loaded[name] |= f"/{name}/" in maps
    return rss, loaded


@contextmanager
def gunicorn_server(
    settings_module: str, access_log: Path | None = None, **environment: str
) -> Iterator[tuple[int, int]]:
    """A gunicorn server (2 sync workers) on a free loopback port: yields (port, master pid).

    With ``access_log``, each response is logged there as "STATUS METHOD PATH USER-AGENT".
    """
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings_module, **environment}
    logging = (
        ["--access-logfile", str(access_log), "--access-logformat", "%(s)s %(r)s %(a)s"] if access_log else []
    )
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--worker-class",
            "sync",
            "--log-level",
            "warning",
            *logging,
        ],
        cwd=common.ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        yield port, server.pid
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def warm_up(
    port: int, path: str, expect: bytes, headers: dict[str, str] | None = None, times: int = 8
) -> None:
    """Request ``path`` until the server answers, then ``times`` more (each worker loads its state)."""
    import urllib.request

    deadline = time.monotonic() + 60
    while True:
        try:
            for _ in range(times):
                request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
                body = urllib.request.urlopen(request, timeout=60).read()  # noqa: S310 (loopback)
                assert expect in body, body[:300]
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def measure_server(
    sizes: Sizes, media: Path, cache_seconds: int, label: str
) -> tuple[list[LoadRun], float, dict[str, bool]]:
    """wrk rounds against the trivial and the for-you endpoint of one gunicorn server (and,
    with the response cache off, the same list without recording its impression)."""
    runs: list[LoadRun] = []
    for_you = "/api/v1/recommendations/for-you/?limit=10"
    trivial = "/bench/trivial/"
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.SHARED_CACHES["default"]["LOCATION"]).flushdb()  # the servers' cache
    with gunicorn_server(
        "bench.serving_settings",
        RECOMMENDATIONS_BENCH_MEDIA=str(media),
        RECOMMENDATIONS_BENCH_RESPONSE_CACHE=str(cache_seconds),
    ) as (port, pid):
        warm_up(port, for_you, b'"source":"model"', {"X-Device-Id": common.device_id(f"{DEVICE_PREFIX}0000")})
        # Every shopper once: the rounds time returning shoppers (history in the shared cache),
        # not each one's first list, which reads the event table (before, a first round's p99).
        common.progress(f"{label}: each shopper's first list")
        for s in range(sizes.n_shoppers):
            device = {"X-Device-Id": common.device_id(f"{DEVICE_PREFIX}{s:04d}")}
            warm_up(port, for_you, b'"source":"model"', device, times=1)
        for round_ in range(sizes.rounds):
            common.progress(f"{label}: wrk round {round_ + 1}/{sizes.rounds}")
            runs.append(run_wrk(port, trivial, "trivial", sizes, sizes.n_shoppers))
            runs.append(run_wrk(port, for_you, label, sizes, sizes.n_shoppers))
            if not cache_seconds:
                unrecorded = "/bench/for-you-unrecorded/?limit=10"
                runs.append(run_wrk(port, unrecorded, UNRECORDED, sizes, sizes.n_shoppers))
                runs.append(run_wrk(port, "/bench/bare/", BARE, sizes, sizes.n_shoppers))
        rss, loaded = worker_memory(pid)
    return runs, rss, loaded


def section(
    times: dict[str, list[float]], runs: list[LoadRun], rss: float, loaded: dict, sizes: Sizes, quick: bool
) -> Section:
    queries = {name: common.median(times.pop(f"{name}_queries")) for name in ("service", "service_shared")}
    median = {name: common.median(values) * 1000 for name, values in times.items()}
    p99 = {name: common.percentile(values, 99) * 1000 for name, values in times.items()}
    ratio = median["ours_list"] / median["bare"]  # the target's scope: user vector, scoring, filters, top-k
    ratio_reasons = median["ours"] / median["bare"]
    ratio_threaded = median[f"ours_list{THREADED}"] / median[f"bare{THREADED}"]
    by_name: dict[str, list[LoadRun]] = {}
    for load in runs:
        by_name.setdefault(load.name, []).append(load)
    rate = {name: common.median([r.requests_per_second for r in group]) for name, group in by_name.items()}
    p50s = {name: common.median([r.p50_ms for r in group]) for name, group in by_name.items()}
    p99s = {name: common.median([r.p99_ms for r in group]) for name, group in by_name.items()}
    errors = {name: sum(r.non_2xx for r in group) for name, group in by_name.items()}
    labels = {
        "trivial": "trivial DRF view, fixed list",
        COMPUTE: "`/api/v1/recommendations/for-you/?limit=10`, response cache off: every request computes",
        UNRECORDED: "the same, without recording the list's impression (a bench-only view)",
        BARE: "the trivial view after the bare bound (one product over the item table + `argpartition`)",
        CACHED: "the same, response cache on (default 30 s; shoppers repeat without new events)",
    }
    share = rate[COMPUTE] / rate["trivial"] if rate.get("trivial") else 0.0
    share_cached = rate[CACHED] / rate["trivial"] if rate.get("trivial") else 0.0
    paths = (
        ("ours_list", "ours: history → features → numpy tower → score all items → exclusions → top-k"),
        ("ours", "ours, and the reason for each of the 10 shown items"),
        ("bare", "bare bound: one float32 matrix-vector product + `argpartition`"),
        ("service", "`services.for_you` end to end, per-process cache: the event table read each time"),
        ("service_shared", "`services.for_you` end to end, shared cache (Redis): a returning shopper"),
    )
    compute = Part(
        "Compute per request (in process)",
        [
            Table(
                ["path", "median ms", "p99 ms", "SQL queries (median)"],
                [
                    [
                        label,
                        f"{median[name]:.3f}",
                        f"{p99[name]:.3f}",
                        f"{queries[name]:.0f}" if name in queries else "",
                    ]
                    for name, label in paths
                ],
            ),
            strong(f"Ours / bare = {ratio:.2f}x")
            + " for what the target counts (user vector, scoring, filters, "
            f"top-k; target ≤ 2x: {verdict(ratio <= 2)}), {ratio_reasons:.2f}x with the reasons, both "
            "sides with one BLAS thread as a web worker runs them. With numpy's default threads (one "
            f"per core), which halve the product and nothing else: {median[f'ours_list{THREADED}']:.3f} "
            f"against {median[f'bare{THREADED}']:.3f} ms, {ratio_threaded:.2f}x. Where our time goes "
            "(each stage timed alone, medians):",
            Table(["stage", "median ms"], [[name, f"{median[name]:.3f}"] for name in STAGES]),
            "The product over all items costs what the bare bound's does. It streams the item table "
            "through the CPU's caches, so what is read after it comes back from memory: the scoring "
            "works out everything that reads the history alone first, and after the product passes "
            "over the row only (bias, category boost, softmax denominator). The rest is a few dozen "
            "small numpy calls per request (features, tower, reasons).",
        ],
    )
    server = Part(
        "The endpoint under gunicorn",
        [
            Table(
                ["endpoint", "requests/s (median of rounds)", "p50 ms", "p99 ms", "non-2xx"],
                [
                    [
                        labels[name],
                        f"{rate[name]:,.0f}",
                        f"{p50s[name]:.2f}",
                        f"{p99s[name]:.2f}",
                        errors[name],
                    ]
                    for name in ("trivial", BARE, COMPUTE, UNRECORDED, CACHED)
                    if name in rate
                ],
            ),
            strong(f"Computing for-you: {share:.0%} of the trivial endpoint's throughput")
            + f" (target ≥ 50 %: {verdict(share >= 0.5)}), "
            + strong(f"p99 {p99s[COMPUTE]:.1f} ms")
            + f" (target ≤ 25 ms: {verdict(p99s[COMPUTE] <= 25)}). With the response cache: {share_cached:.0%}, "
            f"p99 {p99s[CACHED]:.1f} ms."
            + (
                f" Recording the impression (one event through the capture pipeline): "
                f"{rate[COMPUTE] / rate[UNRECORDED]:.2f}x the throughput of the same list without it, "
                f"p99 {p99s[COMPUTE]:.1f} against {p99s[UNRECORDED]:.1f} ms."
                if rate.get(UNRECORDED)
                else ""
            )
            + (
                f" The bare bound alone in the trivial view serves {rate[BARE] / rate['trivial']:.0%} of the "
                f"trivial endpoint's throughput: the ceiling of any list that scores all {sizes.n_items:,} "
                f"items per request on this machine; for-you serves {rate[COMPUTE] / rate[BARE]:.0%} of that."
                if rate.get(BARE) and rate.get("trivial")
                else ""
            ),
        ],
    )
    memory = Part(
        "Memory",
        [
            f"A gunicorn worker with the {sizes.n_items:,}-item model loaded: "
            + strong(f"{rss:.0f} MB resident")
            + f" (target ≤ 200 MB: {verdict(rss <= 200)}). Libraries mapped into it: "
            + ", ".join(f"{name} {'yes' if value else 'no'}" for name, value in loaded.items())
            + ".",
        ],
    )
    method = (
        f"{sizes.n_items:,}-item catalogue (products in the bench database); model trained one epoch on "
        "the demo's REES46 slice with the default settings, item tables resized to the catalogue with "
        f"random rows; {sizes.n_shoppers} shoppers with {HISTORY} stored views each. Compute: "
        f"{sizes.compute_reps} repetitions, ours and the bare bound interleaved (order swapped each "
        "time), one BLAS thread (then half as many with the default threads). Server: gunicorn, 2 sync "
        "workers (one BLAS thread each, as `config/wsgi.py` sets), loopback, each shopper's list asked "
        "once before the rounds (they time returning shoppers); "
        f"`wrk -t2 -c{sizes.connections} -d{sizes.wrk_seconds}s --latency`, a random "
        f"shopper's device id per request; {sizes.rounds} rounds, the trivial endpoint, ours and ours "
        "without its impression interleaved, in the same server; wrk shares the 2 cores with the server."
    )
    return common.section("Serving", method, [compute, server, memory], quick=quick)


def run(quick: bool) -> Section:
    common.setup_django()
    sizes = QUICK if quick else FULL
    media = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    try:
        build_world(sizes, media)
        common.progress("timing the compute per request")
        times = measure_compute(sizes)
        common.progress("load test under gunicorn")
        runs, rss, loaded = measure_server(sizes, media, 0, COMPUTE)
        cached, _, _ = measure_server(sizes, media, 30, CACHED)
        runs += [run for run in cached if run.name == CACHED]
    finally:
        cleanup()
        shutil.rmtree(media, ignore_errors=True)
    return section(times, runs, rss, loaded, sizes, quick)
