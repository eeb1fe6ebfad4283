"""Ablation suite: which parts of ``mlp_attention`` earn their place, on the later part of both logs.

The same split, catalogue and cases as the learning suite's quality section
(``learning.DATASETS``, ``learning.read_catalogue``), one ``run_evaluation`` per data set with
these variants of ``NextItemRecommender`` (its defaults otherwise) beside the strongest
baselines of each variant:

- ``full``: the defaults (ID embeddings, the repeat/explore mixture, the transition, EASE
  and content priors, the category match, the MLP over attention);
- ``without_content``: nothing of what items are: no content prior, no category match, no
  freshness term (the history's category embedding stays, as in the first design);
- ``with_content_vectors``: ``content=True`` (item vectors = ID embedding + category,
  price-bucket, brand and top-level-category embeddings, in the history and the output table);
- ``without_mlp``: ``epochs=0``, only stage 1 (popularity, repeat, prior and category
  weights): the embeddings and the MLP stay at their initial values;
- ``without_priors``: ``priors=()``.

Each row also says whether training kept stage 2 (the embeddings and the MLP) or rejected it
for not improving validation loss. ``--quick``: 1 epoch per stage.
"""

from __future__ import annotations

from typing import Any

from bench import common, learning
from bench.report import Part, Table, decimals, strong

K = 20
#: What "content" means in the defaults: the priors that read the catalogue, and the category match.
CONTENT_PRIORS = ("content", "category")
VARIANTS = {
    "full": {},
    "without_content": {"content_free": True},
    "with_content_vectors": {"content": True},
    "without_mlp": {"epochs": 0},
    "without_priors": {"priors": ()},
}


def variant_params(params: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments of a variant: ``content_free`` drops what reads the catalogue."""
    from recommendations.ml.training import NextItemRecommender

    params = dict(params)
    if params.pop("content_free", False):
        defaults = NextItemRecommender()
        params.update(
            priors=tuple(p for p in defaults.priors if p not in CONTENT_PRIORS),
            category_match=False,
            content=False,
            freshness=0.0,
        )
    return params


REFERENCES = ("session_recency", "ease", "category_popular", "knn_category", "cold_price", "cold_newest")


def measure(dataset: learning.Dataset, quick: bool) -> dict[str, Any]:
    from recommendations.ml.baselines import BASELINES
    from recommendations.ml.evaluation import run_evaluation
    from recommendations.ml.frames import catalogue_from_events, merge_catalogues, split_at
    from recommendations.ml.training import NextItemRecommender

    frame = common.read_events(dataset.path, dataset.format)
    train, test = split_at(frame, dataset.split)
    catalogue = merge_catalogues(catalogue_from_events(train, test), learning.read_catalogue(dataset))
    quick_params = {"epochs": 1, "scalar_epochs": 1} if quick else {}
    models: dict[str, Any] = {
        name: NextItemRecommender(**{**quick_params, **variant_params(params)})
        for name, params in VARIANTS.items()
    }
    models.update({name: BASELINES[name]() for name in REFERENCES})
    common.progress(f"ablation on {dataset.label}")
    result = run_evaluation(train, test, k=K, models=models, progress=common.progress, catalogue=catalogue)
    stages = {name: models[name].stages_ for name in VARIANTS}
    return {"dataset": dataset, "result": result, "stages": stages}


def stage_text(stages: list[dict[str, Any]]) -> str:
    second = [record for record in stages if record["stage"] == 2]
    if not second or not second[0]["epochs_run"]:
        return "not run"
    return "kept" if second[0]["kept"] else strong("rejected")


def dataset_part(item: dict[str, Any]) -> Part:
    result, dataset = item["result"], item["dataset"]
    variants = list(result["variants"])
    columns = ["model", "stage 2"] + [f"{variant} MRR@{K} (HR@{K})" for variant in variants]
    rows = []
    for name in [*VARIANTS, *REFERENCES]:
        cells = [strong(name) if name in VARIANTS else name]
        cells.append(stage_text(item["stages"][name]) if name in VARIANTS else "-")
        for variant in variants:
            metrics = result["variants"][variant]["models"][name]
            cells.append(f"{decimals(metrics[f'mrr@{K}'])} ({decimals(metrics[f'hr@{K}'], 3)})")
        rows.append(cells)
    counts = ", ".join(f"`{variant}` {result['variants'][variant]['n_cases']:,}" for variant in variants)
    return Part(dataset.label, [f"Cases: {counts}.", Table(columns, rows)])


def run(quick: bool) -> Any:
    common.setup_django()
    items = [measure(dataset, quick) for dataset in learning.DATASETS]
    method = (
        "the learning suite's split, catalogue and cases for every variant of `mlp_attention` (one "
        "`run_evaluation` per data set, identical cases for all), beside the strongest baselines; "
        "details in the docstring of `bench/ablation.py`."
    )
    return common.section(
        "Ablation: what each part of the model adds (later data, k = 20)",
        method,
        [dataset_part(item) for item in items],
        quick=quick,
    )
