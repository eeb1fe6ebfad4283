"""Model versions: train one, evaluate it on later data, keep it, activate it if better.

The training lock is a row: a ``ModelVersion`` with ``running=True`` (unique), so two
retrain requests from two processes train once. ``train_version`` reads the events, keeps
the latest ``HOLDOUT_FRACTION`` back, trains the model and the baselines on the rest,
evaluates all of them on the holdout (the active version too, on the same cases), refits
the model on every event with the epochs evaluation chose, writes the files, and
activates the version only if its ``PROMOTION_METRIC`` on those cases is at least the
active version's plus ``PROMOTION_MARGIN``.
Everything heavy lives in ``ml``; this module is the Django side of it.
"""

from __future__ import annotations

import gc
import logging
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from .. import artifacts
from ..adapters import get_adapter
from ..conf import app_settings
from ..extras import MissingExtra
from ..keys import ACTIVE_VERSION
from ..models import Event, ModelVersion

logger = logging.getLogger(__name__)

Status = ModelVersion.Status


class TrainingError(Exception):
    """Training cannot produce a model from these events (said in the version's error)."""


def release_stale_lock() -> int:
    """Fail trainings whose worker stopped giving signs of life; returns how many."""
    limit = timezone.now() - timedelta(seconds=app_settings.TRAINING_TIMEOUT)
    return ModelVersion.objects.filter(running=True, heartbeat_at__lt=limit).update(
        running=None,
        status=Status.FAILED,
        error=f"No sign of life for {app_settings.TRAINING_TIMEOUT} s: the training was stopped or crashed.",
    )


def request_training(params: dict[str, Any] | None = None) -> tuple[ModelVersion, bool]:
    """A new version to train, or the one already training: (version, created)."""
    release_stale_lock()
    try:
        with transaction.atomic():
            version = ModelVersion.objects.create(
                status=Status.TRAINING,
                running=True,
                heartbeat_at=timezone.now(),
                progress={"stage": "queued"},
                params=params if params is not None else dict(app_settings.MODEL),
            )
        return version, True
    except IntegrityError:
        return ModelVersion.objects.get(running=True), False


def _report(version_id: int, **progress: Any) -> None:
    ModelVersion.objects.filter(pk=version_id).update(progress=progress, heartbeat_at=timezone.now())


def train_version(version_id: int) -> ModelVersion:
    """Train, evaluate and store a ``training`` version; safe to call twice.

    A failure is recorded on the version (status ``failed``, the error text) and never
    touches the active version. Returns the version as it ended.
    """
    version = ModelVersion.objects.get(pk=version_id)
    if version.status != Status.TRAINING:
        return version
    started = time.perf_counter()
    try:
        _train(version)
    except Exception as exc:
        logger.exception("Training of model version %s failed.", version_id)
        ModelVersion.objects.filter(pk=version_id).update(
            status=Status.FAILED, running=None, error=f"{type(exc).__name__}: {exc}"[:5000]
        )
    else:
        ModelVersion.objects.filter(pk=version_id).update(running=None)
    finally:
        ModelVersion.objects.filter(pk=version_id).update(train_seconds=time.perf_counter() - started)
    version.refresh_from_db()
    if version.status == Status.READY:
        promote_if_better(version)
        delete_old_versions()
        version.refresh_from_db()
    return version


def _train(version: ModelVersion) -> None:
    # pandas and Keras load in the training worker only, never in a web process that imports this module.
    from ..ml.baselines import BASELINES
    from ..ml.evaluation import MODEL_NAME, evaluate_prepared, prepare_evaluation
    from ..ml.frames import cap_shopper_share, sample_shoppers, split_at
    from ..ml.preprocessing import Preprocessor
    from ..ml.training import NextItemRecommender
    from .reading import events_frame

    _report(version.pk, stage="reading events")
    since = None
    newest = Event.objects.aggregate(newest=Max("timestamp"), last=Max("pk"))
    if app_settings.TRAINING_WINDOW_DAYS and newest["newest"] is not None:
        since = newest["newest"] - timedelta(days=app_settings.TRAINING_WINDOW_DAYS)
    # Flagged shoppers' events are left out (capture/vigilance.py): no burst trains or judges a
    # model. The refit reads the same rows again (none stored after this point).
    events = Event.objects.trusted().filter(pk__lte=newest["last"] or 0)
    frame = events_frame(since=since, queryset=events)
    if len(frame) < 20:
        raise TrainingError(f"only {len(frame)} events in the training window; at least 20 are needed")
    times = frame["timestamp"]
    start, end = times.min(), times.max()
    cut = times.quantile(1 - app_settings.HOLDOUT_FRACTION) if app_settings.HOLDOUT_FRACTION else end
    train, holdout = split_at(frame, cut)
    holdout = cap_shopper_share(holdout, app_settings.HOLDOUT_MAX_SHOPPER_SHARE)
    holdout = sample_shoppers(holdout, app_settings.HOLDOUT_MAX_SHOPPERS)
    if train.empty or holdout.empty:
        raise TrainingError("the events span too short a time to keep a later holdout apart")

    def epoch(row: dict[str, Any]) -> None:
        _report(version.pk, **row)  # "stage" is the training stage, 1 or 2

    model = NextItemRecommender(**{**app_settings.MODEL, **version.params}, progress=epoch)
    logger.info(
        "Version %s: fitting on %d events before %s, evaluating on the %d after it.",
        version.pk, len(train), cut, len(holdout),
    )  # fmt: skip
    ModelVersion.objects.filter(pk=version.pk).update(
        params=model.get_params(),
        data_start=start,
        data_end=end,
        holdout_start=cut,
        event_count=len(frame),
    )
    preprocessor = Preprocessor(**app_settings.PREPROCESSING)
    _report(version.pk, stage="reading the catalogue")
    catalogue = _catalogue()
    reference = _serving_reference(version)

    def say(message: str) -> None:
        _report(version.pk, stage=message)

    prepared = prepare_evaluation(
        train, holdout, preprocessor=preprocessor, catalogue=catalogue, progress=say
    )
    # The raw events are not kept while the models fit and score (at 10M events, 2 GB of
    # text): the refit reads them again.
    del frame, times, train, holdout
    _release_memory()
    evaluation = evaluate_prepared(
        prepared,
        k=app_settings.EVALUATION_K,
        models=[*BASELINES, model],  # by name: each baseline is let go once it is scored
        progress=say,
        reference=reference.recommender if reference else None,
        reference_after=reference.fitted_through if reference else None,
    )
    del prepared
    if reference:
        evaluation["reference"]["version"] = reference.version_id
    metrics = {**evaluation, "model": MODEL_NAME, "stages": model.stages_, "learned_mlp": model.learned_mlp}
    history, shipped, shipped_preprocessor = model.history_, model, preprocessor
    if app_settings.REFIT_ON_ALL_EVENTS:
        # The version that ships has seen every event, the holdout's newest items included,
        # trained for the epochs evaluation chose; its holdout figures are the evaluated fit's.
        _report(version.pk, stage="refitting on every event")
        refit = model.refit_params()
        # The evaluated fit is not shipped: its Keras model goes before the refit builds another,
        # and what the evaluation's frames and peers freed goes back to the system.
        shipped = model = None
        _release_memory()
        logger.info(
            "Refitting on every event (the holdout included) for the epochs evaluation chose: "
            "stage 1 %d, stage 2 %d; this is the fit that ships.",
            refit["scalar_epochs"], refit["epochs"],
        )  # fmt: skip
        shipped_preprocessor = Preprocessor(**app_settings.PREPROCESSING)
        encoded = shipped_preprocessor.fit_transform(
            events_frame(since=since, queryset=events), catalogue=catalogue
        )
        _release_memory()  # the raw frame, gone once encoded
        shipped = NextItemRecommender(**refit, progress=lambda row: _report(version.pk, **row, refit=True))
        shipped.fit_preprocessed(encoded, shipped_preprocessor)
        del encoded
        history = [*history, *({**row, "refit": True} for row in shipped.history_)]
    metrics["fitted_through"] = (end if app_settings.REFIT_ON_ALL_EVENTS else cut).isoformat()
    metrics["catalogue_items"] = 0 if catalogue is None else int(catalogue["item"].nunique())
    metrics["refit"] = bool(app_settings.REFIT_ON_ALL_EVENTS)
    _report(version.pk, stage="writing files")
    with tempfile.TemporaryDirectory(prefix="recommendations-files-") as scratch:
        folder, size = artifacts.save_bundle(
            version.pk, bundle_of(shipped, shipped_preprocessor, Path(scratch))
        )
    ModelVersion.objects.filter(pk=version.pk).update(
        status=Status.READY,
        metrics=metrics,
        history=history,
        n_items=shipped_preprocessor.n_items_,
        artifact_path=folder,
        artifact_size=size,
        progress={"stage": "done", "epochs": len(history)},
    )


def _release_memory() -> None:
    """Collect what a retrain's step dropped and give the allocators' freed memory back to the
    system (``frames.release_unused_memory``: Arrow's buffers and C's heap)."""
    from ..ml.frames import release_unused_memory

    gc.collect()
    release_unused_memory()


def _catalogue() -> Any:
    """The shop's recommendable items as a frame (``adapter.item_features()``), or None.

    Items without events join the vocabulary through it: the version's ``cold`` figures
    rank them, and the shipped model knows every item on sale. A shop whose adapter cannot
    list its items (no ``ITEM_MODEL``) trains on the events alone.
    """
    import pandas as pd

    try:
        rows = list(get_adapter().item_features())
    except ImproperlyConfigured:
        return None
    except Exception:
        logger.exception("The catalogue could not be read; training on the events alone.")
        return None
    return pd.DataFrame(rows) if rows else None


def _fitted_through(version: ModelVersion) -> float | None:
    """Unix seconds of the last event ``version`` was fitted on (None: unknown).

    Computed as ``ml.cases.unix_seconds`` computes the cases' moments (integer nanoseconds
    / 1e9), so that last event itself never counts as later by a rounding difference.
    """
    import pandas as pd  # training worker only

    # Versions trained before the refit existed were fitted on the events before their holdout.
    moment = (version.metrics or {}).get("fitted_through") or version.holdout_start or version.data_end
    return pd.Timestamp(moment).as_unit("ns").value / 1e9 if moment else None


class Reference(NamedTuple):
    """The version serving now, as a recommender, to score on a candidate's holdout."""

    version_id: int
    recommender: Any  # ml.exported.SavedRecommender
    fitted_through: float | None  # Unix seconds of the last event it was fitted on


def _serving_reference(candidate: ModelVersion) -> Reference | None:
    """The active version read back from its files, or None (none, or unreadable)."""
    current = active_version()
    if current is None or current.pk == candidate.pk or not current.artifact_path:
        return None
    from ..ml.exported import SavedModel, SavedRecommender

    try:
        bundle = artifacts.load_bundle(current.artifact_path)
        saved = SavedModel.from_bundle(bundle.weights, bundle.vocabulary)
    except (artifacts.ArtifactError, KeyError, TypeError, ValueError) as exc:
        logger.warning("The serving version %s cannot be scored on the new holdout: %s", current.pk, exc)
        return None
    return Reference(current.pk, SavedRecommender(saved), _fitted_through(current))


def bundle_of(model: Any, preprocessor: Any, scratch: Path | None = None) -> artifacts.Bundle:
    """What a fitted ``NextItemRecommender`` leaves for serving: weights, vocabularies, Keras
    file, and above ``APPROXIMATE_ABOVE`` items the item index (written in ``scratch``)."""
    from ..ml import item_index
    from ..ml.evaluation import MODEL_NAME  # pandas: ml loads in the training worker only

    weights = model.export_weights()
    files = {}
    above = app_settings.APPROXIMATE_ABOVE
    if scratch is not None and above is not None and preprocessor.n_items_ > above:
        try:
            item_index.build(weights["item_embedding"], weights["item_bias"], scratch / item_index.FILE)
            files[item_index.FILE] = scratch / item_index.FILE
        except MissingExtra:
            logger.warning(
                "%d items: serving would score a request's candidates only with faiss "
                "(the 'large' extra), which is not installed; every item is scored.",
                preprocessor.n_items_,
            )
    return artifacts.Bundle(
        files=files,
        weights=weights,
        vocabulary={
            "model": MODEL_NAME,
            "params": model.get_params(),
            "preprocessor": preprocessor.vocabulary(),
            "item_features": model.item_features_.to_json(),
            "feature_spec": model.feature_spec_.to_json(),
        },
        keras_model=model.model_,
    )


def active_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=Status.ACTIVE).first()


def activate(version: ModelVersion, note: str = "") -> ModelVersion:
    """Make ``version`` the one that serves (also how to roll back to an older version)."""
    if version.status not in (Status.READY, Status.RETIRED, Status.ACTIVE):
        raise ValueError(
            f"version {version.pk} is {version.status}; only ready or retired versions can serve"
        )
    if not version.artifact_path:
        raise ValueError(f"version {version.pk} has no files")
    with transaction.atomic():
        ModelVersion.objects.select_for_update().filter(status=Status.ACTIVE).exclude(pk=version.pk).update(
            status=Status.RETIRED
        )
        ModelVersion.objects.filter(pk=version.pk).update(
            status=Status.ACTIVE, activated_at=timezone.now(), promotion_note=note or version.promotion_note
        )
        transaction.on_commit(lambda: cache.set(ACTIVE_VERSION, version.pk, None))
    version.refresh_from_db()
    return version


def promote_if_better(version: ModelVersion) -> bool:
    """Activate ``version`` if it beats the active one on the same holdout cases; note why.

    Both are scored on the candidate's holdout, on the cases after the last event the
    active version was fitted on (see ``run_evaluation``'s ``reference``): a harder or an
    easier window cannot decide, and the active version is never judged on its own
    training data. Fewer than ``PROMOTION_MIN_CASES`` such cases: kept ready, said why.
    """
    name, margin = app_settings.PROMOTION_METRIC, app_settings.PROMOTION_MARGIN
    value = version.metric(name)
    current = active_version()
    if value is None:
        return _keep_ready(version, f"Not activated: it has no {name} metric.")
    if current is None:
        activate(version, f"Activated: {name} {value:.4f}; no active version to compare with.")
        return True
    comparison = version.comparison(name)
    if comparison is None or comparison["version"] != current.pk:
        return _keep_ready(
            version,
            f"Kept ready: v{current.pk} could not be scored on this version's holdout, so the two "
            "were not compared; activate it by hand if it should serve.",
        )
    ours, theirs, n = comparison["candidate"], comparison["active"], comparison["n_cases"]
    if n < app_settings.PROMOTION_MIN_CASES or theirs is None:
        return _keep_ready(
            version,
            f"Kept ready: only {n} {name.partition(':')[0]} holdout cases come after "
            f"the events v{current.pk} was fitted on (at least {app_settings.PROMOTION_MIN_CASES} are "
            "needed to compare the two fairly); retrain when more events have arrived, or activate it by hand.",
        )
    same = f"on the same {n} holdout cases"
    if ours is not None and ours >= theirs + margin:
        activate(
            version, f"Activated: {name} {ours:.4f} ≥ v{current.pk}'s {theirs:.4f} + margin {margin}, {same}."
        )
        return True
    return _keep_ready(
        version,
        f"Kept ready: {name} {ours or 0:.4f} < v{current.pk}'s {theirs:.4f} + margin {margin}, {same}.",
    )


def _keep_ready(version: ModelVersion, note: str) -> bool:
    """Leave ``version`` ready (not serving) and say why on it; returns False."""
    ModelVersion.objects.filter(pk=version.pk).update(promotion_note=note)
    return False


def delete_old_versions() -> int:
    """Delete finished versions beyond ``KEEP_VERSIONS`` (never the active or a training one,
    nor one an experiment's arm serves or served: its figures name it)."""
    keep = app_settings.KEEP_VERSIONS
    finished = (
        ModelVersion.objects.exclude(status__in=[Status.ACTIVE, Status.TRAINING])
        .exclude(arms__isnull=False)
        .order_by("-created_at", "-id")
    )
    n_active = ModelVersion.objects.filter(status=Status.ACTIVE).count()
    old = list(finished[max(keep - n_active, 0) :])
    for version in old:
        artifacts.delete_bundle(version.artifact_path)
        version.delete()
    return len(old)


def promote_on_traffic(version: ModelVersion) -> tuple[bool, str]:
    """Activate ``version`` when its off-policy estimate on logged traffic is better than what
    the shop served: the lower end of its doubly robust 95 % interval above the logged clicks
    per list (``metrics["off_policy"]``, from ``serving.off_policy.estimate_version``).
    Returns whether it was activated, and why in words (also kept as its promotion note)."""
    found = (version.metrics or {}).get("off_policy") or {}
    if not found.get("lists"):
        return False, f"Version {version.pk} has no off-policy estimate on logged traffic yet."
    low, logged = found["dr"]["low"], found["logged"]
    words = (
        f"on {found['lists']:,} logged lists, estimated {found['dr']['value']:.4f} clicks per list "
        f"(95 % interval {low:.4f} to {found['dr']['high']:.4f}) against {logged:.4f} served"
    )
    if low <= logged:
        note = f"Not promoted on logged traffic: {words}."
        ModelVersion.objects.filter(pk=version.pk).update(promotion_note=note)
        return False, note
    note = f"Promoted on logged traffic: {words}."
    activate(version, note)
    return True, note
