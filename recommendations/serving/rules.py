"""From ranked candidates to what a shopper sees: exclusions, business rules, diversity.

Every scenario ends here, so the same rules hold on every surface: hidden and excluded
items never appear; pinned items come first; boosts lift an item's place; only
items the catalogue adapter's live queryset returns (active, in stock) are kept; at most
``MAX_PER_CATEGORY`` per category in lists of the whole shop (for you, trending); a
sponsored item may take its labelled slot.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ..adapters import get_adapter
from ..conf import app_settings
from .catalogue import live_displays, live_items

#: Lists of the whole shop, kept diverse by ``MAX_PER_CATEGORY``; a list about one item
#: (similar, bought together) shows what its evidence says, one category or many.
DIVERSE_SCENARIOS = frozenset({"for_you", "trending"})


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
    viewed_at: datetime | None = None  # recently viewed: when the shopper last viewed it
    fixed: bool = False  # pinned or sponsored: its place is never explored
    explored: bool = False  # shown in an explored place (serving/exploration.py)


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

    Candidates are loaded from the adapter's live queryset a few at a time (first about
    twice the limit, then more only while the rules leave too few), up to ``window`` of
    them. Boosts reorder what was loaded, so a boost lifts an item among the strong
    candidates rather than from the bottom of the catalogue: a factor f divides the item's
    place (its rank among them), so it means the same for a sharp model as for a flat one.
    """
    adapter = get_adapter()
    window = window or max(4 * limit, 40)
    hidden = {str(item) for item in app_settings.HIDE_ITEMS} | set(exclude)
    seen: set[str] = set(hidden)
    chosen: list[Candidate] = []
    for item_id in (str(item) for item in app_settings.PIN_ITEMS.get(scenario, [])):
        if item_id not in seen:
            seen.add(item_id)
            chosen.append(Candidate(item_id, math.inf, "Featured"))
    wanted_sponsor = sponsored if sponsored is not None and sponsored.item_id not in hidden else None
    items: dict[str, Any] = {}
    remaining = iter(candidates)
    size, taken = min(window, 2 * limit + 4), 0
    while True:
        exhausted = True
        for candidate in remaining:
            if candidate.item_id in seen:
                continue
            seen.add(candidate.item_id)
            chosen.append(candidate)
            taken += 1
            if taken >= size:
                exhausted = False
                break
        missing = [c.item_id for c in chosen if c.item_id not in items]
        if wanted_sponsor is not None and wanted_sponsor.item_id not in items:
            missing.append(wanted_sponsor.item_id)
        if missing:
            items.update(live_items.get(missing))  # kept per process: no query once warm
        result = _arrange(chosen, items, adapter, limit, category, scenario in DIVERSE_SCENARIOS)
        if len(result) >= limit or exhausted or taken >= window:
            break
        size = min(window, 2 * size)
    if (
        wanted_sponsor
        and wanted_sponsor.item_id in items
        and not any(c.item_id == wanted_sponsor.item_id for c in result)
    ) and (not category or category_matches(adapter.category_id(items[wanted_sponsor.item_id]), category)):
        position = min(int(app_settings.SPONSORED.get("POSITION", 2)), len(result))
        result.insert(position, wanted_sponsor)
        result = result[:limit]
    shown = live_displays.get({c.item_id: items[c.item_id] for c in result})  # kept like the items
    return [
        Recommendation(
            item_id=c.item_id,
            score=c.score if c.score != math.inf else 0.0,
            reason=c.reason,
            item=items[c.item_id],
            sponsored=c.sponsored,
            display=shown[c.item_id],
            fixed=c.sponsored or c.score == math.inf,
        )
        for c in result
    ]


def _arrange(
    chosen: list[Candidate],
    items: dict[str, Any],
    adapter: Any,
    limit: int,
    category: str | None,
    diverse: bool = True,
) -> list[Candidate]:
    """Live candidates in order: pins first, then by (boosted) score, at most N per category
    when the list is ``diverse``."""
    categories = {c.item_id: adapter.category_id(items[c.item_id]) for c in chosen if c.item_id in items}
    live = [c for c in chosen if c.item_id in categories]
    if category:
        live = [c for c in live if category_matches(categories[c.item_id], category)]
    pinned = [c for c in live if c.score == math.inf]
    ranked = [c for c in live if c.score != math.inf]
    if app_settings.BOOST:
        factors = [boost_factor(c.item_id, categories[c.item_id]) for c in ranked]
        places = sorted(range(len(ranked)), key=lambda i: (i + 1) / factors[i])  # stable: ties keep order
        ranked = [replace(ranked[i], score=ranked[i].score * factors[i]) for i in places]
    cap = app_settings.MAX_PER_CATEGORY if diverse else None
    per_category: Counter = Counter()
    result: list[Candidate] = []
    for candidate in pinned + ranked:
        key = categories[candidate.item_id]
        if cap is not None and key and per_category[key] >= cap and candidate.score != math.inf:
            continue
        per_category[key] += 1
        result.append(candidate)
        if len(result) >= limit:
            break
    return result
