"""Template filters of the shop."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.template.defaultfilters import floatformat

register = template.Library()


@register.filter
def money(value: Decimal | float | int | None) -> str:
    """``$1,234.50``: two decimals and thousands separators, the way every price is shown."""
    if value is None or value == "":
        return ""
    return f"${floatformat(value, '2g')}"
