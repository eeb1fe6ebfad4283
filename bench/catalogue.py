"""Catalogue suite: scoring a 1M-item catalogue, exact and approximate, and what compression costs.

1. **Speed and memory at 1M items.** A synthetic catalogue of ``N_ITEMS`` item vectors of the
   model's width (``DIM``) drawn around 2,000 cluster centres (items of a shop come in
   families), with a popularity bias folded in as one more coordinate (score = user . item +
   bias, as the tower's dense part), and user vectors near the items (a shopper's taste is
   somewhere in the catalogue). Each design answers the same ``QUERIES`` single-user queries
   (what one request asks, one thread as a gunicorn worker runs it) for the top ``K``:

   - exact, float32 in numpy (the tower today: one matrix-vector product and ``argpartition``);
   - exact, float16 in numpy, upcast chunk by chunk (numpy has no half-precision BLAS);
   - exact, faiss's scalar quantizer (fp16 and 8-bit codes, SIMD decoding, brute force);
   - approximate: faiss IVF over 8-bit codes (``nprobe`` of ``NLIST`` lists), usearch's HNSW
     over int8 and hnswlib's HNSW (float32 only). Nearest-neighbour graphs and clusters answer
     distance questions, not inner products: each item gets one more coordinate,
     sqrt(M^2 - |v|^2) with M the largest norm, and each query a 0 there, so the nearest item
     in Euclidean distance is the one with the largest score (Bachrach et al. 2014). Without
     it, the same indexes found 19-74 % of the top 20.

   Each row: build seconds, the index's memory (its own bytes; the process's resident size
   after loading it is in the method line), median and p99 milliseconds per query, and
   recall@K against the exact float32 answer.
2. **The served model at 1M items, in a worker.** The serving bench's model (trained on the
   demo slice) with its item tables resized to ``N_ITEMS`` items (``bench.serving.scaled_bundle``:
   each item with as many prior neighbours as a random item of the trained model, none in EASE
   past the 5,000 items it models), saved as a
   version's files twice, without and with the item index (``ml/item_index.py``: faiss IVF
   over 8-bit codes, the design part 1 picks), and each loaded in a fresh process as a web
   worker loads it: the resident size it adds (the worker's own, after Django and the serving
   modules, is the baseline), split into the worker's own (anonymous) memory and the pages
   mapped from the version's files, which every worker of a machine shares; and one request
   (``score_shopper`` and the top 20) per shopper. The indexed worker's lists are compared
   with the same requests scored exactly (recall@20, the normalizer's error).
3. **What compression costs in quality.** The learning suite's split of both logs: the model
   fitted once, then scored three ways on identical cases: float32 item table, float16 and
   int8 (per-row scale) tables. Relative MRR@20 change against float32 (target: within 1 %).
"""

from __future__ import annotations

import gc
import resource
import time
from typing import Any

from bench import common, learning
from bench.report import Part, Table, decimals, strong, verdict

N_ITEMS = 1_000_000
DIM = 64
CLUSTERS = 2_000
QUERIES = 300
K = 20
NLIST = 4096
NPROBES = (32, 128, 256)
EXPANSIONS = (64, 256)  # HNSW's search breadth (ef)
TOP_K_TARGET_MS = 5.0
MEMORY_TARGET_MB = 200.0
QUALITY_TARGET = 0.01  # relative MRR@20 loss
QUICK_ITEMS = 100_000


def synthetic(n_items: int, seed: int = 0) -> tuple[Any, Any]:
    """(items [n, DIM + 1] float32 with the bias column, queries [QUERIES, DIM + 1])."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, DIM)).astype(np.float32)
    family = rng.zipf(1.3, size=n_items) % CLUSTERS
    items = centres[family] * 0.6 + rng.normal(scale=0.5, size=(n_items, DIM)).astype(np.float32)
    bias = np.log(rng.zipf(1.2, size=n_items).clip(max=100_000)).astype(np.float32) * 0.5
    items = np.hstack([items, bias[:, None]]).astype(np.float32)
    anchors = items[rng.integers(0, n_items, size=QUERIES), :DIM]
    users = anchors + rng.normal(scale=0.5, size=anchors.shape).astype(np.float32)
    queries = np.hstack([users, np.ones((QUERIES, 1), np.float32)]).astype(np.float32)
    return items, queries


def as_nearest_neighbours(items: Any, queries: Any) -> tuple[Any, Any]:
    """The inner-product search as a Euclidean one (see the module docstring)."""
    import numpy as np

    norms = np.einsum("ij,ij->i", items, items)
    extra = np.sqrt(np.maximum(norms.max() - norms, 0.0)).astype(np.float32)
    return (
        np.hstack([items, extra[:, None]]).astype(np.float32),
        np.hstack([queries, np.zeros((len(queries), 1), np.float32)]).astype(np.float32),
    )


def exact_top(items: Any, query: Any) -> Any:
    import numpy as np

    scores = items @ query
    top = np.argpartition(scores, len(scores) - K)[-K:]
    return top[np.argsort(-scores[top])]


def half_top(items16: Any, query: Any, chunk: int = 131_072) -> Any:
    """Exact scores from a float16 table, upcast a chunk at a time."""
    import numpy as np

    scores = np.empty(len(items16), np.float32)
    for start in range(0, len(items16), chunk):
        scores[start : start + chunk] = items16[start : start + chunk].astype(np.float32) @ query
    top = np.argpartition(scores, len(scores) - K)[-K:]
    return top[np.argsort(-scores[top])]


def _timed(search, queries: Any) -> tuple[list[float], list[Any]]:
    times, answers = [], []
    for query in queries:
        start = time.perf_counter()
        answers.append(search(query))
        times.append(time.perf_counter() - start)
    return times, answers


def _recall(answers: list[Any], truth: list[Any]) -> float:
    import numpy as np

    return float(
        np.mean([len(set(map(int, a)) & set(map(int, t))) / K for a, t in zip(answers, truth, strict=True)])
    )


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def measure_speed(n_items: int) -> dict[str, Any]:
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(1)
    common.progress(f"catalogue: {n_items:,} synthetic items")
    items, queries = synthetic(n_items)
    with threadpool_limits(1):
        exact_times, truth = _timed(lambda q: exact_top(items, q), queries)
        rows = [_row("exact, float32 (numpy)", 0.0, items.nbytes, exact_times, 1.0, exact=True)]
        rows.append(_half_row(items, queries, truth))
    rows.extend(_faiss_flat_rows(items, queries, truth))
    items, queries = as_nearest_neighbours(items, queries)
    for design in (_faiss_ivf_rows, _usearch_rows, _hnswlib_rows):
        common.progress(f"catalogue: {design.__name__.strip('_')}")
        rows.extend(design(items, queries, truth))
        gc.collect()
    return {"n_items": n_items, "rows": rows, "exact_median_ms": common.median(exact_times) * 1000}


def _half_row(items: Any, queries: Any, truth: list[Any]) -> dict[str, Any]:
    import numpy as np

    items16 = items.astype(np.float16)
    times, answers = _timed(lambda q: half_top(items16, q), queries)
    return _row(
        "exact, float16 (numpy, upcast per chunk)",
        0.0,
        items16.nbytes,
        times,
        _recall(answers, truth),
        exact=True,
    )


def _faiss_flat_rows(items: Any, queries: Any, truth: list[Any]) -> list[dict[str, Any]]:
    import faiss

    rows = []
    for label, kind in (("fp16", faiss.ScalarQuantizer.QT_fp16), ("8-bit", faiss.ScalarQuantizer.QT_8bit)):
        start = time.perf_counter()
        index = faiss.IndexScalarQuantizer(items.shape[1], kind, faiss.METRIC_INNER_PRODUCT)
        index.train(items)
        index.add(items)
        built = time.perf_counter() - start
        times, answers = _timed(lambda q, index=index: index.search(q[None, :], K)[1][0], queries)
        size = faiss.serialize_index(index).nbytes
        rows.append(
            _row(f"exact scan, faiss {label} codes", built, size, times, _recall(answers, truth), exact=True)
        )
    return rows


def _faiss_ivf_rows(items: Any, queries: Any, truth: list[Any]) -> list[dict[str, Any]]:
    import faiss
    import numpy as np

    n_items = len(items)
    start = time.perf_counter()
    quantizer = faiss.IndexFlatIP(items.shape[1])
    index = faiss.IndexIVFScalarQuantizer(
        quantizer,
        items.shape[1],
        min(NLIST, n_items // 40),
        faiss.ScalarQuantizer.QT_8bit,
        faiss.METRIC_INNER_PRODUCT,
    )
    index.train(items[np.random.default_rng(1).choice(n_items, min(n_items, 200_000), replace=False)])
    index.add(items)
    built = time.perf_counter() - start
    size = faiss.serialize_index(index).nbytes
    rows = []
    for nprobe in NPROBES:
        index.nprobe = nprobe
        times, answers = _timed(lambda q: index.search(q[None, :], K)[1][0], queries)
        rows.append(_row(f"IVF, faiss 8-bit, nprobe {nprobe}", built, size, times, _recall(answers, truth)))
    return rows


def _usearch_rows(items: Any, queries: Any, truth: list[Any]) -> list[dict[str, Any]]:
    import numpy as np
    from usearch.index import Index

    start = time.perf_counter()
    index = Index(
        ndim=items.shape[1], metric="l2sq", dtype="i8", connectivity=16, expansion_add=64, expansion_search=64
    )
    # int8 codes share one scale: the vectors are divided by their largest coordinate first.
    scale = float(np.abs(items).max())
    index.add(np.arange(len(items)), items / scale, threads=2)
    built = time.perf_counter() - start
    rows = []
    for expansion in EXPANSIONS:
        index.expansion_search = expansion
        times, answers = _timed(lambda q: index.search(q / scale, K, threads=1).keys, queries)
        rows.append(
            _row(
                f"HNSW, usearch int8, ef {expansion}",
                built,
                index.memory_usage,
                times,
                _recall(answers, truth),
            )
        )
    return rows


def _hnswlib_rows(items: Any, queries: Any, truth: list[Any]) -> list[dict[str, Any]]:
    import hnswlib

    start = time.perf_counter()
    index = hnswlib.Index(space="l2", dim=items.shape[1])
    index.init_index(max_elements=len(items), ef_construction=64, M=16)
    index.add_items(items, num_threads=2)
    index.set_num_threads(1)
    built = time.perf_counter() - start
    size = len(items) * (items.shape[1] * 4 + 16 * 2 * 4 + 16)  # vectors, level-0 links, labels
    rows = []
    for expansion in EXPANSIONS:
        index.set_ef(expansion)
        times, answers = _timed(lambda q: index.knn_query(q[None, :], k=K)[0][0], queries)
        rows.append(
            _row(f"HNSW, hnswlib float32, ef {expansion}", built, size, times, _recall(answers, truth))
        )
    return rows


def _row(name: str, built: float, size: int, times: list[float], recall: float, exact: bool = False) -> dict:
    return {
        "name": name,
        "build": built,
        "mb": size / 2**20,
        "p50": common.median(times) * 1000,
        "p99": common.percentile(times, 99) * 1000,
        "recall": recall,
        "exact": exact,
    }


class _Compressed:
    """A fitted ``NextItemRecommender`` scored with its item table stored in less precision."""

    def __init__(self, base: Any, how: str) -> None:
        self.base, self.how, self.name = base, how, f"{base.name}_{how}"

    def fit_preprocessed(self, train: Any, preprocessor: Any) -> _Compressed:
        import numpy as np

        from recommendations.ml.tower import NumpyTower

        weights = dict(self.base.export_weights())
        table = weights["item_embedding"].astype(np.float32)
        if self.how == "float16":
            table = table.astype(np.float16).astype(np.float32)
        else:  # int8 with one scale per row
            scale = np.maximum(np.abs(table).max(axis=1, keepdims=True), 1e-12) / 127.0
            table = (np.round(table / scale).clip(-127, 127).astype(np.int8) * scale).astype(np.float32)
        weights["item_embedding"] = table
        self.tower = NumpyTower(weights)
        return self

    def score(self, cases: Any) -> Any:
        import numpy as np

        scores = self.tower.scores(self.base._inputs(cases), now=cases.now)
        exact = self.base.score(cases)
        finite = np.isfinite(exact) & np.isfinite(scores)
        change = float(np.abs(scores[finite] - exact[finite]).max()) if finite.any() else 0.0
        self.largest_change = max(getattr(self, "largest_change", 0.0), change)
        return scores


class _Indexed:
    """A fitted ``NextItemRecommender`` scored as serving scores a large catalogue: each case
    on its own, on the item index's candidates (``ml/item_index.py``); the other items get no
    score (never recommended)."""

    def __init__(self, base: Any) -> None:
        self.base, self.name = base, f"{base.name}_index"

    def fit_preprocessed(self, train: Any, preprocessor: Any) -> _Indexed:
        import tempfile
        from pathlib import Path

        from recommendations.ml import item_index
        from recommendations.ml.tower import NumpyTower

        weights = dict(self.base.export_weights())
        self._folder = tempfile.TemporaryDirectory(prefix="bench-index-")
        path = Path(self._folder.name) / item_index.FILE
        item_index.build(weights["item_embedding"], weights["item_bias"], path)
        self.tower = NumpyTower(weights, index=item_index.ItemIndex(path, len(weights["item_bias"]) - 1))
        return self

    def score(self, cases: Any) -> Any:
        import numpy as np

        inputs = self.base._inputs(cases)
        scores = np.full((len(cases), len(self.tower.item_bias)), -np.inf, np.float32)
        for row in range(len(cases)):
            one = {name: value[row : row + 1] for name, value in inputs.items()}
            forward = self.tower.forward(one)
            terms = self.tower.history_terms(one, forward[1])
            columns, logits, _ = self.tower.candidate_scores(one, forward, terms, cases.now[row : row + 1])
            scores[row, columns] = logits
        return scores


VARIANTS = ("float16", "int8", "index")


def measure_quality(dataset: learning.Dataset, quick: bool) -> dict[str, Any]:
    from recommendations.ml.evaluation import run_evaluation
    from recommendations.ml.frames import catalogue_from_events, merge_catalogues, split_at
    from recommendations.ml.training import NextItemRecommender

    frame = common.read_events(dataset.path, dataset.format)
    train, test = split_at(frame, dataset.split)
    catalogue = merge_catalogues(catalogue_from_events(train, test), learning.read_catalogue(dataset))
    base = NextItemRecommender(**({"epochs": 1, "scalar_epochs": 1} if quick else {}))
    models = {
        "float32": base,
        "float16": _Compressed(base, "float16"),
        "int8": _Compressed(base, "int8"),
        "index": _Indexed(base),
    }
    common.progress(f"catalogue: compression on {dataset.label}")
    result = run_evaluation(train, test, k=K, models=models, progress=common.progress, catalogue=catalogue)
    changes = {how: models[how].largest_change for how in ("float16", "int8")}
    return {"dataset": dataset, "result": result, "changes": changes}


WORKER = r"""
import json, resource, sys, time
from bench import common
common.setup_django()
import numpy as np
from threadpoolctl import threadpool_limits
from recommendations import artifacts
from recommendations.serving import loader, scoring, services  # what a web worker has imported
from recommendations.serving.history import HistoryEvent

def rss():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20

def kinds():  # MB (anonymous: the process's own; file-backed: mapped pages processes share)
    with open("/proc/self/status") as handle:
        fields = dict(line.split(":", 1) for line in handle if line.startswith(("RssAnon", "RssFile")))
    return [int(fields[name].split()[0]) / 1024 for name in ("RssAnon", "RssFile")]

before, before_kinds = rss(), kinds()
model = loader.ServingModel.from_bundle(1, artifacts.load_bundle(sys.argv[1]))
import gc
gc.collect()
loaded = rss()
arrays = sorted(((v.nbytes / 2**20, k) for k, v in model.tower.weights.items()), reverse=True)[:4]
rng, times, histories, tops = np.random.default_rng(0), [], [], []
with threadpool_limits(1):
    for n in range(int(sys.argv[2])):
        items = rng.integers(1, model.n_items + 1, 15)
        events = [HistoryEvent(time.time() - 60 * (15 - j), "view", model.item_ids[int(i)], "s", key="")
                  for j, i in enumerate(items)]
        start = time.perf_counter()
        scores = scoring.score_shopper(model, events, "s")
        top = scores.top(20)
        times.append(time.perf_counter() - start)
        histories.append(events)
        tops.append((top, scores.log_normalizer))
result = {"before_mb": before, "loaded_mb": loaded, "after_requests_mb": rss(),
          "before_kinds": before_kinds, "after_kinds": kinds(), "peak_mb": common.peak_rss_mb(),
          "arrays": [[name, mb] for mb, name in arrays], "request_ms": times,
          "indexed": model.tower.index is not None}
if model.tower.index is not None:  # the same requests scored exactly: what the index misses
    from dataclasses import replace
    from recommendations.ml.tower import NumpyTower
    exact = replace(model, tower=NumpyTower(model.tower.weights))
    recalls, errors = [], []
    for events, (top, normalizer) in zip(histories, tops):
        truth = dict(scoring.score_shopper(exact, events, "s").top(20))
        recalls.append(len(truth.keys() & {i for i, _ in top}) / max(len(truth), 1))
        # a listed item's probability against the exact one, past the history's own items
        # (their repeat share hardly depends on it): the softmax mass outside the candidates,
        # estimated from the sample, is in each
        seen = set(model.item_ids.indices([e.item_id for e in events]).tolist())
        errors += [abs(p / truth[i] - 1.0) for i, p in top if i in truth and i not in seen]
    result.update(recall=float(np.mean(recalls)), probability_error=float(np.median(errors)) if errors else None,
                  probability_items=len(errors))
print(json.dumps(result))
"""


def measure_worker(n_items: int, requests: int) -> list[dict[str, Any]]:
    """The served model at ``n_items`` items, loaded in a fresh process (see the docstring):
    scoring every item, then with the item index (``ml/item_index.py``)."""
    import tempfile
    from pathlib import Path

    import numpy as np
    from django.conf import settings

    from bench.serving import scaled_bundle
    from recommendations import artifacts
    from recommendations.ml import item_index

    common.progress(f"catalogue: the served model at {n_items:,} items")
    rng = np.random.default_rng(1)
    categories = [f"bench-category-{c}" for c in range(2_000)]
    bundle = scaled_bundle(
        n_items,
        [str(10_000_000 + i) for i in range(n_items)],
        categories,
        rng.integers(1, len(categories) + 1, n_items).tolist(),
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-catalogue-") as media:
        settings.MEDIA_ROOT = media
        exact_folder, exact_size = artifacts.save_bundle(1, bundle)
        common.progress(f"catalogue: the item index of {n_items:,} items")
        start = time.perf_counter()
        path = Path(media) / item_index.FILE
        item_index.build(bundle.weights["item_embedding"], bundle.weights["item_bias"], path)
        built = time.perf_counter() - start
        bundle.files[item_index.FILE] = path
        indexed_folder, indexed_size = artifacts.save_bundle(2, bundle)
        del bundle
        for folder, size in ((exact_folder, exact_size), (indexed_folder, indexed_size)):
            result = common.in_fresh_process(
                WORKER, folder, str(requests), timeout=1800, DJANGO_MEDIA_ROOT=media
            )
            results.append({**result, "files_mb": size / 2**20, "n_items": n_items, "built": built})
    return results


def run(quick: bool) -> Any:
    common.setup_django()
    speed = measure_speed(QUICK_ITEMS if quick else N_ITEMS)
    rss = _rss_mb()
    worker = measure_worker(QUICK_ITEMS if quick else N_ITEMS, 30 if quick else 200)
    quality = [measure_quality(dataset, quick) for dataset in learning.DATASETS]
    return common.section(
        "Catalogue: 1M items, exact and approximate top-k, compression",
        "see the docstring of `bench/catalogue.py`. One thread per query (faiss, BLAS and usearch "
        f"limited to one), {QUERIES} queries, top {K}; recall against the exact float32 answer. "
        f"Resident size of the measuring process at the end: {rss:,.0f} MB.",
        [speed_part(speed), worker_part(worker), quality_part(quality)],
        quick=quick,
    )


def speed_part(speed: dict[str, Any]) -> Part:
    rows = [
        [
            strong(row["name"]) if row["exact"] else row["name"],
            f"{row['build']:.0f} s" if row["build"] else "-",
            f"{row['mb']:,.0f} MB",
            f"{row['p50']:.2f} / {row['p99']:.2f} ms",
            f"{row['recall']:.3f}",
        ]
        for row in speed["rows"]
    ]
    meeting = [
        row["name"]
        for row in speed["rows"]
        if row["p50"] <= TOP_K_TARGET_MS and row["mb"] <= MEMORY_TARGET_MB and row["recall"] >= 0.95
    ]
    return Part(
        f"Top {K} of {speed['n_items']:,} items, one query at a time",
        [
            Table(
                ["design", "build", "memory of the table or index", "per query p50 / p99", f"recall@{K}"],
                rows,
            ),
            f"Meeting top-k ≤ {TOP_K_TARGET_MS:.0f} ms median, ≤ {MEMORY_TARGET_MB:.0f} MB and recall ≥ 0.95: "
            + (", ".join(meeting) if meeting else "none")
            + ".",
        ],
    )


def worker_part(workers: list[dict[str, Any]]) -> Part:
    def column(worker: dict[str, Any]) -> dict[str, Any]:
        own, mapped = worker["after_kinds"]
        times = worker["request_ms"][10:]  # the first requests warm the caches
        return {
            "files": worker["files_mb"],
            "before": worker["before_mb"],
            "added": worker["after_requests_mb"] - worker["before_mb"],
            "total": worker["after_requests_mb"],
            "own": own,
            "shared": mapped - worker["before_kinds"][1],
            "peak": worker["peak_mb"],
            "p50": common.median(times) * 1000,
            "p99": common.percentile(times, 99) * 1000,
            "recall": worker.get("recall"),
            "probability": worker.get("probability_error"),
        }

    exact, indexed = (column(worker) for worker in workers)
    mb = "{:,.0f} MB".format

    def row(label: str, key: str, form=mb) -> list[str]:
        return [label, *(form(c[key]) if c[key] is not None else "-" for c in (exact, indexed))]

    own_met = indexed["own"] <= MEMORY_TARGET_MB
    fast = indexed["p50"] <= TOP_K_TARGET_MS
    n_items = workers[0]["n_items"]
    return Part(
        f"The served model at {n_items:,} items, in a worker",
        [
            Table(
                ["", "every item scored", "with the item index"],
                [
                    row("the version's files", "files"),
                    row("worker before loading (Django, DRF, the serving modules)", "before"),
                    row("the model adds (resident, after the requests)", "added"),
                    row("worker with the model, resident in all", "total"),
                    row("of which the worker's own (anonymous memory)", "own"),
                    row("of which mapped from the version's files (one copy per machine)", "shared"),
                    row("peak while loading", "peak"),
                    [
                        "one request (score_shopper + top 20), p50 / p99",
                        *(f"{c['p50']:.1f} / {c['p99']:.1f} ms" for c in (exact, indexed)),
                    ],
                    row("recall@20 of the exact list", "recall", "{:.3f}".format),
                    row(
                        "a listed item's probability (not one of the history's), relative error, median",
                        "probability",
                        "{:.2%}".format,
                    ),
                ],
            ),
            f"With the index (built in {workers[1]['built']:.0f} s when the version is written): "
            f"the worker's own memory **{indexed['own']:,.0f} MB** (target ≤ {MEMORY_TARGET_MB:.0f} MB: "
            f"{verdict(own_met)}), a request **{indexed['p50']:.1f} ms** median (target ≤ "
            f"{TOP_K_TARGET_MS:.0f} ms for the top-k: {verdict(fast)}). "
            "A version's arrays are mapped read-only from its `weights.npz` "
            "(`artifacts.mapped_arrays`) and the index from its file, not read into each "
            "worker: the kernel keeps one copy of their pages for every worker of the machine, so "
            "W workers need about W x the worker's own memory plus the mapped pages once. Scoring "
            "every item reads the whole item table at each request, so its pages stay resident; "
            "with the index a request reads its probed lists and its candidates' rows. Recall and "
            "the probabilities compare the indexed worker's lists with the same requests scored "
            "exactly; the bench's 2,000 categories hold 500 items each, so the members of a "
            "history's categories (about 7,500 items) are among the candidates, as the index's "
            "256 are: the recall is the whole pipeline's, not the index's alone (part 1 has that).",
        ],
    )


def quality_part(quality: list[dict[str, Any]]) -> Part:
    rows = []
    for item in quality:
        result = item["result"]
        for variant, data in result["variants"].items():
            models = data["models"]
            exact = models["float32"][f"mrr@{K}"]
            cells = [item["dataset"].label, variant, f"{data['n_cases']:,}", decimals(exact)]
            for how in VARIANTS:
                value = models[how][f"mrr@{K}"]
                change = (value - exact) / exact if exact else 0.0
                cells.append(f"{decimals(value)} ({change:+.2%})")
            rows.append(cells)
    worst = min(
        (
            (item["result"]["variants"][v]["models"][how][f"mrr@{K}"] - m["float32"][f"mrr@{K}"])
            / m["float32"][f"mrr@{K}"]
            for item in quality
            for v, data in item["result"]["variants"].items()
            for m in [data["models"]]
            for how in VARIANTS
            if m["float32"][f"mrr@{K}"]
        ),
        default=0.0,
    )
    return Part(
        "What a compressed item table or the item index costs in quality (learning suite's split, "
        "identical cases)",
        [
            Table(
                [
                    "data",
                    "variant",
                    "cases",
                    f"MRR@{K} float32",
                    "float16 (change)",
                    "int8 (change)",
                    "item index (change)",
                ],
                rows,
            ),
            "The item index column scores each case as a request of a large catalogue does "
            "(`NumpyTower.candidate_scores`: the index's candidates, the history's items, their "
            "prior neighbours and their categories' members), with the index built over these "
            "catalogues (lists of about 250 items, 1 in 64 probed).",
            f"Largest relative MRR@{K} loss: {-worst:.2%} (target ≤ {QUALITY_TARGET:.0%}: "
            f"{verdict(-worst <= QUALITY_TARGET)}). Largest change of any item's score (log-probability) "
            "against float32: "
            + "; ".join(
                f"{item['dataset'].label}: float16 {item['changes']['float16']:.2g}, int8 {item['changes']['int8']:.2g}"
                for item in quality
            )
            + ".",
        ],
    )
