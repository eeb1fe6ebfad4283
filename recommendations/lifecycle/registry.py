"""Model versions: train one, evaluate it on later data, keep it, activate it if better.

The training lock is a row: a ``ModelVersion`` with ``running=True`` (unique), so two
retrain requests from two processes train once. ``train_version`` reads the events, keeps
the latest ``HOLDOUT_FRACTION`` back, trains the model and the baselines on the rest,
evaluates all of them on the holdout, writes the files, and activates the version only if
its ``PROMOTION_METRIC`` is at least the active version's plus ``PROMOTION_MARGIN``.
Everything heavy lives in ``ml``; this module is the Django side of it.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from .. import artifacts
from ..conf import app_settings
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
    from ..ml.evaluation import MODEL_NAME, run_evaluation
    from ..ml.frames import cap_shopper_share, split_at
    from ..ml.preprocessing import Preprocessor
    from ..ml.training import NextItemRecommender
    from .reading import events_frame

    _report(version.pk, stage="reading events")
    since = None
    newest = Event.objects.aggregate(newest=Max("timestamp"))["newest"]
    if app_settings.TRAINING_WINDOW_DAYS and newest is not None:
        since = newest - timedelta(days=app_settings.TRAINING_WINDOW_DAYS)
    # Flagged shoppers' events are left out (capture/vigilance.py): no burst trains or judges a model.
    frame = events_frame(since=since, queryset=Event.objects.trusted())
    if len(frame) < 20:
        raise TrainingError(f"only {len(frame)} events in the training window; at least 20 are needed")
    times = frame["timestamp"]
    cut = times.quantile(1 - app_settings.HOLDOUT_FRACTION) if app_settings.HOLDOUT_FRACTION else times.max()
    train, holdout = split_at(frame, cut)
    holdout = cap_shopper_share(holdout, app_settings.HOLDOUT_MAX_SHOPPER_SHARE)
    if train.empty or holdout.empty:
        raise TrainingError("the events span too short a time to keep a later holdout apart")

    def epoch(row: dict[str, Any]) -> None:
        _report(version.pk, stage="training", **row)

    model = NextItemRecommender(**{**app_settings.MODEL, **version.params}, progress=epoch)
    ModelVersion.objects.filter(pk=version.pk).update(
        params=model.get_params(),
        data_start=times.min(),
        data_end=times.max(),
        holdout_start=cut,
        event_count=len(frame),
    )
    preprocessor = Preprocessor(**app_settings.PREPROCESSING)
    evaluation = run_evaluation(
        train,
        holdout,
        k=app_settings.EVALUATION_K,
        models={**{name: cls() for name, cls in BASELINES.items()}, MODEL_NAME: model},
        preprocessor=preprocessor,
        progress=lambda message: _report(version.pk, stage=message),
    )
    _report(version.pk, stage="writing files")
    folder, size = artifacts.save_bundle(version.pk, bundle_of(model, preprocessor))
    ModelVersion.objects.filter(pk=version.pk).update(
        status=Status.READY,
        metrics={**evaluation, "model": MODEL_NAME},
        history=model.history_,
        n_items=preprocessor.n_items_,
        artifact_path=folder,
        artifact_size=size,
        progress={"stage": "done", "epochs": len(model.history_)},
    )


def bundle_of(model: Any, preprocessor: Any) -> artifacts.Bundle:
    """What a fitted ``NextItemRecommender`` leaves for serving: weights, vocabularies, Keras file."""
    from ..ml.evaluation import MODEL_NAME  # pandas: ml loads in the training worker only

    return artifacts.Bundle(
        weights=model.export_weights(),
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
    """Activate ``version`` if its holdout metric beats the active one's; note why either way."""
    name, margin = app_settings.PROMOTION_METRIC, app_settings.PROMOTION_MARGIN
    value = version.metric(name)
    current = active_version()
    current_value = current.metric(name) if current else None
    if value is None:
        note = f"Not activated: it has no {name} metric."
    elif current is None or current_value is None:
        activate(version, f"Activated: {name} {value:.4f}; no active version to compare with.")
        return True
    elif value >= current_value + margin:
        activate(
            version, f"Activated: {name} {value:.4f} ≥ v{current.pk}'s {current_value:.4f} + margin {margin}."
        )
        return True
    else:
        note = f"Kept ready: {name} {value:.4f} < v{current.pk}'s {current_value:.4f} + margin {margin}."
    ModelVersion.objects.filter(pk=version.pk).update(promotion_note=note)
    return False


def delete_old_versions() -> int:
    """Delete finished versions beyond ``KEEP_VERSIONS`` (never the active or a training one)."""
    keep = app_settings.KEEP_VERSIONS
    finished = ModelVersion.objects.exclude(status__in=[Status.ACTIVE, Status.TRAINING]).order_by(
        "-created_at", "-id"
    )
    n_active = ModelVersion.objects.filter(status=Status.ACTIVE).count()
    old = list(finished[max(keep - n_active, 0) :])
    for version in old:
        artifacts.delete_bundle(version.artifact_path)
        version.delete()
    return len(old)
