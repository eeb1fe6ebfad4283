"""Deprecated path: use ``recommendations.capture.recorders`` (in ``RECORDER`` too)."""

import warnings

from .capture.recorders import BaseRecorder, CeleryRecorder, DatabaseRecorder

warnings.warn(
    "recommendations.recorders moved to recommendations.capture.recorders; "
    "update RECOMMENDATIONS['RECORDER'] to 'recommendations.capture.recorders.<Name>'.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["BaseRecorder", "CeleryRecorder", "DatabaseRecorder"]
