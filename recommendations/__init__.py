"""Behaviour capture, learned recommendations and search suggestions for Django shops.

The public call for code that records an event itself::

    from recommendations import track
    track(request, "cart", product, quantity=2)

The read API every surface uses is ``recommendations.serving.services``; search suggestions
are ``recommendations.suggest.services``. README's "How the app is built" shows the rest.
"""

from typing import Any

__version__ = "0.1.0"


def track(request: Any, event: str, item: Any = None, **context: Any) -> bool:
    """Record an event for the shopper behind ``request``; see ``recommendations.capture.ingress.track``."""
    # Imported on call: this package is imported before Django's apps are ready (and by ml, without Django).
    from .capture.ingress import track as _track

    return _track(request, event, item, **context)


__all__ = ["track"]
