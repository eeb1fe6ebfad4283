"""Recorders used only by the benchmarks (imported by Django once the apps are ready)."""

from __future__ import annotations

from collections.abc import Sequence

from recommendations.capture.recorders import BaseRecorder
from recommendations.records import EventRecord


class NullRecorder(BaseRecorder):
    """Discards every event: what the middleware costs without storing anything."""

    def record(self, records: Sequence[EventRecord]) -> None:
        return None

    def write(self, records: list[EventRecord]) -> None:
        return None
