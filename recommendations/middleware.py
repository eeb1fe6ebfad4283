"""Deprecated path: use ``recommendations.capture.middleware.EventMiddleware``."""

import warnings

from .capture.middleware import EventMiddleware

warnings.warn(
    "recommendations.middleware moved to recommendations.capture.middleware; "
    "update MIDDLEWARE to 'recommendations.capture.middleware.EventMiddleware'.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["EventMiddleware"]
