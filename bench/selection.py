"""Selection suite: how the model's defaults were chosen, on the training side only.

The quality table of the learning suite is measured on the later part of each log, which
nothing may be tuned on. Choices are made here instead: each benchmark log's *training side*
(the events before the learning suite's split) is split again by time, at the
``DEV_QUANTILE`` of its event times; every candidate setting of ``NextItemRecommender`` is
fitted on the earlier part and measured on the later ("dev") part, beside the strongest
baselines, with the same ``run_evaluation`` as everywhere. The test part is never read.

Each candidate changes one parameter of the defaults, so the table says what each choice
is worth. ``--quick`` trains one epoch per candidate on the first data set: a smoke run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench import common
from bench.learning import DATASETS, K, ratio
from bench.report import Part, Section, Table, decimals, ratio_text, strong

#: Where each training side is split again: the dev part is its latest 30 % of events.
DEV_QUANTILE = 0.7
#: The baselines the candidates are compared with (the strongest in each variant).
BASELINES = ("session_recency", "ease", "item_knn", "category_popular", "knn_category")
#: Beside them in ``cold`` (next items without training events): the cold baselines.
COLD_BASELINES = ("cold_price", "cold_newest")
#: (label, parameters that differ from the defaults); the first row is the defaults.
CANDIDATES: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("defaults", {}),
    ("no category match", {"category_match": False}),
    ("freshness 0 (new products not ordered by listing date)", {"freshness": 0.0}),
    ("freshness 4", {"freshness": 4.0}),
    ("cold_item_count 1", {"cold_item_count": 1.0}),
    ("cold_item_count 0 (new items never lifted)", {"cold_item_count": 0.0}),
    ("priors: session co-occurrence + transitions", {"priors": ("cooccurrence", "transitions")}),
    ("priors: transitions + EASE (no content)", {"priors": ("transitions", "ease")}),
    ("priors: + category popularity", {"priors": ("transitions", "ease", "content", "category")}),
    ("no priors", {"n_neighbours": 0}),
    ("content-aware item vectors", {"content": True}),
    ("category_scale 1 (the category match as learned)", {"category_scale": 1.0}),
    ("category_scale 3", {"category_scale": 3.0}),
    ("prior_window 5", {"prior_window": 5}),
    ("prior_window 10", {"prior_window": 10}),
    ("n_neighbours 30", {"n_neighbours": 30}),
    ("gate_shift 0", {"gate_shift": 0.0}),
    ("gate_shift 5", {"gate_shift": 5.0}),
    ("no mixture (repeat logit added)", {"mixture": False}),
)
QUICK_PARAMS = {"epochs": 1, "scalar_epochs": 1}


def evaluate_candidates(dataset: Any, quick: bool) -> dict[str, Any]:
    from bench.learning import read_catalogue
    from recommendations.ml.baselines import BASELINES as ALL_BASELINES
    from recommendations.ml.evaluation import run_evaluation
    from recommendations.ml.frames import catalogue_from_events, merge_catalogues, split_at
    from recommendations.ml.training import NextItemRecommender

    train, _ = split_at(common.read_events(dataset.path, dataset.format), dataset.split)  # test side unused
    cut = train["timestamp"].quantile(DEV_QUANTILE)
    fit, dev = split_at(train, cut)
    # The catalogue at prediction time, as in the learning suite, from the training side only.
    catalogue = merge_catalogues(
        catalogue_from_events(fit, dev), read_catalogue(dataset, until=dataset.split)
    )
    common.progress(f"{dataset.label}: {len(fit):,} events before {cut}, {len(dev):,} dev events after")
    models: dict[str, Any] = {name: ALL_BASELINES[name]() for name in (*BASELINES, *COLD_BASELINES)}
    labels = {}
    for i, (label, params) in enumerate(CANDIDATES):
        model = NextItemRecommender(**{**params, **(QUICK_PARAMS if quick else {})})
        model.name = f"candidate_{i}"
        models[model.name] = model
        labels[model.name] = label
    result = run_evaluation(fit, dev, k=K, models=models, progress=common.progress, catalogue=catalogue)
    return {
        "dataset": dataset,
        "cut": cut,
        "fit": len(fit),
        "dev": len(dev),
        "result": result,
        "labels": labels,
    }


def dataset_part(run: dict[str, Any]) -> Part:
    """One data set: its dev split, then every candidate's MRR beside the baselines'."""
    metric = f"mrr@{K}"
    dataset, variants = run["dataset"], run["result"]["variants"]
    names = [v for v in ("all", "new", "cold") if v in variants]
    cases = ", ".join(f"{variants[v]['n_cases']:,} `{v}` cases" for v in names)
    split = (
        f"Training side before {dataset.split} split again at {run['cut']:%Y-%m-%d %H:%M:%S} UTC: "
        f"{run['fit']:,} events to fit, {run['dev']:,} dev events; {cases}."
    )

    def against(v: str) -> tuple[str, ...]:
        return COLD_BASELINES + BASELINES if v == "cold" else BASELINES

    best = {v: max((variants[v]["models"][name][metric] or 0.0, name) for name in against(v)) for v in names}
    rows = [
        [
            f"baseline `{name}`",
            *[decimals(variants[v]["models"][name][metric]) for v in names],
            *[""] * len(names),
        ]
        for name in (*BASELINES, *COLD_BASELINES)
    ]
    for name, label in run["labels"].items():
        scores = [variants[v]["models"][name][metric] for v in names]
        ratios = [ratio(score, best[v][0]) for score, v in zip(scores, names, strict=True)]
        shown = strong(label) if label == "defaults" else label
        rows.append([shown, *[decimals(s) for s in scores], *[ratio_text(r) for r in ratios]])
    table = Table(
        ["model", *(f"{v} MRR@{K}" for v in names), *(f"{v} vs best baseline" for v in names)], rows
    )
    return Part(dataset.label, [split, table])


def run(quick: bool) -> Section:
    """Run the selection suite and return its section."""
    common.setup_django()
    datasets = DATASETS[:1] if quick else DATASETS
    runs = [evaluate_candidates(dataset, quick) for dataset in datasets]
    method = (
        "each log's training side (before the learning suite's split) split again by time at the "
        f"{DEV_QUANTILE:.0%} quantile of its events; candidates fitted on the earlier part, measured on the "
        "later part with `run_evaluation`, beside the strongest baselines; the test part is never read. "
        "Details: docstring of `bench/selection.py`."
    )
    target = (
        strong(
            f"Target of the learning suite, checked here first: MRR@{K} ≥ {1.10:.2f} x the best baseline in both variants."
        )
        + " Each row changes one parameter of the defaults; ratios are to the best of "
        f"{', '.join(f'`{name}`' for name in BASELINES)} on the same dev cases."
    )
    return common.section(
        "Model selection on the training side (dev splits)",
        method,
        [target, *(dataset_part(run) for run in runs)],
        quick=quick,
    )
