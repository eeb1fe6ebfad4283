"""Tracked links: a click on a recommendation is recorded, then the shopper goes on.

A carousel link points at ``/recommendations/click/<token>/``; the token is signed
(``django.core.signing``), so it names only the item, list (its scenario, id and the
item's place), model version, experiment arm and target the server itself wrote: it cannot be turned into an open redirect, and a forged or damaged
token is refused with a 400. The target must also be a URL of this site. Each rendered link
carries its own random id, which becomes the click's event key: opening the same link ten
times is one click. A link older than ``CLICK_MAX_AGE_SECONDS`` still takes the shopper
where it points but records nothing (a replayed or long-cached link).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from django.core import signing
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ..conf import app_settings
from .ingress import track

logger = logging.getLogger(__name__)
SALT = "recommendations.click"


def click_url(
    item_id: str,
    scenario: str,
    model_version: int | None,
    target: str,
    *,
    list_id: str = "",
    position: int | None = None,
    experiment_id: int | None = None,
    arm: str = "",
) -> str:
    """The tracked link of one shown item: its list (``list_id``, the impression's), its
    0-based ``position`` there, and the experiment arm that made the list."""
    data = {"i": item_id, "s": scenario, "v": model_version, "t": target, "n": secrets.token_urlsafe(9)}
    extra = {"l": list_id, "p": position, "e": experiment_id, "a": arm}
    data.update({key: value for key, value in extra.items() if value not in (None, "")})
    token = signing.dumps(data, salt=SALT, compress=True)
    return reverse("recommendations:click", kwargs={"token": token})


def read_token(token: str, max_age: float | None = None) -> dict[str, Any]:
    """The payload of a click token (``signing.BadSignature`` when it was not ours,
    ``signing.SignatureExpired`` when older than ``max_age`` seconds)."""
    data = signing.loads(token, salt=SALT, max_age=max_age)
    if not isinstance(data, dict) or not isinstance(data.get("t"), str) or not isinstance(data.get("i"), str):
        raise signing.BadSignature("malformed click token")
    return data


@never_cache
@require_GET
def click(request: HttpRequest, token: str) -> HttpResponse:
    fresh = True
    try:
        try:
            data = read_token(token, max_age=app_settings.CLICK_MAX_AGE_SECONDS)
        except signing.SignatureExpired:
            data, fresh = read_token(token), False
    except signing.BadSignature:
        return HttpResponseBadRequest(
            "This recommendation link is broken or was changed.", content_type="text/plain"
        )
    target = data["t"]
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "/"
    if fresh:
        nonce = data.get("n")
        track(
            request,
            "click",
            data["i"],
            scenario=str(data.get("s") or ""),
            model_version=data.get("v"),
            list_id=data.get("l") or "",
            position=data.get("p"),
            experiment_id=data.get("e"),
            arm=data.get("a") or "",
            client_event_id=f"click:{nonce}" if isinstance(nonce, str) and nonce.isprintable() else None,
        )
    return HttpResponseRedirect(target)
