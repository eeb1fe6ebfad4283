"""Which arm of a running experiment serves a shopper, and with which model.

Assignment is stateless: a shopper's arm is ``sha256(salt, unit)`` mapped onto the arms'
shares, so nothing is written per shopper and every process, page and API call agrees.
The *unit* is what keeps a shopper in one arm:

- an anonymous web visitor or app install: its own id;
- a signed-in user: the first browser or device that signed in to the account
  (``VisitorLink``), else the account. A visitor who signs in for the first time keeps
  the arm they had, on the web, in the app and on any later device. (One edge: an account
  first used only through the API, with no browser or device linked yet, moves once, when
  the first one signs in.)

Running experiments are read from the database at most every ``MODEL_CHECK_INTERVAL``
seconds per process (a change clears the shared cache key). Each arm's model version is
loaded once per process and kept while an experiment runs; at most
``EXPERIMENTS["MAX_LOADED_VERSIONS"]`` besides the active one, each about the size of the
active model in memory (the numpy tower and vocabularies, see BENCHMARKS.md *Memory*).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.dispatch import receiver

from .. import artifacts
from ..conf import app_settings
from ..identity import Shopper
from ..keys import ASSIGNMENT_UNIT, EXPERIMENTS, polled_seconds
from ..models import Arm, Experiment, ModelVersion, VisitorLink
from ..signals import shopper_forgotten
from .loader import RETRY_FAILED_SECONDS, ServingModel, active_model, load_version

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArmPlan:
    name: str
    share: int
    strategy: str
    version_id: int | None
    is_control: bool


@dataclass(frozen=True)
class ExperimentPlan:
    """A running experiment as serving needs it (plain data: cached and shared freely)."""

    id: int
    salt: str
    scenarios: frozenset[str]
    arms: tuple[ArmPlan, ...]

    def arm_for(self, unit: str) -> ArmPlan:
        """The arm of ``unit``: where its hash falls among the arms' cumulative shares."""
        point = position(self.salt, unit) * sum(arm.share for arm in self.arms)
        edge = 0.0
        for arm in self.arms:
            edge += arm.share
            if point < edge:
                return arm
        return self.arms[-1]


def position(salt: str, unit: str) -> float:
    """A uniform number in [0, 1) fixed by ``salt`` and ``unit`` (64 bits of sha256)."""
    digest = hashlib.sha256(f"{salt}\x1f{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def load_plans() -> list[ExperimentPlan]:
    """The running experiments, from the database."""
    plans = []
    running = Experiment.objects.filter(status=Experiment.Status.RUNNING).prefetch_related("arms")
    for experiment in running.order_by("pk"):
        arms = tuple(
            ArmPlan(arm.name, int(arm.share), arm.strategy, arm.model_version_id, arm.is_control)
            for arm in sorted(experiment.arms.all(), key=lambda arm: arm.pk)
            if arm.share > 0
        )
        if arms:
            scenarios = frozenset(str(s) for s in experiment.scenarios or () if s in Experiment.SCENARIOS)
            plans.append(ExperimentPlan(experiment.pk, experiment.salt, scenarios, arms))
    return plans


def changed() -> None:
    """Call after an experiment or arm changes: every process reads them again soon."""
    cache.delete(EXPERIMENTS)
    _running.reset()


class _Running:
    """This process's copy of the running experiments, refreshed every few seconds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.plans: list[ExperimentPlan] = []
        self.checked_at = float("-inf")

    def reset(self) -> None:
        with self.lock:
            self.checked_at = float("-inf")

    def get(self) -> list[ExperimentPlan]:
        if time.monotonic() - self.checked_at < app_settings.MODEL_CHECK_INTERVAL:
            return self.plans
        with self.lock:
            plans = cache.get(EXPERIMENTS)
            if plans is None:
                plans = load_plans()
                cache.set(EXPERIMENTS, plans, polled_seconds(app_settings.MODEL_CHECK_INTERVAL))
            self.plans, self.checked_at = plans, time.monotonic()
        return self.plans


_running = _Running()


def running() -> list[ExperimentPlan]:
    """The running experiments (never raising: a broken lookup means none)."""
    try:
        return _running.get()
    except Exception:
        logger.exception("Could not read the running experiments; serving without them.")
        return []


def assignment_unit(shopper: Shopper) -> str:
    """What a shopper's arm is hashed from (see the module docstring); "" for nobody."""
    if shopper.user_id is None:
        return f"s:{shopper.visitor}" if shopper.visitor else ""
    key = f"{ASSIGNMENT_UNIT}{shopper.user_id}"
    unit = cache.get(key)
    if unit is None:
        first = (
            VisitorLink.objects.filter(user_id=shopper.user_id)
            .order_by("linked_at", "pk")
            .values_list("session_key", flat=True)
            .first()
        )
        if first:
            unit = f"s:{first}"
            cache.set(key, unit, 86_400)
        elif shopper.visitor:
            # Signing in links this visitor (capture's login receiver) in the same request:
            # it becomes the account's unit, so the arm does not change at login.
            unit = f"s:{shopper.visitor}"
        else:
            unit = f"u:{shopper.user_id}"
            cache.set(key, unit, 60)  # a first browser or device may soon be linked
    return unit


@receiver(shopper_forgotten, dispatch_uid="recommendations.serving.experiments.forget")
def forget_units(sender: Any, shoppers: Sequence[Shopper], **kwargs: Any) -> None:
    """An erased user's cached unit names a visitor id that no longer exists: drop it."""
    cache.delete_many([f"{ASSIGNMENT_UNIT}{s.user_id}" for s in shoppers if s.user_id is not None])


class _Versions:
    """Arms' model versions loaded in this process (least recently used dropped first)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.models: OrderedDict[int, ServingModel] = OrderedDict()
        self.failed: dict[int, float] = {}

    def reset(self) -> None:
        with self.lock:
            self.models.clear()
            self.failed.clear()

    def get(self, version_id: int) -> ServingModel | None:
        with self.lock:
            model = self.models.get(version_id)
            if model is not None:
                self.models.move_to_end(version_id)
                return model
            failed_at = self.failed.get(version_id)
            if failed_at is not None and time.monotonic() - failed_at < RETRY_FAILED_SECONDS:
                return None
            try:
                model = load_version(ModelVersion.objects.get(pk=version_id))
            except (artifacts.ArtifactError, ModelVersion.DoesNotExist) as exc:
                self.failed[version_id] = time.monotonic()
                logger.error("An experiment's model version %s cannot be served (%s).", version_id, exc)
                return None
            self.models[version_id] = model
            while len(self.models) > int(app_settings.EXPERIMENTS["MAX_LOADED_VERSIONS"]):
                self.models.popitem(last=False)
            return model


_versions = _Versions()


@dataclass(frozen=True)
class Served:
    """What serves one list: a model (None: the fallbacks) and the arm that chose it."""

    model: ServingModel | None
    experiment_id: int | None = None
    arm: str = ""


def serving(scenario: str, shopper: Shopper) -> Served:
    """The model for this shopper's ``scenario`` list: their arm's, or the active one.

    An arm whose version cannot be loaded serves the active model and is not recorded as
    that arm: the missing traffic then shows as a sample ratio mismatch, not as a result.
    """
    plans = [plan for plan in running() if scenario in plan.scenarios]
    if not plans or not shopper.is_known:
        return Served(active_model())
    try:
        unit = assignment_unit(shopper)
    except Exception:
        logger.exception("Could not find the shopper's experiment unit; serving the active model.")
        return Served(active_model())
    if not unit:
        return Served(active_model())
    plan = plans[0]  # one running experiment per list (checked when one starts)
    arm = plan.arm_for(unit)
    if arm.strategy == Arm.Strategy.FALLBACKS:
        return Served(None, plan.id, arm.name)
    active = active_model()
    if arm.strategy == Arm.Strategy.ACTIVE or arm.version_id is None:
        return Served(active, plan.id, arm.name)
    if active is not None and active.version_id == arm.version_id:
        return Served(active, plan.id, arm.name)
    model = _versions.get(arm.version_id)
    if model is None:
        return Served(active)
    return Served(model, plan.id, arm.name)


def reset() -> None:
    """Forget loaded experiments and versions (tests, settings changes)."""
    _running.reset()
    _versions.reset()
