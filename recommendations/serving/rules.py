"""From ranked candidates to what a shopper sees: exclusions, business rules, diversity.

Every scenario ends here, so the same rules hold on every surface: hidden and excluded
items never appear; pinned items come first; boosts multiply an item's score; only
items the catalogue adapter's live queryset returns (active, in stock) are kept; at most
``MAX_PER_CATEGORY`` per category; a sponsored item may take its labelled slot.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..conf import app_settings
from ..tracking import get_adapter


@dataclass
class Candidate:
    item_id: str
    score: float
    reason: str = ""
    reason_item: str = ""  # history item behind a model reason, named once items are loaded
    sponsored: bool = False


@dataclass
class Recommendation:
    """One recommended item, with why and how strongly."""

    item_id: str
    score: float
    reason: str
    item: Any = None  # the live catalogue object
    sponsored: bool = False
    display: dict[str, Any] = field(default_factory=dict)


def category_matches(category: str, wanted: str) -> bool:
    """``electronics`` matches itself and ``electronics.smartphone`` (codes nest with dots)."""
    return category == wanted or category.startswith(wanted + ".")


def boost_factor(item_id: str, category: str) -> float:
    boosts = app_settings.BOOST
    if not boosts:
        return 1.0
    factor = float(boosts.get(f"item:{item_id}", 1.0))
    for key, value in boosts.items():
        kind, _, wanted = key.partition(":")
        if kind == "category" and category and category_matches(category, wanted):
            factor *= float(value)
    return factor


def finalize(
    scenario: str,
    candidates: Iterable[Candidate],
    *,
    limit: int,
    exclude: set[str] = frozenset(),
    category: str | None = None,
    sponsored: Candidate | None = None,
    window: int | None = None,
) -> list[Recommendation]:
    """The ``limit`` items to show, from candidates best first.

    The best ``window`` candidates (pins included) are loaded in one query of the
    adapter's live queryset; boosts reorder within that window, so a boost lifts an
    item among the strong candidates rather than from the bottom of the catalogue.
    """
    adapter = get_adapter()
    window = window or max(4 * limit, 40)
    hidden = {str(item) for item in app_settings.HIDE_ITEMS} | set(exclude)
    pins = [str(item) for item in app_settings.PIN_ITEMS.get(scenario, [])]
    chosen: list[Candidate] = []
    seen: set[str] = set(hidden)
    for item_id in pins:
        if item_id not in seen:
            seen.add(item_id)
            chosen.append(Candidate(item_id, math.inf, "Featured"))
    n_pinned = len(chosen)
    for candidate in candidates:
        if candidate.item_id not in seen:
            seen.add(candidate.item_id)
            chosen.append(candidate)
            if len(chosen) >= window + n_pinned:
                break
    wanted_sponsor = sponsored if sponsored is not None and sponsored.item_id not in hidden else None
    ids = [c.item_id for c in chosen] + ([wanted_sponsor.item_id] if wanted_sponsor else [])
    items = adapter.items_by_id(ids) if ids else {}

    def category_of(item_id: str) -> str:
        return adapter.category_id(items[item_id])

    live = [c for c in chosen if c.item_id in items]
    if category:
        live = [c for c in live if category_matches(category_of(c.item_id), category)]
    pinned = [c for c in live if c.score == math.inf]
    ranked = [c for c in live if c.score != math.inf]
    if app_settings.BOOST:
        for candidate in ranked:
            candidate.score *= boost_factor(candidate.item_id, category_of(candidate.item_id))
        ranked.sort(key=lambda c: -c.score)
    cap = app_settings.MAX_PER_CATEGORY
    per_category: Counter = Counter()
    result: list[Candidate] = []
    for candidate in pinned + ranked:
        key = category_of(candidate.item_id)
        if cap is not None and key and per_category[key] >= cap and candidate.score != math.inf:
            continue
        per_category[key] += 1
        result.append(candidate)
        if len(result) >= limit:
            break
    if (
        wanted_sponsor
        and wanted_sponsor.item_id in items
        and not any(c.item_id == wanted_sponsor.item_id for c in result)
    ) and (not category or category_matches(category_of(wanted_sponsor.item_id), category)):
        position = min(int(app_settings.SPONSORED.get("POSITION", 2)), len(result))
        result.insert(position, wanted_sponsor)
        result = result[:limit]
    return [
        Recommendation(
            item_id=c.item_id,
            score=c.score if c.score != math.inf else 0.0,
            reason=c.reason,
            item=items[c.item_id],
            sponsored=c.sponsored,
            display=adapter.display(items[c.item_id]),
        )
        for c in result
    ]
