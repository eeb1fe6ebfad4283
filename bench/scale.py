"""Scale suite: the event table at 1M, 3M and 10M rows in PostgreSQL.

1. **Growing the table**: resampled real REES46 shoppers (``bench/resample.py``) inserted with
   ``COPY ... FROM STDIN`` in steps (1M, then 2M more, then 7M more), under the app's indexes.
2. **Reading it for training** at each size, side by side: ``events_frame()`` as training runs
   it (PostgreSQL's COPY parsed by Arrow's CSV reader, ``lifecycle/reading.py``) against the previous
   reader (``values_list`` rows converted in Python chunks; at 1M and 3M only, where it takes
   under a few minutes). Each read runs in a fresh process, so its peak memory (maximum resident
   size) is its own; preprocessing (``Preprocessor.fit_transform``) follows in the same process.
3. **The per-shopper history query** (``serving/history._stored``: one shopper's latest events
   and purchases, on ``rec_event_session_latest``) for random shoppers at each size: p50/p99.
4. **Shop-wide refreshes** at each size: trending, all-time popularity and baskets (the beat
   task's rankings, ``serving/popularity``) and the co-view counts of popular items.
5. **Retention at the largest size**: the oldest 30 days deleted three ways, side by side:
   one ``DELETE`` (rolled back), ``privacy.purge_expired_events`` (consecutive time windows of
   50,000 events, for real) and, on a monthly-partitioned copy of the table, detaching and dropping the oldest
   partition; a writer inserts an event every 10 ms throughout, and its slowest insert says
   whether writes were blocked. The copy also answers the history query side by side with the
   plain table, the price partitioning would charge every page.

Growth is drawn on a log-log plot; a slope of 1 is linear in events.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import common
from bench.report import Figure, Part, Section, Table, strong, verdict

SOURCE = "bench-scale"
CHART_PATH = common.ROOT / "docs" / "benchmarks" / "scale.png"
OUT_DIR = common.ROOT / "var" / "bench"
N_ITEMS = 100_000
DAYS = 180  # the resampled events span half a year: TRAINING_WINDOW_DAYS, six monthly partitions
RETENTION_TARGET_SECONDS = 5.0  # deleting a month's events at 10M
READ_TARGET_SECONDS = 60.0  # reading 10M events
HISTORY_TARGET_MS = 5.0  # p99 of the history query at 10M rows
RETRAIN_TARGET_SECONDS = 30 * 60  # the whole retrain at 10M events
RETRAIN_MEMORY_TARGET_MB = 6 * 1024


@dataclass(frozen=True)
class Sizes:
    steps: tuple[int, ...]  # table sizes, ascending
    row_reader_up_to: int  # the Python row reader runs at sizes up to this
    history_queries: int
    retrain_at: tuple[int, ...]  # the whole retrain runs at these sizes


FULL = Sizes(
    steps=(1_000_000, 3_000_000, 10_000_000),
    row_reader_up_to=3_000_000,
    history_queries=400,
    # The whole retrain only when asked: each takes up to half an hour here.
    retrain_at=tuple(
        int(size)
        for size in os.environ.get("RECOMMENDATIONS_BENCH_RETRAIN_AT", "").split(",")
        if size.strip()
    ),
)
QUICK = Sizes(
    steps=(20_000, 60_000), row_reader_up_to=60_000, history_queries=50, retrain_at=(20_000, 60_000)
)
#: Popular items whose co-view counts are computed at each size.
CO_VIEW_ITEMS = 20


def _insert(frame, seed: int) -> float:
    """COPY ``frame`` (canonical columns) into the event table; returns seconds."""
    from django.db import connection

    from recommendations.models import Event

    columns = {
        "timestamp": frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00"),
        "event_type": frame["event"],
        "session_key": f"scale{seed}-" + frame["session"],
        "external_user_id": frame["user"].where(frame["user"] == "", f"scale{seed}-" + frame["user"]),
        "item_id": frame["item"],
        "category_id": frame["category"].str.slice(0, 128),
        "query": frame["query"].str.slice(0, 255),
        "price": frame["price"].round(2),
        "quantity": frame["quantity"],
        "source": SOURCE,
    }
    import pandas as pd

    table = pd.DataFrame(columns)
    table["quantity"] = table["quantity"].astype("Int64")
    names = list(table.columns)
    # The other NOT NULL columns take their defaults (empty text, or the model's default).
    for field in Event._meta.concrete_fields:
        if field.column in names or field.null or field.primary_key:
            continue
        default = field.get_default()
        table[field.column] = json.dumps(default) if isinstance(default, (dict, list)) else default
    # CSV's unquoted empty field is NULL: text columns that may not be NULL read it as "".
    text = [
        f.column
        for f in Event._meta.concrete_fields
        if f.column in table and not f.null and f.column != "timestamp"
    ]
    text = [
        column
        for column in text
        if table[column].dtype == object or str(table[column].dtype) in ("str", "string")
    ]
    start = time.perf_counter()
    with connection.cursor() as cursor:
        statement = (
            f"COPY {Event._meta.db_table} ({', '.join(table.columns)}) FROM STDIN "
            f"WITH (FORMAT csv, FORCE_NOT_NULL ({', '.join(text)}))"
        )
        with cursor.cursor.copy(statement) as copy:
            for begin in range(0, len(table), 200_000):
                buffer = io.StringIO()
                table.iloc[begin : begin + 200_000].to_csv(buffer, header=False, index=False)
                copy.write(buffer.getvalue())
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Event._meta.db_table}")
    return time.perf_counter() - start


READER = r"""
import json, sys, time
from bench import common
common.setup_django()
from recommendations.lifecycle import reading
from recommendations.ml.preprocessing import Preprocessor
from recommendations.models import Event
how = sys.argv[1]
# In time order, as training reads them (reading.events_frame): a frame in another order is
# sorted by normalize_frame, ten million rows copied again, which training never does.
rows = Event.objects.order_by("timestamp", "pk").values_list(*reading._FIELDS)
start = time.perf_counter()
frame = reading._copy_frame(rows) if how == "copy" else reading._chunked_frame(rows, 20_000)
read = time.perf_counter() - start
read_peak = common.peak_rss_mb()
start = time.perf_counter()
Preprocessor().fit_transform(frame)
prep = time.perf_counter() - start
peak = common.peak_rss_mb()
print(json.dumps({"rows": len(frame), "read": read, "read_peak_mb": read_peak, "prep": prep, "peak_mb": peak}))
"""


def _read(how: str) -> dict:
    """One read (and preprocessing) in a fresh process: its times and peak memory."""
    return common.in_fresh_process(READER, how, timeout=3600)


RETRAIN = r"""
import contextlib, json, sys, time
from bench import common
common.setup_django()
from recommendations.lifecycle import registry

marks = []  # (seconds since start, phase) at each change of phase
start = time.perf_counter()
original = registry._report


NAMED = {"reading events": "reading events", "reading the catalogue": "reading the catalogue",
         "writing files": "writing files", "refitting on every event": "refit on every event"}


def phase_of(progress):
    if progress.get("refit"):
        return "refit on every event"
    # Every other message (and every epoch row) comes from the evaluation's fits and scoring.
    return NAMED.get(progress.get("stage"), "evaluate (fit on the earlier part, baselines, holdout)")


fits = {}  # model name -> seconds its fit took, from "Fitted NAME in S s"
step_peaks = {}  # each reported step -> the peak resident size until the next report
current = ["start"]


def close_step(label):
    step_peaks[current[0]] = max(step_peaks.get(current[0], 0.0), common.peak_rss_mb())
    # VmHWM starts again from the resident size now. Where Linux refuses, the peaks stay
    # cumulative: each step's is then an upper bound, and the largest is still the retrain's.
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    current[0] = label


def report(version_id, **progress):
    stage = progress.get("stage")
    if isinstance(stage, str):  # a step, not an epoch row
        close_step(stage[:70] + (" (refit)" if progress.get("refit") else ""))
    if isinstance(stage, str) and stage.startswith("Fitted ") and " in " in stage:
        name, _, took = stage[len("Fitted "):].rpartition(" in ")
        fits[name] = fits.get(name, 0.0) + float(took.split()[0])
    phase = phase_of(progress)
    if not marks or marks[-1][1] != phase:
        marks.append((time.perf_counter() - start, phase))
    original(version_id, **progress)


registry._report = report
version, _ = registry.request_training()
version = registry.train_version(version.pk)
marks.append((time.perf_counter() - start, "promote and clean up"))
total = time.perf_counter() - start
phases = {}
for (at, phase), (end, _) in zip(marks, marks[1:] + [(total, "")]):
    phases[phase] = phases.get(phase, 0.0) + end - at
close_step("end")
peak = max(step_peaks.values())
epochs = len(version.history or [])
print(json.dumps({"total": total, "phases": phases, "peak_mb": peak, "step_peaks": step_peaks, "status": version.status,
                  "error": version.error[:300], "events": version.event_count, "items": version.n_items,
                  "epochs": epochs, "version": version.pk, "fits": fits}))
"""


def _retrain(media: Path) -> dict:
    """A whole retrain (``registry.train_version``, the app's default settings) in a fresh
    process: seconds per phase and peak memory; its version is removed after, finished or not."""
    from recommendations.models import ModelVersion

    before = ModelVersion.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    try:
        return common.in_fresh_process(RETRAIN, timeout=4 * 3600, DJANGO_MEDIA_ROOT=str(media))
    finally:
        ModelVersion.objects.filter(pk__gt=before).delete()


def _random_visitors(n: int, seed: int) -> list[str]:
    """``n`` random anonymous shoppers of the scale events (a 1 % block sample, then a draw)."""
    import numpy as np
    from django.db import connection

    from recommendations.models import Event

    visitors: list[str] = []
    with connection.cursor() as cursor:
        # A small table's 1 % of blocks may hold none of them: then every row is a candidate.
        for sample in ("TABLESAMPLE SYSTEM (1)", ""):
            cursor.execute(
                f"SELECT session_key FROM {Event._meta.db_table} {sample} "  # noqa: S608 - the model's table
                "WHERE source = %s LIMIT 20000",
                [SOURCE],
            )
            visitors = [row[0] for row in cursor.fetchall()]
            if visitors:
                break
    rng = np.random.default_rng(seed)
    return [str(v) for v in rng.choice(visitors, size=min(n, len(visitors)), replace=False)]


def _history_latency(n: int, seed: int) -> list[float]:
    """Seconds of the history query for ``n`` random shoppers of the table."""
    from recommendations.identity import Shopper
    from recommendations.serving.history import _stored

    times = []
    for visitor in _random_visitors(n, seed):
        start = time.perf_counter()
        _stored(Shopper(visitor=visitor), 30)
        times.append(time.perf_counter() - start)
    return times


def _refreshes(seed: int) -> dict:
    """Seconds of each shop-wide ranking's refresh at this size, and of co-view counts of
    random items among the 500 most popular (what a product page's similar list reads)."""
    import numpy as np

    from recommendations.models import EventType
    from recommendations.serving import popularity

    timed: dict = {}
    rankings = {}
    for name, compute in (
        ("trending", popularity._trending_now),
        ("popular", popularity._popular_now),
        ("baskets", popularity._baskets_now),
    ):
        start = time.perf_counter()
        rankings[name] = compute()
        timed[name] = time.perf_counter() - start
    popular = [item for item, _, _ in rankings["popular"].items[:500]]
    rng = np.random.default_rng(seed)
    co_view = []
    for item in rng.choice(popular, size=min(CO_VIEW_ITEMS, len(popular)), replace=False):
        start = time.perf_counter()
        popularity._co_counts(str(item), [EventType.VIEW, EventType.CLICK, EventType.CART])
        co_view.append(time.perf_counter() - start)
    timed["co_view"] = co_view
    return timed


class _Writer:
    """A thread that inserts one event every 10 ms on its own connection: the latency of
    each insert says whether a clean-up running meanwhile blocks writes."""

    def __init__(self) -> None:
        import threading

        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from django.db import connection
        from django.utils import timezone

        from recommendations.models import Event

        try:
            while not self.stop.is_set():
                start = time.perf_counter()
                Event.objects.create(
                    event_type="view",
                    session_key="scale-writer",
                    item_id="1",
                    source=SOURCE,
                    timestamp=timezone.now(),
                )
                self.latencies.append(time.perf_counter() - start)
                self.stop.wait(0.01)
        finally:
            connection.close()

    def __enter__(self) -> _Writer:
        self.thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.5)
        self.stop.set()
        self.thread.join()

    def summary(self) -> dict:
        return {
            "writes": len(self.latencies),
            "max_ms": max(self.latencies) * 1000 if self.latencies else None,
            "p99_ms": common.percentile(self.latencies, 99) * 1000 if self.latencies else None,
        }


def _retention() -> dict:
    """The oldest 30 days of the scale events deleted three ways (see the module docstring)."""
    from datetime import timedelta

    from django.conf import settings
    from django.db import connection, transaction
    from django.db.models import Max, Min
    from django.test import override_settings

    from recommendations.capture import privacy
    from recommendations.models import Event

    table = Event._meta.db_table
    scale = Event.objects.filter(source=SOURCE)
    bounds = scale.aggregate(oldest=Min("timestamp"), newest=Max("timestamp"))
    cutoff = bounds["oldest"] + timedelta(days=30)
    if Event.objects.filter(timestamp__lt=cutoff).exclude(source=SOURCE).exists():
        return {"skipped": "the bench table holds other events older than the cut-off"}
    result: dict = {"month": scale.filter(timestamp__lt=cutoff).count()}

    # The design for size, measured on a copy: monthly partitions, retention by dropping one.
    partitioned = "bench_scale_partitioned"
    common.progress("retention: a monthly-partitioned copy of the table")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {partitioned} CASCADE")
        cursor.execute(
            f"CREATE TABLE {partitioned} (LIKE {table} INCLUDING DEFAULTS) PARTITION BY RANGE (timestamp)"
        )
        start, months = bounds["oldest"], 0
        while start <= bounds["newest"]:
            end = start + timedelta(days=30)
            cursor.execute(
                f"CREATE TABLE {partitioned}_{months} PARTITION OF {partitioned} FOR VALUES FROM (%s) TO (%s)",
                [start, end],
            )
            start, months = end, months + 1
        begun = time.perf_counter()
        cursor.execute(f"INSERT INTO {partitioned} SELECT * FROM {table} WHERE source = %s", [SOURCE])  # noqa: S608
        cursor.execute(f"CREATE INDEX ON {partitioned} (session_key, timestamp DESC)")
        cursor.execute(f"CREATE INDEX ON {partitioned} (user_id, timestamp DESC)")
        cursor.execute(f"CREATE INDEX ON {partitioned} (timestamp DESC)")
        cursor.execute(f"ANALYZE {partitioned}")
        result["partitions"] = months
        result["copy_seconds"] = time.perf_counter() - begun
    result["history"] = _history_side_by_side(partitioned)
    try:
        with _Writer() as writer, connection.cursor() as cursor:
            begun = time.perf_counter()
            cursor.execute(f"ALTER TABLE {partitioned} DETACH PARTITION {partitioned}_0")
            cursor.execute(f"DROP TABLE {partitioned}_0")
            result["partition_drop"] = time.perf_counter() - begun
        result["partition_writes"] = writer.summary()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {partitioned} CASCADE")

    common.progress(f"retention: one DELETE of {result['month']:,} events (rolled back)")
    with _Writer() as writer:
        begun = time.perf_counter()
        with transaction.atomic():
            Event.objects.filter(timestamp__lt=cutoff).delete()
            result["one_statement"] = time.perf_counter() - begun
            transaction.set_rollback(True)
    result["one_statement_writes"] = writer.summary()

    common.progress(f"retention: purge_expired_events of {result['month']:,} events (time windows)")
    days = 60
    recommendations = {**getattr(settings, "RECOMMENDATIONS", {}), "RETENTION_DAYS": days}
    with override_settings(RECOMMENDATIONS=recommendations), _Writer() as writer:
        begun = time.perf_counter()
        result["deleted"] = privacy.purge_expired_events(now=cutoff + timedelta(days=days))
        result["batched"] = time.perf_counter() - begun
    result["batched_writes"] = writer.summary()
    return result


def _history_side_by_side(partitioned: str, n: int = 200) -> dict:
    """The history query's SQL on the plain table and on the partitioned copy, alternated."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from recommendations.identity import Shopper
    from recommendations.models import Event
    from recommendations.serving.history import _stored

    table = Event._meta.db_table
    plain, split = [], []
    for visitor in _random_visitors(n, 7):
        with CaptureQueriesContext(connection) as queries:
            _stored(Shopper(visitor=visitor), 30)
        sql = queries.captured_queries[-1]["sql"]
        for name, times in ((table, plain), (partitioned, split)):
            statement = sql.replace(f'"{table}"', f'"{name}"')
            with connection.cursor() as cursor:
                start = time.perf_counter()
                cursor.execute(statement)
                cursor.fetchall()
                times.append(time.perf_counter() - start)
    return {
        "plain_p50": common.median(plain) * 1000,
        "plain_p99": common.percentile(plain, 99) * 1000,
        "partitioned_p50": common.median(split) * 1000,
        "partitioned_p99": common.percentile(split, 99) * 1000,
    }


def _cleanup(empty_before: bool) -> None:
    from django.db import connection

    from recommendations.models import Event

    with connection.cursor() as cursor:
        if empty_before:
            cursor.execute(f"TRUNCATE {Event._meta.db_table}")
        else:
            cursor.execute(f"DELETE FROM {Event._meta.db_table} WHERE source = %s", [SOURCE])  # noqa: S608


def _slope(xs: list[float], ys: list[float]) -> float | None:
    """Growth exponent between the first and last point (log-log); None with fewer than two."""
    import math

    if len(xs) < 2 or ys[0] <= 0 or ys[-1] <= 0:
        return None
    return math.log(ys[-1] / ys[0]) / math.log(xs[-1] / xs[0])


def _chart(path: Path, steps: list[int], series: dict[str, list[float | None]]) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6.4, 4.0))
    for name, values in series.items():
        points = [(x, y) for x, y in zip(steps, values, strict=True) if y]
        if points:
            axis.plot(*zip(*points, strict=True), marker="o", label=name)
    if steps:
        axis.plot(
            [steps[0], steps[-1]], [1, steps[-1] / steps[0]], ":", color="#999", label="linear (slope 1)"
        )
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("events in the table")
    axis.set_ylabel("seconds (or MB / 100 for memory)")
    axis.set_title("Growth with the event table (log-log)", fontsize=9)
    axis.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.stat().st_size


def run(quick: bool) -> Section:
    common.setup_django()
    from bench import resample
    from recommendations.models import Event

    sizes = QUICK if quick else FULL
    base = resample.load_base()
    empty_before = not Event.objects.exists()
    results: list[dict] = []
    inserted = 0
    try:
        for step, target in enumerate(sizes.steps):
            adding = target - inserted
            common.progress(f"resampling {adding:,} events (table to {target:,})")
            frame = resample.resample_events(base, adding, N_ITEMS, seed=100 + step, days=DAYS)
            common.progress(f"COPY {adding:,} events into the table")
            insert_seconds = _insert(frame, step)
            del frame
            inserted = target
            row = {"size": target, "insert": insert_seconds, "added": adding}
            common.progress(f"{target:,}: reading with COPY (fresh process)")
            row["copy"] = _read("copy")
            if target <= sizes.row_reader_up_to:
                common.progress(f"{target:,}: reading rows in Python chunks (fresh process)")
                row["rows"] = _read("rows")
            common.progress(f"{target:,}: history query for {sizes.history_queries} shoppers")
            row["history"] = _history_latency(sizes.history_queries, step)
            common.progress(f"{target:,}: trending, popularity, baskets and co-view refreshes")
            row["refresh"] = _refreshes(step)
            if target in sizes.retrain_at:
                common.progress(f"{target:,}: the whole retrain (fresh process)")
                with tempfile.TemporaryDirectory(prefix="bench-scale-") as media:
                    row["retrain"] = _retrain(Path(media))
                common.progress(
                    f"{target:,}: retrain {row['retrain']['total']:.0f} s, {row['retrain']['status']}"
                )
            results.append(row)
        results[-1]["retention"] = _retention()
    finally:
        common.progress("removing the scale events")
        _cleanup(empty_before)
    return _section(results, sizes, quick)


def _retention_part(retention: dict | None) -> Part:
    if not retention or "skipped" in retention:
        return Part("Retention", [f"Not measured: {retention['skipped'] if retention else 'no table'}."])

    def writes(key: str) -> str:
        w = retention[key]
        return f"{w['writes']} inserts, slowest {w['max_ms']:.0f} ms, p99 {w['p99_ms']:.1f} ms"

    history = retention["history"]
    ok = retention["batched"] <= RETENTION_TARGET_SECONDS
    return Part(
        "Retention: the oldest month of the largest table",
        [
            Table(
                ["design", "seconds", "a writer meanwhile (one insert every 10 ms)"],
                [
                    [
                        "one `DELETE` (rolled back)",
                        f"{retention['one_statement']:.1f}",
                        writes("one_statement_writes"),
                    ],
                    [
                        "**`purge_expired_events`, consecutive time windows of 50,000 (shipped)**",
                        f"{retention['batched']:.1f}",
                        writes("batched_writes"),
                    ],
                    [
                        f"monthly partitions ({retention['partitions']}): detach and drop the oldest",
                        f"{retention['partition_drop']:.2f}",
                        writes("partition_writes"),
                    ],
                ],
            ),
            strong(f"{retention['deleted']:,} events deleted in {retention['batched']:.1f} s")
            + f" (target ≤ {RETENTION_TARGET_SECONDS:.0f} s: {verdict(ok)}). The history query, the same SQL "
            f"on the plain table and on the partitioned copy (alternated, 200 shoppers): p50 "
            f"{history['plain_p50']:.2f} vs {history['partitioned_p50']:.2f} ms, p99 {history['plain_p99']:.2f} vs "
            f"{history['partitioned_p99']:.2f} ms. Building the partitioned copy (rows and indexes) took "
            f"{retention['copy_seconds']:.0f} s.",
        ],
    )


def _section(results: list[dict], sizes: Sizes, quick: bool):
    steps = [r["size"] for r in results]
    copy_read = [r["copy"]["read"] for r in results]
    prep = [r["copy"]["prep"] for r in results]
    peak = [r["copy"]["peak_mb"] for r in results]
    history_p99 = [common.percentile(r["history"], 99) * 1000 for r in results]
    rows = []
    for r in results:
        p50 = common.median(r["history"]) * 1000
        p99 = common.percentile(r["history"], 99) * 1000
        old = r.get("rows")
        rows.append(
            [
                f"{r['size']:,}",
                f"{r['added'] / r['insert']:,.0f}/s",
                f"{r['copy']['read']:.1f} s",
                f"{old['read']:.1f} s ({old['read'] / r['copy']['read']:.1f}x)" if old else "not run",
                f"{r['copy']['read_peak_mb']:,.0f} MB" + (f" ({old['read_peak_mb']:,.0f} MB)" if old else ""),
                f"{r['copy']['prep']:.1f} s",
                f"{r['copy']['peak_mb']:,.0f} MB",
                f"{p50:.2f} / {p99:.2f} ms",
            ]
        )
    chart = OUT_DIR / "scale.png" if quick else CHART_PATH
    chart_bytes = _chart(
        chart,
        steps,
        {
            "read (COPY)": copy_read,
            "read (Python rows)": [r["rows"]["read"] if "rows" in r else None for r in results],
            "preprocess": prep,
            "whole retrain": [r["retrain"]["total"] if "retrain" in r else None for r in results],
            "peak memory (MB / 100)": [value / 100 for value in peak],
        },
    )
    largest = results[-1] if results else None
    read_ok = (
        largest is not None
        and largest["size"] >= 10_000_000
        and largest["copy"]["read"] <= READ_TARGET_SECONDS
    )
    history_ok = (
        largest is not None and largest["size"] >= 10_000_000 and history_p99[-1] <= HISTORY_TARGET_MS
    )
    slopes = {
        "read": _slope(steps, copy_read),
        "preprocess": _slope(steps, prep),
        "peak memory": _slope(steps, peak),
    }
    growth = ", ".join(f"{name} {value:.2f}" for name, value in slopes.items() if value is not None)
    refresh_rows = [
        [
            f"{r['size']:,}",
            f"{r['refresh']['trending']:.2f} s",
            f"{r['refresh']['popular']:.2f} s",
            f"{r['refresh']['baskets']:.2f} s",
            f"{common.median(r['refresh']['co_view']) * 1000:.0f} / {max(r['refresh']['co_view']) * 1000:.0f} ms",
        ]
        for r in results
        if r.get("refresh", {}).get("co_view")
    ]
    findings = Part(
        "The event table at size",
        [
            Table(
                [
                    "events",
                    "COPY in",
                    "read for training (COPY)",
                    "read, Python rows (ratio)",
                    "peak memory of the read (rows)",
                    "preprocess",
                    "peak memory, read + preprocess",
                    "history query p50 / p99",
                ],
                rows,
            ),
            Figure(
                chart.relative_to(common.ROOT).as_posix(), "growth of each phase with the table", chart_bytes
            ),
            strong(f"Reading {steps[-1]:,} events: {copy_read[-1]:.1f} s")
            + f" (target ≤ {READ_TARGET_SECONDS:.0f} s at 10M: {verdict(read_ok)}); "
            + strong(f"history query p99 {history_p99[-1]:.2f} ms")
            + f" (target ≤ {HISTORY_TARGET_MS:.0f} ms at 10M: {verdict(history_ok)}). Growth exponents "
            f"(log-log slope, first to last size; 1 = linear): {growth}.",
            "Shop-wide refreshes at each size (`serving/popularity`; trending and baskets read the "
            "newest 200,000 rows, popularity counts distinct shoppers over the whole table, co-view "
            f"reads the last 500 sessions of an item; {CO_VIEW_ITEMS} random items of the 500 most popular):",
            Table(
                ["events", "trending", "all-time popularity", "baskets", "co-view p50 / max"], refresh_rows
            ),
        ],
    )
    parts = [findings, _retention_part(results[-1].get("retention") if results else None)]
    trained = [r for r in results if "retrain" in r]
    if not trained:
        parts.append(
            Part(
                "The whole retrain",
                [
                    "Not timed in this run: set `RECOMMENDATIONS_BENCH_RETRAIN_AT` to the table sizes "
                    "(events, comma-separated, e.g. `1000000,10000000`) at which to time "
                    "`registry.train_version` per phase (each takes up to half an hour here).",
                ],
            )
        )
    if trained:
        phases = list(dict.fromkeys(name for r in trained for name in r["retrain"]["phases"]))
        table = Table(
            ["events", "whole retrain", *phases, "peak memory", "epochs", "outcome"],
            [
                [
                    f"{r['size']:,}",
                    f"{r['retrain']['total'] / 60:.1f} min",
                    *(f"{r['retrain']['phases'].get(name, 0.0):.0f} s" for name in phases),
                    f"{r['retrain']['peak_mb']:,.0f} MB",
                    str(r["retrain"]["epochs"]),
                    r["retrain"]["status"] + (f": {r['retrain']['error']}" if r["retrain"]["error"] else ""),
                ]
                for r in trained
            ],
        )
        last = trained[-1]
        total_ok = last["size"] >= 10_000_000 and last["retrain"]["total"] <= RETRAIN_TARGET_SECONDS
        memory_ok = last["size"] >= 10_000_000 and last["retrain"]["peak_mb"] <= RETRAIN_MEMORY_TARGET_MB
        sizes_trained = [r["size"] for r in trained]
        phase_growth = ", ".join(
            f"{name} {slope:.2f}"
            for name in phases
            if (slope := _slope(sizes_trained, [r["retrain"]["phases"].get(name, 0.0) for r in trained]))
            is not None
        )
        parts.append(
            Part(
                "The whole retrain",
                [
                    "`registry.train_version` as the Celery task runs it, with the app's default settings "
                    "(model, holdout, baselines, refit on every event), in a fresh process; the phases are "
                    "those its progress reports.",
                    table,
                    "Inside evaluation, each model's fit on the earlier part: "
                    + "; ".join(
                        f"{r['size']:,}: "
                        + ", ".join(
                            f"{name} {sec:.0f} s"
                            for name, sec in sorted(r["retrain"]["fits"].items(), key=lambda kv: -kv[1])
                        )
                        for r in trained
                    )
                    + ".",
                    f"Where the memory goes at {last['size']:,} events (peak while each reported step ran, "
                    "the largest first; VmHWM reset at each step): "
                    + ", ".join(
                        f"{name} {mb:,.0f} MB"
                        for name, mb in sorted(
                            last["retrain"].get("step_peaks", {}).items(), key=lambda kv: -kv[1]
                        )[:6]
                    )
                    + ".",
                    strong(f"{last['size']:,} events: {last['retrain']['total'] / 60:.1f} min")
                    + f" (target ≤ 30 min at 10M: {verdict(total_ok)}), "
                    + strong(f"peak {last['retrain']['peak_mb']:,.0f} MB")
                    + f" (target ≤ 6 GB at 10M: {verdict(memory_ok)}). Growth exponents per phase: "
                    + (phase_growth or "one size only")
                    + ".",
                ],
            )
        )
    method = (
        f"Resampled real REES46 shoppers over {N_ITEMS:,} item ids and {DAYS} days (`bench/resample.py`), COPY-ed into "
        "the bench database's event table (PostgreSQL, the app's indexes) in steps of "
        + ", ".join(f"{s:,}" for s in sizes.steps)
        + " rows in all. Each read (in time order, as training reads; and the preprocessing after it) runs in a fresh Python process; peak "
        "memory is that process's maximum resident size (Python, Django and pandas included). History "
        f"query: {sizes.history_queries} random anonymous shoppers per size, the query serving runs when "
        "the cache does not hold the shopper's history. The scale events are removed afterwards."
    )
    return common.section("Scale", method, parts, quick=quick)
