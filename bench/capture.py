"""Capture suite: what event tracking costs a page, and how fast events reach PostgreSQL.

1. Middleware overhead. The demo shop's product page (about 50 real products, in turn) is
   served in-process through ``django.test.Client`` with a browser User-Agent by two handlers
   built side by side: one with ``recommendations.capture.middleware.EventMiddleware`` and one
   without. Both clients carry an established session, as a returning shopper does. Each
   round times N requests with the middleware and N without, alternating the order (ABBA),
   after a warm-up; a request is timed until ``client.get`` returns, which includes
   ``response.close()``, where the middleware writes its events: what the web process pays.
   Each of four set-ups is its own such comparison: the ``CeleryRecorder`` with a real Celery
   worker subprocess on Redis storing the events (the production set-up, and the target);
   the ``CeleryRecorder`` before that worker starts (the page pays only for publishing; the
   worker stores the backlog once it starts); the ``DatabaseRecorder``; and a no-op recorder
   (``bench.recorders.NullRecorder``: the middleware's own cost). Afterwards the stored view
   events are counted against the tracked requests. A last step times one
   ``recorder.record([event])`` call per recorder in alternating blocks: the hand-off alone.
2. Ingestion rate. Batches of realistic ``EventRecord`` values (``tracking.build_record``,
   unique ``client_event_id`` values, a mix of views, category views, searches, carts and
   purchases) are written through ``DatabaseRecorder().record`` (``write_events``, bulk),
   through ``CeleryRecorder().record`` end to end (enqueued outside a transaction, timed
   until the worker has stored the last one), and one by one with ``Event.objects.create``
   (the naive baseline). The three are interleaved over the repetitions; events/s is the
   total over the wall time, median of the repetitions.

The event table of the bench database is truncated before every measurement.
"""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from io import StringIO
from pathlib import Path
from typing import Any

from bench import common
from bench.report import Part, Section, Table, ms, strong, verdict

BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
)
EVENT_MIDDLEWARE = "recommendations.capture.middleware.EventMiddleware"
CELERY_RECORDER = "recommendations.capture.recorders.CeleryRecorder"
DATABASE_RECORDER = "recommendations.capture.recorders.DatabaseRecorder"
NULL_RECORDER = "bench.recorders.NullRecorder"
RATIO_TARGET = 1.05
INGEST_TARGET = 5000.0
SEARCH_QUERIES = ("samsung", "headphones", "iphone case", "washer", "laptop 15", "tv 55", "kettle", "sofa")


@dataclasses.dataclass(frozen=True)
class Sizes:
    products: int  # product pages cycled over
    warmup: int  # untimed requests per client before the rounds
    rounds: int  # ABBA rounds
    per_block: int  # requests per client per round
    batches: int  # ingestion: batches per repetition
    batch_size: int  # ingestion: events per batch
    naive_events: int  # ingestion: events per repetition of the one-by-one baseline
    repetitions: int  # ingestion repetitions (median reported)
    handoff_blocks: int  # hand-off cost: alternating blocks per recorder
    handoff_calls: int  # hand-off cost: calls per block


FULL = Sizes(
    products=50,
    warmup=100,
    rounds=32,
    per_block=20,
    batches=40,
    batch_size=500,
    naive_events=2000,
    repetitions=3,
    handoff_blocks=8,
    handoff_calls=40,
)
QUICK = Sizes(
    products=20,
    warmup=20,
    rounds=6,
    per_block=10,
    batches=5,
    batch_size=200,
    naive_events=300,
    repetitions=3,
    handoff_blocks=4,
    handoff_calls=10,
)


# --- helpers -------------------------------------------------------------------------------


def truncate_events() -> None:
    from django.db import connection

    from recommendations.models import Event

    with connection.cursor() as cursor:
        cursor.execute(f'TRUNCATE TABLE "{Event._meta.db_table}"')


def count_events(**filters: Any) -> int:
    from recommendations.models import Event

    return Event.objects.filter(**filters).count()


def wait_for_count(expected: int, *, timeout: float = 60.0, interval: float = 0.05, **filters: Any) -> int:
    """Poll the event count until it reaches ``expected`` or ``timeout`` passes; returns the count."""
    deadline = time.monotonic() + timeout
    value = count_events(**filters)
    while value < expected and time.monotonic() < deadline:
        time.sleep(interval)
        value = count_events(**filters)
    return value


def purge_queue(queue: str) -> int:
    """Drop the messages waiting on ``queue``; returns how many there were."""
    from config.celery import app

    with app.connection_for_write() as connection:
        return connection.default_channel.queue_purge(queue) or 0


@contextmanager
def celery_worker(queue: str) -> Iterator[subprocess.Popen]:
    """A real Celery worker subprocess on ``queue``, with the bench settings; stopped on exit."""
    from config.celery import app

    hostname = f"bench-{os.getpid()}@%h"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": common.SETTINGS_MODULE,
        "RECOMMENDATIONS_BENCH_QUEUE": queue,
    }
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115  (closed in the finally below)
        "w", prefix="bench-celery-", suffix=".log", delete=False
    )
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
            hostname,
            "--without-gossip",
            "--without-mingle",
            "--loglevel=WARNING",
        ],
        cwd=common.ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    failed = True
    try:
        prefix = hostname.split("@")[0] + "@"
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited with {process.returncode}; see {log.name}")
            replies = app.control.ping(timeout=0.5)
            if any(name.startswith(prefix) for reply in replies for name in reply):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not answer a ping within 60 s; see {log.name}")
        common.progress(f"Celery worker pid {process.pid} ready on queue {queue}")
        yield process
        failed = False
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        if failed:
            common.progress(f"worker log kept: {log.name}")
        else:
            Path(log.name).unlink(missing_ok=True)


# --- 1. middleware overhead ----------------------------------------------------------------


@dataclasses.dataclass
class OverheadResult:
    label: str  # the table's first column
    without: list[float]  # seconds per request
    with_: list[float]
    round_ratios: list[float]
    sent: int  # tracked requests (warm-up included): one view event each
    stored: int  # view events found in the database afterwards
    note: str = ""  # after stored / sent

    @property
    def ratio(self) -> float:
        return common.median(self.with_) / common.median(self.without)


def make_client(middleware: Sequence[str]) -> Any:
    """A test client whose handler has ``middleware`` loaded, carrying an established session."""
    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import Client, override_settings

    with override_settings(MIDDLEWARE=list(middleware)):
        client = Client(HTTP_USER_AGENT=BROWSER_UA)
        client.handler.load_middleware()
    session = SessionStore()
    session["bench_shopper"] = True  # an empty session would be dropped by SessionMiddleware
    session.save()
    client.cookies[settings.SESSION_COOKIE_NAME] = session.session_key
    return client


def time_requests(client: Any, urls: Sequence[str]) -> list[float]:
    """Seconds each GET took, ``response.close()`` included (the test client closes it)."""
    samples = []
    clock = time.perf_counter
    for url in urls:
        start = clock()
        response = client.get(url)
        samples.append(clock() - start)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
    return samples


def measure_overhead(
    recorder: str, label: str, urls: Sequence[str], sizes: Sizes, *, wait: bool
) -> OverheadResult:
    """ABBA rounds of the product page with and without ``EventMiddleware``, events to ``recorder``.

    With ``wait``, the stored view events are counted once the recorder (or worker) has written
    them all (or after a timeout); without it they are counted at once.
    """
    from django.conf import settings
    from django.test import override_settings

    common.progress(
        f"middleware overhead, {label.replace('`', '')}: {sizes.rounds} ABBA rounds x {sizes.per_block}"
    )
    base = [m for m in settings.MIDDLEWARE if m != EVENT_MIDDLEWARE]
    with override_settings(RECOMMENDATIONS={**settings.RECOMMENDATIONS, "RECORDER": recorder}):
        truncate_events()
        clients = {"with": make_client([*base, EVENT_MIDDLEWARE]), "without": make_client(base)}
        warm = [urls[i % len(urls)] for i in range(sizes.warmup)]
        for client in clients.values():
            time_requests(client, warm)
        sent = len(warm)
        samples: dict[str, list[float]] = {"with": [], "without": []}
        round_ratios = []
        offset = 0
        for index in range(sizes.rounds):
            block = [urls[(offset + i) % len(urls)] for i in range(sizes.per_block)]
            offset += sizes.per_block
            order = ("with", "without") if index % 2 == 0 else ("without", "with")
            times = {variant: time_requests(clients[variant], block) for variant in order}
            for variant, values in times.items():
                samples[variant].extend(values)
            round_ratios.append(common.median(times["with"]) / common.median(times["without"]))
            sent += len(block)
        stored = (
            wait_for_count(sent, timeout=120, event_type="view") if wait else count_events(event_type="view")
        )
        if count_events() != stored:
            raise RuntimeError("events other than product views were stored")
    return OverheadResult(label, samples["without"], samples["with"], round_ratios, sent, stored)


def measure_handoff(products: Sequence[Any], sizes: Sizes) -> tuple[dict[str, list[float]], int, int]:
    """Seconds one ``recorder.record([one view])`` call takes, per recorder, in alternating blocks.

    This is the step of a tracked request that differs between the recorders (``flush`` hands
    the request's buffer to the recorder); returns the samples, the events sent and stored.
    """
    from recommendations.capture.ingress import build_record
    from recommendations.capture.recorders import CeleryRecorder, DatabaseRecorder

    common.progress(
        f"hand-off cost: {sizes.handoff_blocks} blocks x {sizes.handoff_calls} calls per recorder"
    )
    truncate_events()
    recorders = {"CeleryRecorder": CeleryRecorder(), "DatabaseRecorder": DatabaseRecorder()}
    samples: dict[str, list[float]] = {name: [] for name in recorders}
    rng = random.Random(7)
    clock = time.perf_counter
    sent = 0
    for block in range(sizes.handoff_blocks + 1):  # block 0 warms up and is not kept
        order = list(recorders) if block % 2 == 0 else list(reversed(recorders))
        for name in order:
            records = [
                build_record("view", item=rng.choice(products), session_key=uuid.uuid4().hex, source="web")
                for _ in range(sizes.handoff_calls)
            ]
            recorder = recorders[name]
            for record in records:
                start = clock()
                recorder.record([record])
                elapsed = clock() - start
                if block:
                    samples[name].append(elapsed)
            sent += len(records)
    stored = wait_for_count(sent, timeout=120)
    truncate_events()
    return samples, sent, stored


# --- 2. ingestion rate ---------------------------------------------------------------------


@dataclasses.dataclass
class IngestRun:
    events: int
    seconds: float
    stored: int
    enqueue_seconds: float | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def realistic_records(products: Sequence[Any], count: int, rng: random.Random) -> list[Any]:
    """``count`` events of a few thousand anonymous visitors, built by ``tracking.build_record``."""
    from recommendations.capture.ingress import build_record

    visitors = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(max(20, count // 25))]
    kinds = rng.choices(
        ("view", "category_view", "search", "cart", "purchase"), weights=(80, 8, 6, 5, 1), k=count
    )
    records = []
    for kind in kinds:
        product = rng.choice(products)
        visitor = rng.choice(visitors)
        if kind == "category_view":
            record = build_record(kind, category=product.category.slug, session_key=visitor, source="web")
        elif kind == "search":
            record = build_record(
                kind,
                query=rng.choice(SEARCH_QUERIES),
                result_count=rng.randint(0, 300),
                session_key=visitor,
                source="web",
            )
        else:
            quantity = rng.randint(1, 3) if kind in {"cart", "purchase"} else None
            record = build_record(kind, item=product, quantity=quantity, session_key=visitor, source="web")
        records.append(record)
    return records


def batched(records: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(records[i : i + size]) for i in range(0, len(records), size)]


def ingest_bulk(batches: Sequence[Sequence[Any]]) -> IngestRun:
    from recommendations.capture.recorders import DatabaseRecorder

    recorder = DatabaseRecorder()
    total = sum(len(batch) for batch in batches)
    start = time.perf_counter()
    for batch in batches:
        recorder.write(batch)  # the synchronous bulk path the background batcher calls
    seconds = time.perf_counter() - start
    return IngestRun(total, seconds, count_events())


def ingest_celery(batches: Sequence[Sequence[Any]]) -> IngestRun:
    from recommendations.capture.recorders import CeleryRecorder

    recorder = CeleryRecorder()
    total = sum(len(batch) for batch in batches)
    start = time.perf_counter()
    for batch in batches:
        recorder.write(batch)  # one message per batch, as the background batcher sends them
    enqueued = time.perf_counter() - start
    stored = wait_for_count(total, timeout=300, interval=0.05)
    seconds = time.perf_counter() - start
    return IngestRun(total, seconds, stored, enqueued)


def ingest_naive(records: Sequence[Any]) -> IngestRun:
    from recommendations.models import Event

    start = time.perf_counter()
    for record in records:
        Event.objects.create(**dataclasses.asdict(record))
    seconds = time.perf_counter() - start
    return IngestRun(len(records), seconds, count_events())


def measure_ingestion(products: Sequence[Any], sizes: Sizes) -> dict[str, list[IngestRun]]:
    rng = random.Random(20240611)
    runs: dict[str, list[IngestRun]] = {"bulk": [], "celery": [], "naive": []}
    bulk_events = sizes.batches * sizes.batch_size
    for repetition in range(sizes.repetitions):
        # Fresh records each time: every event has its own client_event_id.
        bulk = batched(realistic_records(products, bulk_events, rng), sizes.batch_size)
        celery = batched(realistic_records(products, bulk_events, rng), sizes.batch_size)
        naive = realistic_records(products, sizes.naive_events, rng)
        paths: dict[str, Callable[[], IngestRun]] = {
            "bulk": lambda bulk=bulk: ingest_bulk(bulk),
            "celery": lambda celery=celery: ingest_celery(celery),
            "naive": lambda naive=naive: ingest_naive(naive),
        }
        order = list(paths)
        order = order[repetition % 3 :] + order[: repetition % 3]
        for name in order:
            truncate_events()
            run_ = paths[name]()
            common.progress(
                f"ingestion {repetition + 1}/{sizes.repetitions} {name}: "
                f"{run_.events} events in {run_.seconds:.2f} s = {run_.rate:,.0f}/s (stored {run_.stored})"
            )
            runs[name].append(run_)
    truncate_events()
    return runs


# --- the section ---------------------------------------------------------------------------


def stored_over_sent(runs: Sequence[IngestRun]) -> str:
    pairs = [(r.stored, r.events) for r in runs]
    if len(set(pairs)) == 1:
        return f"{pairs[0][0]:,} / {pairs[0][1]:,} (each of {len(pairs)})"
    return ", ".join(f"{stored:,} / {sent:,}" for stored, sent in pairs)


def section(
    overheads: Sequence[OverheadResult],
    handoff: tuple[dict[str, list[float]], int, int],
    ingestion: dict[str, list[IngestRun]],
    sizes: Sizes,
    quick: bool,
) -> Section:
    import celery
    import redis
    from django.conf import settings

    redis_version = redis.Redis.from_url(settings.CELERY_BROKER_URL).info("server")["redis_version"]
    requests = sizes.rounds * sizes.per_block
    method = (
        f"in-process `django.test.Client` requests of the demo product page, {sizes.products} real products in turn, "
        f"with vs without `EventMiddleware`; {sizes.rounds} rounds of {sizes.per_block} requests per variant in ABBA "
        f"order after {sizes.warmup} warm-up requests each ({requests} timed requests per variant); a request is "
        f"timed including `response.close()`, where the middleware hands its events to the recorder. "
        f"Ingestion: {sizes.repetitions} interleaved repetitions of {sizes.batches} batches x {sizes.batch_size} "
        f"events per path ({sizes.naive_events} events for the one-by-one baseline). Celery {celery.__version__} "
        f"with a real worker (`--pool=solo`) on Redis {redis_version}, both on this machine, as is PostgreSQL. "
        "The event table is truncated before each measurement. Details: docstring of `bench/capture.py`."
    )
    return common.section(
        "Event capture: middleware overhead and ingestion rate",
        method,
        [overhead_part(overheads, handoff, sizes), ingestion_part(ingestion)],
        quick=quick,
    )


def overhead_part(
    overheads: Sequence[OverheadResult], handoff: tuple[dict[str, list[float]], int, int], sizes: Sizes
) -> Part:
    rows = [
        [
            result.label,
            ms(common.median(result.without)),
            ms(common.median(result.with_)),
            strong(f"{result.ratio:.3f}"),
            f"{common.median(result.round_ratios):.3f}",
            ms(common.percentile(result.without, 95)),
            ms(common.percentile(result.with_, 95)),
            f"{result.stored} / {result.sent}{result.note}",
        ]
        for result in overheads
    ]
    table = Table(
        [
            "recorder",
            "median without",
            "median with",
            "ratio of medians",
            "median of round ratios",
            "p95 without",
            "p95 with",
            "view events stored / sent",
        ],
        rows,
    )
    celery_result = overheads[0]
    added = common.median(celery_result.with_) - common.median(celery_result.without)
    samples, sent, stored = handoff
    return Part(
        "Middleware overhead (product page)",
        [
            "Each row is its own side-by-side comparison (with vs without the middleware, ABBA rounds). "
            "The first row is the production set-up and the target; the second was measured before the worker "
            "started, so nothing competed for the CPU and the page paid only for publishing to Redis. "
            "The product page's recommendation carousels are switched off on both sides (their cost is in the "
            "Serving section), so the difference is capture alone.",
            table,
            f"Target: ratio of medians ≤ {RATIO_TARGET:.2f} with the `CeleryRecorder`: "
            f"{verdict(celery_result.ratio <= RATIO_TARGET)} "
            f"({celery_result.ratio:.3f}; the middleware adds {ms(added)} to the median request). "
            "The other rows are for information: the `DatabaseRecorder` inserts in the web process; the no-op "
            "recorder (`bench.recorders.NullRecorder`) discards the events, so its row is the cost of the "
            "middleware itself (trackability checks, visitor id, building the record), without any hand-off.",
            "Where the difference goes: one call of `recorder.record([one view event])` outside a transaction, "
            "the step a tracked request adds in `response.close()` (the rest of the middleware is the same for "
            f"both recorders); {sizes.handoff_blocks} alternating blocks of {sizes.handoff_calls} calls each, "
            f"with the worker consuming (events stored / sent, both recorders: {stored} / {sent}):",
            Table(
                ["recorder", "median per call", "p95 per call"],
                [
                    [f"`{name}`", ms(common.median(values)), ms(common.percentile(values, 95))]
                    for name, values in samples.items()
                ],
            ),
        ],
    )


def ingestion_part(ingestion: dict[str, list[IngestRun]]) -> Part:
    naive_rates = [r.rate for r in ingestion["naive"]]
    labels = {
        "bulk": "`DatabaseRecorder().write(batch)` → `write_events` (bulk, in-process)",
        "celery": "`CeleryRecorder().write(batch)` → Redis → worker `write_events` (end to end)",
        "naive": "`Event.objects.create` one by one (naive baseline)",
    }
    rows = []
    for name in ("bulk", "celery", "naive"):
        runs = ingestion[name]
        rates = [r.rate for r in runs]
        rows.append(
            [
                labels[name],
                runs[0].events,
                strong(f"{common.median(rates):,.0f}"),
                f"{min(rates):,.0f} to {max(rates):,.0f}",
                f"{common.median([a / b for a, b in zip(rates, naive_rates, strict=True)]):.1f}x",
                stored_over_sent(runs),
            ]
        )
    table = Table(
        [
            "path",
            "events per repetition",
            "events/s (median)",
            "min to max",
            "vs naive (same repetition)",
            "stored / sent",
        ],
        rows,
    )
    bulk_rate = common.median([r.rate for r in ingestion["bulk"]])
    enqueue_rate = common.median(
        [r.events / r.enqueue_seconds for r in ingestion["celery"] if r.enqueue_seconds]
    )
    return Part(
        "Ingestion rate into PostgreSQL",
        [
            table,
            f"Target: ≥ {INGEST_TARGET:,.0f} events/s through the bulk path: {verdict(bulk_rate >= INGEST_TARGET)} "
            f"({bulk_rate:,.0f}/s). Enqueueing alone (what the web side of the Celery path pays) runs at "
            f"{enqueue_rate:,.0f} events/s.",
        ],
    )


def run(quick: bool) -> Section:
    """Run the capture suite and return its section."""
    common.setup_django()
    from django.conf import settings
    from django.test import override_settings
    from django.urls import reverse

    from shop.models import Product

    sizes = QUICK if quick else FULL
    # Product pages now also render recommendation carousels; their cost (and their impression
    # events) belongs to the serving suite. Here they are switched off, so both sides of the
    # comparison render the same page and the difference is capture alone.
    from recommendations.templatetags import recommendations_tags

    recommendations_tags.carousel = lambda context, scenario, title, **kwargs: {"entries": []}
    common.progress("loading the demo catalogue (shop_load_demo --no-events)")
    from django.core.management import call_command

    call_command("shop_load_demo", "--no-events", stdout=StringIO())
    ids = list(Product.objects.active().order_by("pk").values_list("pk", flat=True))
    step = max(1, len(ids) // sizes.products)
    urls = [reverse("shop:product", kwargs={"pk": pk}) for pk in ids[::step][: sizes.products]]
    products = list(Product.objects.active().select_related("category").order_by("pk"))

    queue = settings.RECOMMENDATIONS["CELERY_QUEUE"]
    purge_queue(queue)  # left over by an interrupted run, it would skew the counts
    with override_settings(RECOMMENDATIONS={**settings.RECOMMENDATIONS, "CELERY_QUEUE": queue}):
        try:
            # Before the worker starts: the web side of the Celery path alone (Redis keeps the
            # messages; the worker stores them once it starts, which is checked below).
            idle = measure_overhead(
                CELERY_RECORDER,
                "`CeleryRecorder`, worker not yet consuming (publish cost alone)",
                urls,
                sizes,
                wait=False,
            )
            with celery_worker(queue):
                # The backlog of one-event tasks also shows how fast the worker stores them.
                backlog, start = count_events(), time.perf_counter()
                idle.stored = wait_for_count(idle.sent, timeout=120, event_type="view")
                drained = (idle.stored - backlog) / max(time.perf_counter() - start, 1e-9)
                common.progress(f"worker stored the backlog of one-event tasks at {drained:,.0f} events/s")
                idle.note = (
                    f" (stored once the worker started; it drained {idle.stored - backlog} one-event "
                    f"tasks at {drained:,.0f}/s)"
                )
                overheads = [
                    measure_overhead(
                        CELERY_RECORDER, "`CeleryRecorder`, real worker running", urls, sizes, wait=True
                    ),
                    idle,
                    measure_overhead(DATABASE_RECORDER, "`DatabaseRecorder`", urls, sizes, wait=True),
                    measure_overhead(
                        NULL_RECORDER, "`NullRecorder` (no-op: the middleware alone)", urls, sizes, wait=False
                    ),
                ]
                overheads[-1].note = " (discarded)"
                handoff = measure_handoff(products, sizes)
                ingestion = measure_ingestion(products, sizes)
        finally:
            truncate_events()
    return section(overheads, handoff, ingestion, sizes, quick)
