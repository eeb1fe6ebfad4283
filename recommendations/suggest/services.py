"""Suggestions for a shopper: index candidates re-ranked by who is typing.

score = log(popularity) + AFFINITY_WEIGHT x (how much the query's categories are the
shopper's) + OWN_SEARCH_WEIGHT x (they searched it before). The shopper's category
affinity blends what they viewed, carted and bought (recent first) with the model's
probabilities for them summed by category, when a model is active. A shopper's profile is
computed once per new event of theirs and kept in the cache, so typing letter after
letter costs an index lookup and a few dictionary reads.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpRequest

from ..adapters import get_adapter
from ..conf import app_settings
from ..identity import Shopper, as_shopper
from ..models import Event, EventType
from ..serving.history import activity, generation
from ..serving.loader import active_model
from ..signals import shopper_forgotten
from .loader import current_index
from .text import MAX_QUERY_LENGTH, has_control_characters, normalize

logger = logging.getLogger(__name__)

#: The public read API: template tags, the REST API, the admin and a shop's own views call these.
__all__ = ["Suggestion", "related", "rerank_results", "suggest"]
PROFILE_PREFIX = "recommendations:suggest-profile:"
PROFILE_SECONDS = 600
OWN_SEARCHES = 20


@dataclass(frozen=True)
class Suggestion:
    text: str
    score: float
    reason: str  # popular, your earlier search, matches what you browse, did you mean
    corrected: bool = False


@dataclass(frozen=True)
class Profile:
    affinity: dict[str, float]  # category (and its parents) -> weight, the largest 1.0
    searched: frozenset[str]  # normalized queries they searched


def _with_parents(weights: dict[str, float]) -> dict[str, float]:
    """``electronics.audio.headphone`` also counts for ``electronics.audio`` and ``electronics``."""
    spread: dict[str, float] = {}
    for category, weight in weights.items():
        parts = category.split(".")
        for depth in range(len(parts), 0, -1):
            name = ".".join(parts[:depth])
            spread[name] = spread.get(name, 0.0) + weight * (0.5 ** (len(parts) - depth))
    top = max(spread.values(), default=0.0)
    return {name: value / top for name, value in spread.items()} if top else {}


def _model_categories(shopper: Shopper, events: list) -> dict[str, float]:
    """The active model's probability mass for this shopper, summed by category."""
    model = active_model()
    if model is None or not events:
        return {}
    try:
        import numpy as np  # the ml extra: only once a model is active

        from ..serving.scoring import score_shopper

        scores = score_shopper(model, events, shopper.visitor)
        if scores is None:
            return {}
        mass = scores.category_mass(model.item_features.category)
        categories = model.category_list
        best = np.argsort(-mass)[:10]
        return {categories[c]: float(mass[c]) for c in best if c and mass[c] > 0}
    except Exception:
        logger.exception("The model could not personalize suggestions; history alone is used.")
        return {}


def _profile_key(shopper_key: str) -> str:
    return PROFILE_PREFIX + hashlib.sha256(shopper_key.encode()).hexdigest()


def profile_key(shopper: Shopper) -> str:
    """Cache key of the shopper's profile (an opaque hash of their key)."""
    return _profile_key(shopper.key)


@receiver(shopper_forgotten, dispatch_uid="recommendations.suggest.forget_profiles")
def forget_profiles(sender: Any, shoppers: Sequence[Shopper], **kwargs: Any) -> None:
    """Erasure: drop the cached profiles of every key of these shoppers."""
    cache.delete_many([_profile_key(key) for shopper in shoppers for key in shopper.keys])


def profile(shopper: Shopper) -> Profile:
    """What the shopper is into, cached until their next event (the entry holds the event
    generation it was computed at)."""
    if not shopper.is_known:
        return Profile({}, frozenset())
    key, current = profile_key(shopper), generation(shopper)
    cached = cache.get(key)
    if cached is not None and cached[0] == current:
        return cached[1]
    events = activity(shopper).recent
    # Page views recorded by URL carry no category: the catalogue names it (one query).
    unknown = {event.item_id for event in events if not event.category and event.item_id}
    adapter = get_adapter()
    found = adapter.items_by_id(unknown, available_only=False) if unknown else {}
    categories = {item_id: adapter.category_id(item) for item_id, item in found.items()}
    weights: dict[str, float] = {}
    for rank, event in enumerate(reversed(events)):
        category = event.category or categories.get(event.item_id, "")
        if category:
            weights[category] = weights.get(category, 0.0) + 0.9**rank
    total = sum(weights.values())
    history = {category: weight / total for category, weight in weights.items()} if total else {}
    from_model = _model_categories(shopper, events)
    blended = {c: history.get(c, 0.0) + from_model.get(c, 0.0) for c in set(history) | set(from_model)}
    searches = Event.objects.filter(event_type=EventType.SEARCH)
    if shopper.user_id is not None:
        searches = searches.filter(user_id=shopper.user_id)
    else:
        searches = searches.filter(session_key=shopper.visitor, user__isnull=True)
    searched = frozenset(
        normalize(text)
        for text in searches.order_by("-timestamp").values_list("query", flat=True)[:OWN_SEARCHES]
    )
    result = Profile(_with_parents(blended), searched)
    cache.set(key, (current, result), PROFILE_SECONDS)
    return result


def clean_query(text: Any) -> str:
    """The query as typed, checked: ValueError says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("q is required: the text typed so far")
    if len(text) > MAX_QUERY_LENGTH:
        raise ValueError(f"q must be at most {MAX_QUERY_LENGTH} characters")
    if has_control_characters(text):
        raise ValueError("q must not contain control characters")
    return text


def rank(matches: Sequence[Any], shopper_profile: Profile, limit: int) -> list[Suggestion]:
    """Re-rank index matches for one shopper (also what the benchmark measures)."""
    settings = app_settings.SUGGEST
    affinity_weight, own_weight = float(settings["AFFINITY_WEIGHT"]), float(settings["OWN_SEARCH_WEIGHT"])
    affinity, searched = shopper_profile.affinity, shopper_profile.searched
    scored = []
    for match in matches:
        entry = match.entry
        fit = sum(share * affinity.get(category, 0.0) for category, share in entry.categories.items())
        own = entry.key in searched
        score = math.log(match.score + 1e-9) + affinity_weight * fit + own_weight * own
        if match.corrected:
            reason = "did you mean"
        elif own:
            reason = "your earlier search"
        elif fit > 0.3:
            reason = "matches what you browse"
        else:
            reason = "popular" if entry.source == "log" else "in the catalogue"
        scored.append((score, entry.text, Suggestion(entry.text, round(score, 4), reason, match.corrected)))
    scored.sort(key=lambda row: (-row[0], row[1]))
    return [suggestion for _, _, suggestion in scored[:limit]]


def suggest(who: HttpRequest | Shopper | None, text: str, limit: int | None = None) -> list[Suggestion]:
    """Completions of ``text`` for the shopper behind ``who``, best first."""
    text = clean_query(text)
    limit = limit or int(app_settings.SUGGEST["LIMIT"])
    matches = current_index().lookup(text, int(app_settings.SUGGEST["CANDIDATES"]))
    shopper = as_shopper(who)
    return rank(matches, profile(shopper) if matches else Profile({}, frozenset()), limit)


def related(text: str, limit: int | None = None) -> list[Suggestion]:
    """Searches that shoppers made next after ``text``, in the same visit."""
    text = clean_query(text)
    limit = limit or int(app_settings.SUGGEST["LIMIT"])
    index = current_index()
    entry = index.get(text)
    if entry is None:
        return []
    result = []
    for key in entry.related:
        other = index.get(key)
        if other is not None:
            result.append(Suggestion(other.text, round(other.score, 4), "searched next"))
    return result[:limit]


def rerank_results(
    who: HttpRequest | Shopper | None, items: Sequence[Any], text_scores: Sequence[float]
) -> list:
    """Search results in the order of a blend of text match and this shopper's model score.

    Without a model (or a history it knows) the order is the text match alone. The text
    score is scaled to [0, 1] (equal matches stay equal) and the model's score becomes a rank
    in [0, 1], so neither scale dominates; ``RERANK_WEIGHT`` is the model's share.
    """
    weight = float(app_settings.SUGGEST["RERANK_WEIGHT"])
    order = sorted(range(len(items)), key=lambda i: -text_scores[i])
    shopper = as_shopper(who)
    model = active_model()
    if weight <= 0 or model is None or not shopper.is_known or len(items) < 2:
        return [items[i] for i in order]
    events = activity(shopper).recent
    from ..serving.scoring import score_shopper  # numpy: only once a model is active

    scores = score_shopper(model, events, shopper.visitor)
    if scores is None:
        return [items[i] for i in order]
    adapter = get_adapter()
    personal = [
        scores.logit(model.index_of[item_id]) if item_id in model.index_of else float("-inf")
        for item_id in (adapter.item_id(item) for item in items)
    ]
    n = len(items)
    best_text = max(max(text_scores), 1e-9)
    text_rank = {i: max(text_scores[i], 0.0) / best_text for i in range(n)}  # ties stay ties
    by_model = sorted(range(n), key=lambda i: -personal[i])
    model_rank = {
        i: (1.0 - position / n) if personal[i] > float("-inf") else 0.0 for position, i in enumerate(by_model)
    }
    blended = sorted(range(n), key=lambda i: -((1 - weight) * text_rank[i] + weight * model_rank[i]))
    return [items[i] for i in blended]
