"""Evaluation: every recommender on the same next-item cases from later data, side by side.

The last step before artifacts in the data flow: a time-split event log goes through
``preprocessing`` (fitted on the training side only), ``cases.evaluation_cases`` turns the
later sessions into prefixes with a next item, each model (``baselines`` and the learned
``training.NextItemRecommender``) is fitted on the training frame and scores every item for
every case, and ``evaluate`` reduces the top-k lists to HR, MRR, NDCG, coverage and novelty
in two variants: ``all`` (every next item) and ``new`` (next items not yet in the session,
with the session's items removed from every list). The ``recommendations_evaluate``
command and the retraining job read the same JSON-safe result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..extras import require
from .base import Recommender
from .baselines import BASELINES
from .cases import SKIPPED_UNKNOWN, CaseBatch, EvaluationCases, evaluation_cases
from .frames import release_unused_memory
from .preprocessing import Preprocessor

np = require("ml", "numpy")
pd = require("ml", "pandas")

VARIANTS = ("all", "new", "cold")
MODEL_NAME = "mlp_attention"
#: The version serving now, scored beside a candidate on the candidate's holdout.
REFERENCE_NAME = "serving_version"
METRICS = ("hr", "mrr", "ndcg", "coverage", "novelty")
MAX_CHUNK_CELLS = 1 << 24

Progress = Callable[[str], None]


def model_class() -> type[Recommender]:
    """The learned model's class; raises ``ImportError`` when it (or Keras) is unavailable."""
    from .training import NextItemRecommender  # Keras loads only when the model is evaluated

    return NextItemRecommender


def build_models(
    names: Iterable[str] | None = None,
    model_params: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Progress | None = None,
) -> dict[str, Recommender]:
    """Instances by name; ``None`` means every baseline plus the model when it can be imported.

    ``model_params`` maps a model name to its constructor keywords. An unknown name, or the
    model asked for by name when it cannot be imported, raises ``ValueError``.
    """
    model_params = model_params or {}
    if names is None:
        names = list(BASELINES)
        try:
            model_class()
            names.append(MODEL_NAME)
        except ImportError as exc:
            if progress:
                progress(f"{MODEL_NAME} skipped: {exc}")
    models = {}
    for name in names:
        if name in BASELINES:
            cls = BASELINES[name]
        elif name == MODEL_NAME:
            try:
                cls = model_class()
            except ImportError as exc:
                raise ValueError(f"model {MODEL_NAME!r} is not available: {exc}") from exc
        else:
            known = ", ".join([*BASELINES, MODEL_NAME])
            raise ValueError(f"unknown model {name!r}; expected one of {known}")
        models[name] = cls(**dict(model_params.get(name, {})))
    unknown = set(model_params) - set(models)
    if unknown:
        raise ValueError(f"parameters given for models that are not run: {', '.join(sorted(unknown))}")
    return models


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(items, scores) [n, k], best first, with ``argpartition`` then a sort of only k columns."""
    k = min(k, scores.shape[1])
    part = np.argpartition(scores, scores.shape[1] - k, axis=1)[:, -k:]  # no negated copy
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)


class _Tally:
    """Running sums of one model in one variant, so chunks never need to be kept."""

    def __init__(self, n_items: int, k: int, surprise: np.ndarray, per_case: bool = False) -> None:
        self.k, self.surprise = k, surprise
        self.ranks: list[np.ndarray] | None = [] if per_case else None
        self.n = 0
        self.hits = self.reciprocal = self.gain = self.novelty = 0.0
        self.recommended = 0
        self.seen = np.zeros(n_items + 1, dtype=bool)

    def add(self, scores: np.ndarray, targets: np.ndarray) -> None:
        items, item_scores = top_k(scores, self.k)
        valid = np.isfinite(item_scores)  # masked items and padding are never recommended
        match = (items == targets[:, None]) & valid
        hit = match.any(axis=1)
        rank = match.argmax(axis=1)[hit] + 1.0
        if self.ranks is not None:
            reciprocal = np.zeros(len(targets), np.float32)
            reciprocal[hit] = 1.0 / rank
            self.ranks.append(reciprocal)
        self.n += len(targets)
        self.hits += float(hit.sum())
        self.reciprocal += float((1.0 / rank).sum())
        self.gain += float((1.0 / np.log2(rank + 1.0)).sum())
        self.novelty += float(self.surprise[items[valid]].sum())
        self.recommended += int(valid.sum())
        self.seen[items[valid]] = True

    def metrics(self, n_items: int) -> dict[str, float | None]:
        k = self.k
        if self.n == 0:
            return {f"{name}@{k}": None for name in METRICS}
        return {
            f"hr@{k}": self.hits / self.n,
            f"mrr@{k}": self.reciprocal / self.n,
            f"ndcg@{k}": self.gain / self.n,
            f"coverage@{k}": float(self.seen[1:].sum()) / max(n_items, 1),
            f"novelty@{k}": self.novelty / self.recommended if self.recommended else None,
        }


def evaluate(
    models: Mapping[str, Recommender],
    cases: CaseBatch,
    *,
    k: int = 20,
    item_popularity: np.ndarray,
    n_items: int,
    train_seconds: Mapping[str, float] | None = None,
    batch_size: int = 2048,
    per_case: bool = False,
    is_cold: np.ndarray | None = None,
    cold_items: np.ndarray | None = None,
    item_added: np.ndarray | None = None,
) -> dict[str, Any]:
    """Metrics of fitted models on ``cases``, in each variant, scoring each chunk once.

    ``all``: every case, lists as the model ranks them. ``new``: only cases whose target is
    not yet in the session, and each list first loses the session's items. With
    ``is_cold`` (per case: the target had no training events) and ``cold_items`` (per item:
    no training events), those cases leave ``all`` and ``new`` and form ``cold``: a "new
    arrivals for you" list, ranked among the cold items already in the catalogue at the
    case's moment (``item_added``, Unix seconds, NaN: always there), the session's items
    removed. HR/MRR/NDCG
    treat the target as the one relevant item (NDCG = 1/log2(rank + 1)); coverage is the
    share of the catalogue recommended at least once; novelty is the mean ``-log2`` of the
    recommended items' training popularity share, smoothed by +1 per item. The arrays
    ``score`` returns are masked in place, so a model must return a fresh array each call.
    ``per_case`` adds each variant's ``reciprocal_ranks``: model name -> float32 [n_cases]
    (1 / rank of the target, 0 beyond k), the same cases for every model, for paired
    comparisons such as bootstrap intervals (numpy arrays: not JSON).
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    popularity = np.asarray(item_popularity, dtype=np.float64)[: n_items + 1].copy()
    popularity = np.pad(popularity, (0, n_items + 1 - len(popularity)))
    popularity[0] = 0.0
    surprise = -np.log2((popularity + 1.0) / (popularity[1:].sum() + n_items))
    train_seconds = train_seconds or {}
    variants = VARIANTS if cold_items is not None and is_cold is not None else VARIANTS[:2]
    warm = np.ones(len(cases), bool) if is_cold is None else ~np.asarray(is_cold, bool)
    is_new = np.asarray(cases.is_new, dtype=bool)
    chosen = {"all": warm, "new": warm & is_new}
    if "cold" in variants:
        not_cold = ~np.asarray(cold_items, bool)[: n_items + 1]
        added = np.full(n_items + 1, np.nan)
        if item_added is not None:
            added = np.asarray(item_added, np.float64)[: n_items + 1]
        # An item is in the catalogue strictly after it was added: a target first seen at
        # this very moment (an event-derived catalogue) could not have been listed.
        target_added = added[cases.targets]
        listed = np.isnan(target_added) | (target_added < cases.now)
        chosen["cold"] = ~warm & is_new & listed
    result: dict[str, Any] = {
        variant: {"n_cases": int(chosen[variant].sum()), "models": {}} for variant in variants
    }
    if "cold" in variants:
        result["cold"]["n_not_yet_listed"] = int((~warm & is_new & ~listed).sum())
    # Scores are [rows, n_items + 1] float32: a chunk near 64 MB on big catalogues (its top-k
    # indices and the "new" copy take several times that; at 256 MB they added 1.7 GB to a retrain).
    batch_size = max(1, min(batch_size, MAX_CHUNK_CELLS // (n_items + 1)))
    for name, model in models.items():
        tallies = {variant: _Tally(n_items, k, surprise, per_case) for variant in variants}
        for start in range(0, len(cases), batch_size):
            window = slice(start, start + batch_size)
            chunk = cases.take(window)
            scores = np.asarray(model.score(chunk), dtype=np.float32)
            if scores.shape != (len(chunk), n_items + 1):
                raise ValueError(
                    f"{name}.score returned shape {scores.shape}, expected {(len(chunk), n_items + 1)}"
                )
            if not scores.flags.writeable:
                scores = scores.copy()
            scores[np.isnan(scores)] = -np.inf
            scores[:, 0] = -np.inf
            if "cold" in variants:  # nothing is recommended before it is in the catalogue
                scores[added[None, :] >= chunk.now[:, None]] = -np.inf
            rows = {variant: np.flatnonzero(mask[window]) for variant, mask in chosen.items()}
            if len(rows["all"]) == len(chunk):
                tallies["all"].add(scores, chunk.targets)
            elif len(rows["all"]):
                tallies["all"].add(scores[rows["all"]], chunk.targets[rows["all"]])
            for variant in variants[1:]:
                picked = rows[variant]
                if not len(picked):
                    continue
                fresh = scores[picked]  # a copy: the masks below do not leak into "all"
                items = chunk.items[picked]
                session = chunk.in_session[picked] & (items > 0)
                fresh[np.nonzero(session)[0], items[session]] = -np.inf
                if variant == "cold":
                    fresh[:, not_cold] = -np.inf
                tallies[variant].add(fresh, chunk.targets[picked])
        for variant in variants:
            metrics = tallies[variant].metrics(n_items)
            seconds = train_seconds.get(name)
            metrics["train_seconds"] = None if seconds is None else float(seconds)
            result[variant]["models"][name] = metrics
            ranks = tallies[variant].ranks
            if ranks is not None:
                result[variant].setdefault("reciprocal_ranks", {})[name] = (
                    np.concatenate(ranks) if ranks else np.zeros(0, np.float32)
                )
    return result


@dataclass(frozen=True)
class Prepared:
    """What every model of an evaluation is fitted and scored on: the training events encoded
    by the fitted preprocessor, and the cases built from the later events.

    Built by ``prepare_evaluation`` and read by ``evaluate_prepared``: between the two, a
    caller may let go of the raw event frames (a retrain at 10M events keeps them out of the
    models' fits that way).
    """

    train: pd.DataFrame  # the training events, transformed
    preprocessor: Any  # fitted on ``train``'s events (and the catalogue)
    built: EvaluationCases  # the later events' cases
    with_catalogue: bool  # a catalogue was given: the ``cold`` variant is scored


def prepare_evaluation(
    train_frame: pd.DataFrame,
    test_frame: pd.DataFrame,
    *,
    preprocessor: Any = None,
    preprocessor_params: Mapping[str, Any] | None = None,
    catalogue: pd.DataFrame | None = None,
    max_history: int = 50,
    progress: Progress | None = None,
) -> Prepared:
    """Fit ``preprocessor`` (a new one with ``preprocessor_params`` when None) on
    ``train_frame`` and build the cases of ``test_frame``; see ``run_evaluation``."""
    if progress:
        progress(f"Preprocessing {len(train_frame):,} training and {len(test_frame):,} test events ...")
    if preprocessor is None:
        preprocessor = Preprocessor(**dict(preprocessor_params or {}))
    train = preprocessor.fit_transform(train_frame, catalogue=catalogue)  # the frame is encoded once
    test = preprocessor.transform(test_frame)
    built = evaluation_cases(train, test, max_history=max_history)
    return Prepared(train=train, preprocessor=preprocessor, built=built, with_catalogue=catalogue is not None)


def run_evaluation(
    train_frame: pd.DataFrame,
    test_frame: pd.DataFrame,
    *,
    k: int = 20,
    models: Iterable[str | Recommender] | Mapping[str, Recommender] | None = None,
    preprocessor_params: Mapping[str, Any] | None = None,
    model_params: Mapping[str, Mapping[str, Any]] | None = None,
    max_history: int = 50,
    progress: Progress | None = None,
    preprocessor: Any = None,
    per_case: bool = False,
    reference: Recommender | None = None,
    reference_after: float | None = None,
    catalogue: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Fit on ``train_frame``, evaluate on ``test_frame`` (canonical frames, split by time).

    ``models``: names, unfitted ``Recommender`` instances, or a name -> instance mapping;
    ``None`` runs every baseline and the learned model when it can be imported. Pass an
    unfitted ``preprocessor`` to keep it (fitted here) for the model's files. ``per_case``:
    see ``evaluate``.

    ``catalogue`` (``frames.CATALOGUE_COLUMNS``): the products known at prediction time.
    Its items without training events join the vocabulary, and next items among them are
    scored in the ``cold`` variant instead of being skipped (see ``evaluate``).

    ``reference``: an already fitted recommender (the version serving now) to compare with
    the learned model on the same cases, those whose next item comes after
    ``reference_after`` (Unix seconds: the end of the events it was fitted on, so it is
    never judged on what it learned from). The result's ``"reference"`` holds that
    comparison, models named ``MODEL_NAME`` and ``REFERENCE_NAME``.

    The same as ``evaluate_prepared(prepare_evaluation(...), ...)``.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    # An unknown model name fails before the events are preprocessed. (The instances are built
    # again by evaluate_prepared, which alone holds those it builds: it lets each go once scored.)
    if models is not None and not isinstance(models, Mapping):
        models = list(models)  # read twice
    _instances(models, model_params, None)
    prepared = prepare_evaluation(
        train_frame,
        test_frame,
        preprocessor=preprocessor,
        preprocessor_params=preprocessor_params,
        catalogue=catalogue,
        max_history=max_history,
        progress=progress,
    )
    return evaluate_prepared(
        prepared,
        k=k,
        models=models,
        model_params=model_params,
        progress=progress,
        per_case=per_case,
        reference=reference,
        reference_after=reference_after,
    )


def evaluate_prepared(
    prepared: Prepared,
    *,
    k: int = 20,
    models: Iterable[str | Recommender] | Mapping[str, Recommender] | None = None,
    model_params: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Progress | None = None,
    per_case: bool = False,
    reference: Recommender | None = None,
    reference_after: float | None = None,
) -> dict[str, Any]:
    """Fit every model on ``prepared.train`` and score it on its cases; see ``run_evaluation``."""

    def say(message: str) -> None:
        if progress:
            progress(message)

    if k < 1:
        raise ValueError("k must be at least 1")
    instances = _instances(models, model_params, say)
    train, preprocessor, built = prepared.train, prepared.preprocessor, prepared.built
    n_items = int(preprocessor.n_items_)
    cases = built.cases
    with_cold = prepared.with_catalogue
    cold_items = np.asarray(preprocessor.item_popularity_) == 0
    cold_items[0] = False
    skipped = {reason: n for reason, n in (built.skipped or {}).items() if n or reason == SKIPPED_UNKNOWN}
    say(
        f"{n_items:,} items ({int(cold_items.sum()):,} without training events); {len(cases):,} cases from "
        f"{built.n_sessions:,} test sessions; skipped: {skipped_text(skipped)}"
    )

    # The same catalogue rules for every evaluation of these cases, the reference's included.
    is_cold = built.is_cold if with_cold else None
    shared = {
        "k": k,
        "item_popularity": preprocessor.item_popularity_,
        "n_items": n_items,
        "cold_items": cold_items if with_cold else None,
        "item_added": getattr(preprocessor, "item_added_", None),
    }
    # Each model is fitted, scored and let go before the next one is fitted (the learned
    # model is kept: the reference is compared with it), so a retrain never holds every
    # baseline's tables while the learned model fits.
    seconds: dict[str, float] = {}
    variants = evaluate({}, cases, per_case=per_case, is_cold=is_cold, **shared)
    for name in list(instances):
        model = instances[name] if name == MODEL_NAME else instances.pop(name)
        say(f"Fitting {name} ...")
        started = time.perf_counter()
        model.fit_preprocessed(train, preprocessor)
        seconds[name] = time.perf_counter() - started
        say(f"Fitted {name} in {seconds[name]:.1f} s")
        say(f"Scoring {name} ...")
        scored = evaluate(
            {name: model}, cases, train_seconds=seconds, per_case=per_case, is_cold=is_cold, **shared
        )
        for variant, data in scored.items():
            variants[variant]["models"].update(data["models"])
            if "reciprocal_ranks" in data:
                variants[variant].setdefault("reciprocal_ranks", {}).update(data["reciprocal_ranks"])
        del model, scored
        release_unused_memory()  # what the fit and its scoring freed, before the next one
    result = {
        "n_cases": len(cases),
        "n_skipped": int(built.n_skipped),
        "skipped": skipped,
        "n_sessions": int(built.n_sessions),
        "k": int(k),
        "variants": variants,
    }
    if reference is not None:
        say("Scoring the version serving now on the same cases ...")
        reference.fit_preprocessed(train, preprocessor)
        later = (
            np.arange(len(cases)) if reference_after is None else np.flatnonzero(cases.now > reference_after)
        )
        compared = {REFERENCE_NAME: reference}
        if MODEL_NAME in instances:
            compared = {MODEL_NAME: instances[MODEL_NAME], **compared}
        result["reference"] = {
            "model": REFERENCE_NAME,
            "after": reference_after,
            "n_cases": len(later),
            "variants": evaluate(
                compared, cases.take(later), is_cold=None if is_cold is None else is_cold[later], **shared
            ),
        }
    return result


def _instances(
    models: Iterable[str | Recommender] | Mapping[str, Recommender] | None,
    model_params: Mapping[str, Mapping[str, Any]] | None,
    progress: Progress | None,
) -> dict[str, Recommender]:
    """Name -> instance of ``run_evaluation``'s ``models`` argument."""
    if isinstance(models, Mapping):
        return dict(models)
    if models is None:
        return build_models(None, model_params, progress)
    models = list(models)
    named = build_models([m for m in models if isinstance(m, str)], model_params, progress)
    instances = {}
    for model in models:
        if isinstance(model, str):
            instances[model] = named[model]
        else:
            instances[model.name] = model
    return instances


def skipped_text(skipped: Mapping[str, int]) -> str:
    """Skipped cases with their reasons, as the progress line, the table and the bench say them."""
    return ", ".join(f"{n:,} ({reason})" for reason, n in skipped.items())


def _cell(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(result: Mapping[str, Any]) -> str:
    """A fixed-width table per variant, best MRR first and marked with ``*``."""
    k = result["k"]
    columns = [f"hr@{k}", f"mrr@{k}", f"ndcg@{k}", f"coverage@{k}", f"novelty@{k}", "train_seconds"]
    lines = [
        f"{result['n_cases']:,} cases from {result['n_sessions']:,} test sessions"
        + "; skipped: "
        + (
            skipped_text(result["skipped"])
            if result.get("skipped")
            else f"{result['n_skipped']:,} (next item unknown in training)"
        )
    ]
    for variant, data in result["variants"].items():
        models = data["models"]
        mrr = f"mrr@{k}"
        ranked = sorted(models, key=lambda name: -(models[name][mrr] or -1.0))
        width = max([len("model"), *(len(name) for name in models)]) + 2
        note = ""
        if data.get("n_not_yet_listed"):
            note = (
                f" ({data['n_not_yet_listed']:,} more left out: the next item's first sighting is that event)"
            )
        lines += ["", f"[{variant}] {data['n_cases']:,} cases{note}"]
        lines.append("  " + "model".ljust(width) + "".join(c.rjust(14) for c in columns))
        for position, name in enumerate(ranked):
            row = models[name]
            best = position == 0 and row[mrr] is not None
            cells = [_cell(row[c]) for c in columns[:4]]
            cells += [_cell(row[columns[4]], 2), _cell(row["train_seconds"], 1)]
            lines.append(("* " if best else "  ") + name.ljust(width) + "".join(c.rjust(14) for c in cells))
    return "\n".join(lines)
