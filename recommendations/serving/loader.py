"""The active model version in this process: loaded once, swapped when another is activated.

``active_model()`` costs one cache read every ``MODEL_CHECK_INTERVAL`` seconds. When the
active version id changes (``lifecycle.registry.activate`` writes it to the cache; a process with a
private cache reads it from the database), one thread loads the new files while the
others keep serving the old model; the swap is one reference assignment, so no request
sees half a model. A version whose files cannot be loaded is logged, its error written
on the version (the admin shows it) and retried only after a while; meanwhile the
previous model, or the fallbacks, serve. Only numpy is needed: TensorFlow is never
imported here.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from .. import artifacts, extras
from ..conf import app_settings
from ..keys import ACTIVE_VERSION, polled_seconds
from ..models import ModelVersion

logger = logging.getLogger(__name__)

#: Seconds before a version whose files failed to load is tried again.
RETRY_FAILED_SECONDS = 60.0


@dataclass(frozen=True)
class ServingModel:
    """What serving needs of one version, in memory: the numpy tower and the vocabularies."""

    version_id: int
    tower: Any  # ml.tower.NumpyTower
    item_ids: Any  # ml.item_ids.ItemIds: index -> shop item id; index 0 is padding ("")
    index_of: Any  # ml.item_ids.IndexOf: shop item id -> index, read like a dict
    category_list: list[str]  # category index -> category id (index 0: unknown)
    spec: Any  # ml.features.FeatureSpec
    item_features: Any  # ml.features.ItemFeatures
    item_top_category: Any  # numpy int [n_items + 1]: the top level of each item's category path

    @property
    def n_items(self) -> int:
        return len(self.item_ids) - 1

    @classmethod
    def from_bundle(cls, version_id: int, bundle: Any) -> ServingModel:
        # numpy (the ml extra) loads only once a version is served: a shop without it still starts.
        from ..ml.exported import SavedModel
        from ..ml.related import top_levels

        saved = SavedModel.from_bundle(bundle.weights, bundle.vocabulary, bundle.files)
        categories = saved.category_ids
        return cls(
            version_id=version_id,
            tower=saved.tower,
            item_ids=saved.item_ids,
            index_of=saved.item_ids.index_of,
            category_list=categories,
            spec=saved.spec,
            item_features=saved.item_features,
            item_top_category=top_levels(categories, saved.item_features.category),
        )


def load_version(version: ModelVersion) -> ServingModel:
    """Read and verify a version's files (raises ``artifacts.ArtifactError`` or ``ValueError``)."""
    extras.require("ml", "numpy")
    if not version.artifact_path:
        raise artifacts.ArtifactError(f"version {version.pk} has no files")
    bundle = artifacts.load_bundle(version.artifact_path)
    try:
        return ServingModel.from_bundle(version.pk, bundle)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise artifacts.ArtifactError(f"{version.artifact_path}: unusable files ({exc})") from exc


class ActiveModel:
    """This process's view of the active version (one per process, thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: ServingModel | None = None
        self._checked_at = float("-inf")
        self._failed: dict[int, float] = {}

    def reset(self) -> None:
        with self._lock:
            self._model, self._checked_at, self._failed = None, float("-inf"), {}

    def _active_id(self) -> int | None:
        value = cache.get(ACTIVE_VERSION)
        if value is None:
            active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).values_list(
                "pk", flat=True
            )
            value = active.first() or 0
            # Short-lived in a private cache: each process still notices a change within seconds.
            cache.set(ACTIVE_VERSION, value, polled_seconds(app_settings.MODEL_CHECK_INTERVAL))
        return int(value) or None

    def get(self) -> ServingModel | None:
        """The model to serve with now, or None (no active version, or it cannot be loaded)."""
        if time.monotonic() - self._checked_at < app_settings.MODEL_CHECK_INTERVAL:
            return self._model
        # One thread refreshes; the others keep serving what is loaded (they wait only
        # when nothing has been loaded yet).
        if not self._lock.acquire(blocking=self._model is None):
            return self._model
        try:
            if time.monotonic() - self._checked_at < app_settings.MODEL_CHECK_INTERVAL:
                return self._model
            self._refresh()
            return self._model
        finally:
            self._lock.release()

    def _refresh(self) -> None:
        try:
            wanted = self._active_id()
        except Exception:
            logger.exception("Could not read which model version is active; serving the loaded one.")
            self._checked_at = time.monotonic()
            return
        self._checked_at = time.monotonic()
        if wanted is None:
            self._model = None
            return
        if self._model is not None and self._model.version_id == wanted:
            return
        failed_at = self._failed.get(wanted)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_FAILED_SECONDS:
            return
        try:
            version = ModelVersion.objects.get(pk=wanted)
            model = load_version(version)
        except artifacts.ArtifactError as exc:
            # The files are bad: say so on the version, and do not retry at every request.
            self._failed[wanted] = time.monotonic()
            logger.error("Model version %s cannot be served (%s); using fallbacks.", wanted, exc)
            ModelVersion.objects.filter(pk=wanted).update(
                error=f"Serving could not load its files: {exc}"[:2000]
            )
            return
        except Exception:
            logger.exception("Could not load model version %s now; trying again shortly.", wanted)
            return
        self._failed.pop(wanted, None)
        self._model = model  # the swap: one assignment
        logger.info("Serving model version %s (%d items).", wanted, model.n_items)


_active = ActiveModel()


def active_model() -> ServingModel | None:
    """The model this process serves with (None: fallbacks), never raising."""
    try:
        return _active.get()
    except Exception:
        logger.exception("Model lookup failed; using fallbacks.")
        return None


def reset() -> None:
    """Forget the loaded model (tests, and after settings change)."""
    _active.reset()
