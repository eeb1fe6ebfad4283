"""A candidate version's click-through on lists it never served, from the logged traffic.

Each logged "for you" impression holds the items shown and the chance each had of its place
(``exploration.py``); clicks name the list and the place. For every such list this module
rebuilds what the shopper had done before it (their item events up to that moment), asks
the candidate version for its list in the same situation (``scoring.score_shopper``, the
items of the current visit left out as serving does), and hands both to the estimators of
``ml.off_policy``. Lists the candidate has no opinion on (no event it knows) are skipped
and counted. The result is stored on the version (``metrics["off_policy"]``) and shown in
its admin page beside the offline holdout figures.

Heavier than a request (one scoring per logged list), so it runs from the admin or a task,
over at most ``max_lists`` of the latest lists.
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from datetime import timedelta
from typing import Any

import numpy as np
from django.utils import timezone

from ..conf import app_settings
from ..identity import row_shopper, same_shopper
from ..ml import off_policy
from ..models import Event, EventType, ModelVersion
from .history import HISTORY_TYPES, HistoryEvent
from .loader import ServingModel, load_version
from .scoring import score_shopper

logger = logging.getLogger(__name__)

#: How far back a logged list's shopper history is read.
HISTORY_DAYS = 30


def logged_lists(days: int = 14, max_lists: int = 20_000, scenario: str = "for_you") -> list[dict]:
    """The latest logged lists with what was shown, its chances, and the places clicked."""
    since = timezone.now() - timedelta(days=days)
    rows = list(
        Event.objects.filter(event_type=EventType.IMPRESSION, scenario=scenario, timestamp__gte=since)
        .exclude(list_id="")
        .exclude(shown__isnull=True)
        .order_by("-timestamp")
        .values("user_id", "session_key", "timestamp", "list_id", "shown")[:max_lists]
    )
    by_list = {row["list_id"]: row for row in rows}
    for row in rows:
        row["clicked"] = set()
    clicks = Event.objects.filter(
        event_type=EventType.CLICK, timestamp__gte=since, list_id__in=list(by_list)
    ).values("user_id", "session_key", "list_id", "position", "timestamp")
    for click in clicks:
        shown = by_list.get(click["list_id"])
        if shown is not None and same_shopper(shown, click) and click["position"] is not None:
            shown["clicked"].add(int(click["position"]))
    rows.reverse()
    return rows


def _histories(rows: list[dict]) -> dict[str, list[HistoryEvent]]:
    """Each logged shopper's item events, oldest first (one query for all of them)."""
    if not rows:
        return {}
    first = min(row["timestamp"] for row in rows) - timedelta(days=HISTORY_DAYS)
    users = {row["user_id"] for row in rows if row["user_id"] is not None}
    visitors = {row["session_key"] for row in rows if row["user_id"] is None and row["session_key"]}
    found: dict[str, list[HistoryEvent]] = defaultdict(list)
    events = Event.objects.filter(event_type__in=HISTORY_TYPES, timestamp__gte=first).filter(
        user_id__in=users
    ) | Event.objects.filter(
        event_type__in=HISTORY_TYPES, timestamp__gte=first, user__isnull=True, session_key__in=visitors
    )
    for row in events.order_by("timestamp", "id").values(
        "user_id", "session_key", "timestamp", "event_type", "item_id", "category_id", "id"
    ):
        found[row_shopper(row)].append(
            HistoryEvent(
                row["timestamp"].timestamp(),
                row["event_type"],
                row["item_id"],
                row["session_key"],
                f"db:{row['id']}",
                row["category_id"],
            )
        )
    return found


def candidate_lists(model: ServingModel, rows: list[dict]) -> tuple[list[list[str]], list[bool]]:
    """The candidate's list for each logged one, as long as it was ("" past its end), and
    whether the candidate had an opinion (an event it knows) at all."""
    histories = _histories(rows)
    times = {key: [event.timestamp for event in events] for key, events in histories.items()}
    limit = app_settings.HISTORY_EVENTS
    lists, scored = [], []
    for row in rows:
        key = row_shopper(row)
        moment = row["timestamp"].timestamp()
        events = histories.get(key, [])
        end = bisect.bisect_left(times.get(key, []), moment)  # what they had done before the list
        before = events[max(end - limit, 0) : end]
        width = len(row["shown"]["items"])
        visit = {e.item_id for e in before if row["session_key"] and e.session_key == row["session_key"]}
        exclude = (
            visit
            | ({before[-1].item_id} if before else set())
            | {e.item_id for e in before if e.event_type == "purchase"}
        )
        scores = score_shopper(model, before, row["session_key"], exclude) if before else None
        if scores is None:
            lists.append([""] * width)
            scored.append(False)
            continue
        best = [model.item_ids[i] for i, _ in scores.top(width)]
        lists.append(best + [""] * (width - len(best)))
        scored.append(True)
    return lists, scored


def estimate(model: ServingModel, days: int = 14, max_lists: int = 20_000) -> dict[str, Any] | None:
    """The candidate's estimated clicks per "for you" list on the logged traffic (None: no log)."""
    rows = logged_lists(days, max_lists)
    if not rows:
        return None
    lists, scored = candidate_lists(model, rows)
    keep = [i for i, ok in enumerate(scored) if ok]
    if not keep:
        return {"lists": 0, "skipped": len(rows), "days": days}
    kept = [rows[i] for i in keep]
    logged = off_policy.Logged.from_lists(
        [row["shown"]["items"] for row in kept],
        [row["shown"]["p"] for row in kept],
        [[int(k in row["clicked"]) for k in range(len(row["shown"]["items"]))] for row in kept],
    )
    candidate = np.array([lists[i] for i in keep], dtype=object)
    report = off_policy.evaluate(logged, candidate)
    explored = float(np.mean([min(row["shown"]["p"] or [1.0]) < 1.0 for row in kept]))
    return {
        **report.to_dict(),
        "skipped": len(rows) - len(kept),
        "days": days,
        "explored_share": explored,
        "computed_at": timezone.now().isoformat(),
    }


def estimate_version(version: ModelVersion, days: int = 14, max_lists: int = 20_000) -> dict[str, Any] | None:
    """``estimate`` for a stored version, written to ``version.metrics["off_policy"]``."""
    found = estimate(load_version(version), days, max_lists)
    metrics = dict(version.metrics or {})
    metrics["off_policy"] = found
    ModelVersion.objects.filter(pk=version.pk).update(metrics=metrics)
    version.metrics = metrics
    logger.info(
        "Off-policy estimate of version %s on %s logged lists.", version.pk, (found or {}).get("lists", 0)
    )
    return found
