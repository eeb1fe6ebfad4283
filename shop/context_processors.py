"""Template context every page needs: the cart badge and the category navigation."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from .cart import Cart
from .models import Category


def shop(request: HttpRequest) -> dict[str, Any]:
    """``cart_count`` (units in the cart) and ``nav_categories`` (top-level, lazy queryset)."""
    session = getattr(request, "session", None)
    return {
        "cart_count": Cart(session).count if session is not None else 0,
        "nav_categories": Category.objects.filter(parent__isnull=True),
    }
