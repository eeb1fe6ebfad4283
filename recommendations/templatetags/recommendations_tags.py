"""Carousels for shop pages: ``{% load recommendations_tags %}``.

``{% recommended_for_you limit=8 %}``, ``{% similar_items product %}``,
``{% bought_together product %}``, ``{% trending %}``, ``{% recently_viewed %}``; each
takes ``limit`` and ``title`` (and ``category`` for the first and ``trending``) and
renders ``recommendations/carousel.html``, which a shop overrides like any template.
A tag never breaks a page: an error is logged and the carousel is left out. Each shown
carousel records one ``impression`` event (its items, the chance each had of its place,
its experiment arm), and its links record a ``click`` with the list's id and the item's
place (clicks.py), so click-through rate can be computed per list, version and arm.
"""

from __future__ import annotations

import logging
from typing import Any

from django import template
from django.templatetags.static import static
from django.urls import reverse
from django.utils.html import format_html

from ..capture.clicks import click_url
from ..capture.ingress import impression_fields, track
from ..serving import services

logger = logging.getLogger(__name__)
register = template.Library()

TEMPLATE = "recommendations/carousel.html"


def carousel(
    context: template.Context,
    scenario: str,
    title: str,
    *,
    item: Any = None,
    limit: Any = None,
    category=None,
) -> dict[str, Any]:
    request = context.get("request")
    try:
        recommendations = services.recommend(
            scenario, request, item=item, limit=limit, category=category or None
        )
        entries = [
            {
                "recommendation": rec,
                "item": rec.item,
                "display": rec.display,
                "url": click_url(
                    rec.item_id,
                    scenario,
                    recommendations.model_version,
                    rec.display.get("url") or "/",
                    list_id=recommendations.list_id,
                    position=position,
                    experiment_id=recommendations.experiment_id,
                    arm=recommendations.arm,
                ),
            }
            for position, rec in enumerate(recommendations)
        ]
    except Exception:
        logger.exception("The %r carousel could not be built; the page is shown without it.", scenario)
        recommendations, entries = None, []
    if entries and request is not None:
        # The item a list is about (similar, bought together) and how many items it showed.
        about = item if scenario in ("similar", "bought_together") else None
        track(request, "impression", about, **impression_fields(recommendations))
    return {
        "title": title,
        "scenario": scenario,
        "entries": entries,
        "recommendations": recommendations,
        "request": request,
    }


@register.inclusion_tag(TEMPLATE, takes_context=True)
def recommended_for_you(context, limit=None, title="Recommended for you", category=None):
    return carousel(context, "for_you", title, limit=limit, category=category)


@register.inclusion_tag(TEMPLATE, takes_context=True)
def similar_items(context, item, limit=None, title="Similar items"):
    return carousel(context, "similar", title, item=item, limit=limit)


@register.inclusion_tag(TEMPLATE, takes_context=True)
def bought_together(context, item, limit=None, title="Frequently bought together"):
    return carousel(context, "bought_together", title, item=item, limit=limit)


@register.inclusion_tag(TEMPLATE, takes_context=True)
def trending(context, limit=None, title="Trending now", category=None):
    return carousel(context, "trending", title, limit=limit, category=category)


@register.inclusion_tag(TEMPLATE, takes_context=True)
def recently_viewed(context, limit=None, title="Recently viewed", exclude=None):
    return carousel(context, "recently_viewed", title, item=exclude, limit=limit)


@register.simple_tag
def search_suggestions_attrs():
    """The attribute that makes a search input an autocomplete::

        <input type="search" name="q" {% search_suggestions_attrs %}>
        {% search_suggestions_script %}   (once per page)

    The input must be in the ``<form>`` that searches; the app's URLs under ``api/`` are needed.
    """
    return format_html('data-suggest-url="{}"', reverse("recommendations-api:suggest"))


@register.simple_tag
def search_suggestions_script():
    """The small, dependency-free script behind ``search_suggestions_attrs``."""
    return format_html('<script src="{}" defer></script>', static("recommendations/autocomplete.js"))
