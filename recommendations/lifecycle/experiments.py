"""Starting, stopping and reading experiments (the admin and the outcomes task call these).

Starting checks what would make the result meaningless: arms whose shares add up to 100,
one control, lists a model makes, no other running experiment on the same list, versions
with files. Reading (``update``) stores the day's figures and verdict, then applies the
stopping rules: stop for harm (on by default) when an arm is worse than the control on the
primary metric by the always-valid test, and stop and promote (off by default) when an arm
that serves a model version is better. A broken split (sample ratio mismatch) stops nothing
and promotes nothing: it is a fault to fix, not a result.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..keys import EXPERIMENTS
from ..models import Arm, Experiment, ExperimentResult, ModelVersion
from . import outcomes, registry

logger = logging.getLogger(__name__)


class ExperimentError(ValueError):
    """An experiment cannot start (or stop) as asked; the message says why."""


def problems(experiment: Experiment) -> list[str]:
    """What stops ``experiment`` from starting, in words (empty: it can start)."""
    found = []
    arms = list(experiment.arms.all())
    if len(arms) < 2:
        found.append("it needs at least two arms")
    if sum(arm.share for arm in arms) != 100:
        found.append(f"the arms' shares add up to {sum(arm.share for arm in arms)} %, not 100 %")
    controls = [arm for arm in arms if arm.is_control]
    if len(controls) != 1:
        found.append("exactly one arm must be the control")
    scenarios = list(experiment.scenarios or [])
    if not scenarios or any(s not in Experiment.SCENARIOS for s in scenarios):
        found.append(f"its lists must be some of {', '.join(Experiment.SCENARIOS)}")
    for arm in arms:
        if arm.strategy == Arm.Strategy.VERSION:
            version = arm.model_version
            if version is None:
                found.append(f"arm {arm.name} serves a model version but names none")
            elif (
                version.status
                not in (ModelVersion.Status.READY, ModelVersion.Status.ACTIVE, ModelVersion.Status.RETIRED)
                or not version.artifact_path
            ):
                found.append(f"arm {arm.name}: version {version.pk} is {version.status} and cannot serve")
    others = Experiment.objects.filter(status=Experiment.Status.RUNNING).exclude(pk=experiment.pk)
    for other in others:
        shared = set(other.scenarios or []) & set(scenarios)
        if shared:
            found.append(f"“{other}” already runs on {', '.join(sorted(shared))}")
    return found


def _changed() -> None:
    """Every process reads the running experiments again within ``MODEL_CHECK_INTERVAL``."""
    cache.delete(EXPERIMENTS)
    transaction.on_commit(lambda: cache.delete(EXPERIMENTS))  # and once the change is visible


def start(experiment: Experiment) -> Experiment:
    if experiment.status != Experiment.Status.DRAFT:
        raise ExperimentError(
            f"“{experiment}” is {experiment.status}; only a draft starts (copy it to rerun)"
        )
    found = problems(experiment)
    if found:
        raise ExperimentError(f"“{experiment}” cannot start: {'; '.join(found)}.")
    experiment.salt = experiment.salt or secrets.token_hex(8)
    experiment.status, experiment.started_at = Experiment.Status.RUNNING, timezone.now()
    experiment.save(update_fields=["salt", "status", "started_at"])
    _changed()
    logger.info("Experiment %s started.", experiment.pk)
    return experiment


def stop(experiment: Experiment, reason: str = "stopped by staff") -> Experiment:
    """Stop: every shopper is served as without it (the active version) from the next check."""
    if experiment.status != Experiment.Status.RUNNING:
        raise ExperimentError(f"“{experiment}” is not running")
    experiment.status, experiment.stopped_at = Experiment.Status.STOPPED, timezone.now()
    experiment.stop_reason = reason[:200]
    experiment.save(update_fields=["status", "stopped_at", "stop_reason"])
    _changed()
    logger.info("Experiment %s stopped: %s.", experiment.pk, reason)
    return experiment


def update(experiment: Experiment) -> ExperimentResult | None:
    """Compute today's figures and verdict; apply the stopping rules. None before a start."""
    if experiment.started_at is None:
        return None
    arms = outcomes.measure(experiment)
    day = timezone.localdate()
    earlier = experiment.results.filter(day__lt=day).order_by("-day").first()
    analysis = outcomes.analyse(experiment, arms, earlier.analysis if earlier else None)
    result, _ = ExperimentResult.objects.update_or_create(
        experiment=experiment,
        day=day,
        defaults={"arms": arms, "analysis": analysis, "computed_at": timezone.now()},
    )
    experiment.verdict = outcomes.verdict(experiment, analysis)
    experiment.save(update_fields=["verdict"])
    if experiment.status == Experiment.Status.RUNNING:
        _apply_stopping_rules(experiment, analysis)
    return result


def _apply_stopping_rules(experiment: Experiment, analysis: dict) -> None:
    ratio = analysis.get("sample_ratio")
    if analysis.get("error") or (ratio and ratio["mismatch"]):
        return
    metric = experiment.primary_metric
    arms = {arm.name: arm for arm in experiment.arms.all()}
    readings = {name: found.get(metric) for name, found in analysis.get("comparisons", {}).items()}
    harmful = sorted(name for name, found in readings.items() if found and found["high"] < 0)
    if harmful and experiment.stop_for_harm:
        stop(experiment, f"stopped for harm: {', '.join(harmful)} worse than the control")
        return
    winners = sorted(
        (name for name, found in readings.items() if found and found["low"] > 0),
        key=lambda name: -readings[name]["difference"],
    )
    if not winners or not experiment.auto_promote:
        return
    arm = arms[winners[0]]
    if arm.strategy != Arm.Strategy.VERSION or arm.model_version is None:
        stop(experiment, f"stopped: {arm.name} won (it serves no model version to promote)")
        return
    registry.activate(
        arm.model_version, note=f"Promoted by experiment “{experiment}”: {experiment.verdict}"[:2000]
    )
    stop(experiment, f"stopped: {arm.name} won, version {arm.model_version_id} promoted")


def update_running() -> int:
    """Read every running experiment (and those stopped since their last reading)."""
    count = 0
    recent = timezone.now() - timedelta(days=1)
    readable = Experiment.objects.filter(
        Q(status=Experiment.Status.RUNNING) | Q(status=Experiment.Status.STOPPED, stopped_at__gte=recent)
    )
    for experiment in readable.order_by("pk"):
        try:
            update(experiment)
            count += 1
        except Exception:
            logger.exception("Could not compute the outcomes of experiment %s.", experiment.pk)
    return count
