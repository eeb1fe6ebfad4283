"""``EventMiddleware``: product views, category views and searches, with no view changes.

Pages are matched by URL name (``RECOMMENDATIONS["TRACKED_URLS"]``). The middleware also
gives each request an event buffer for ``track()`` calls and writes it once, when the
response is closed, i.e. after the page has gone to the shopper, and sets the signed cookie
of a new anonymous visitor (``identity.VISITOR_COOKIE``: no session row is written). Any error in here is
logged and the response is returned untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from ..conf import app_settings
from ..identity import VISITOR_COOKIE, VISITOR_COOKIE_AGE, expect_visitor_cookie, new_visitor_cookie
from . import ingress
from .rules import is_trackable

logger = logging.getLogger(__name__)
#: A search URL with this GET parameter came from a picked suggestion (the autocomplete adds it).
SUGGESTED_PARAM = "suggested"


class EventMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            ingress.begin(request)
            expect_visitor_cookie(request)
        except Exception:
            logger.exception("Could not start event tracking for this request.")
        response = self.get_response(request)
        try:
            self.track_page(request, response)
            set_visitor_cookie(request, response)
            closers = getattr(response, "_resource_closers", None)
            if closers is not None:
                closers.append(lambda: ingress.flush(request))
            else:
                ingress.flush(request)
        except Exception:
            logger.exception("Event tracking failed; the page is returned unchanged.")
        return response

    def track_page(self, request: HttpRequest, response: HttpResponse) -> None:
        match = getattr(request, "resolver_match", None)
        if match is None or request.method != "GET" or not 200 <= response.status_code < 300:
            return
        rule = app_settings.TRACKED_URLS.get(match.view_name)
        if rule is None or not is_trackable(request):
            return
        values: dict[str, Any] = {}
        for field in ("item", "category"):
            if rule.get(f"{field}_kwarg"):
                values[field] = match.kwargs.get(rule[f"{field}_kwarg"])
            elif rule.get(f"{field}_param"):
                values[field] = request.GET.get(rule[f"{field}_param"], "")
        if rule.get("query_param"):
            values["query"] = request.GET.get(rule["query_param"], "").strip()
            if not values["query"]:
                return
            values["result_count"] = result_count(response)
            if request.GET.get(SUGGESTED_PARAM):  # the shopper picked a suggestion
                values["scenario"] = "suggestion"
        if rule["event"] == "category_view" and not values.get("category"):
            return
        ingress.track(request, rule["event"], **values)


def set_visitor_cookie(request: HttpRequest, response: HttpResponse) -> None:
    """Give a new anonymous visitor their id: a signed cookie, no database write."""
    value = new_visitor_cookie(request)
    if value:
        response.set_cookie(
            VISITOR_COOKIE,
            value,
            max_age=VISITOR_COOKIE_AGE,
            httponly=True,
            samesite="Lax",
            secure=request.is_secure() or settings.SESSION_COOKIE_SECURE,
        )


def result_count(response: HttpResponse) -> int | None:
    """Number of results a list page found, read from its template context."""
    context = getattr(response, "context_data", None) or {}
    if context.get("paginator") is not None:
        return context["paginator"].count
    if context.get("object_list") is not None:
        return len(context["object_list"])
    return None
