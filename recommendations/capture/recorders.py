"""Recorders: where accepted events go, in bulk from this process or through Celery.

``capture.ingress`` hands each batch of ``EventRecord`` values to the recorder chosen by
``RECOMMENDATIONS["RECORDER"]``. A recorder never makes a page wait for the database: with
``FLUSH_INTERVAL`` > 0 a background ``Batcher`` writes everyone's events together; every
path ends in ``store.store_events``. Nothing is lost when a write fails: it is retried.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import lru_cache

from django.db import connections, transaction

from ..conf import app_settings
from ..extras import require
from ..records import EventRecord
from .store import note_dropped, store_events

logger = logging.getLogger(__name__)


class Batcher:
    """Collects the events of every request of this process; a background thread hands them
    to ``sink`` in bulk, every ``interval`` seconds or as soon as ``size`` are waiting.

    A page then pays for appending to a list, not for an INSERT or a broker round trip, and
    a worker stores hundreds of events per task instead of one. A failed write is retried
    at the next tick (up to ``max_pending`` events are held; beyond that they are dropped
    and counted, see ``note_dropped``). Pending events are written when the process exits.
    """

    def __init__(
        self, sink: Callable[[list[EventRecord]], None], interval: float, size: int, max_pending: int
    ) -> None:
        self.sink, self.interval, self.size, self.max_pending = sink, interval, size, max_pending
        self.lock = threading.Lock()
        self.wakeup = threading.Event()
        self.pending: list[EventRecord] = []
        self.dropped = 0
        self.thread: threading.Thread | None = None
        self.pid: int | None = None

    def add(self, records: Sequence[EventRecord]) -> None:
        with self.lock:
            room = max(self.max_pending - len(self.pending), 0)
            lost = max(len(records) - room, 0)
            self.dropped += lost
            self.pending.extend(records[:room])
            if len(self.pending) >= self.size:
                self.wakeup.set()
        if lost:
            note_dropped(lost, f"the event buffer of process {os.getpid()} is full")
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self.thread is not None and self.thread.is_alive() and self.pid == os.getpid():
            return
        with self.lock:
            if self.thread is not None and self.thread.is_alive() and self.pid == os.getpid():
                return
            if self.pid is None:
                atexit.register(self.flush)
            self.pid = os.getpid()  # after a fork the parent's thread is gone: start ours
            self.thread = threading.Thread(target=self._run, name="recommendations-events", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while True:
            self.wakeup.wait(self.interval)
            self.wakeup.clear()
            self.flush()

    def flush(self) -> None:
        """Write everything pending now (also called at exit and by tests)."""
        with self.lock:
            batch, self.pending = self.pending, []
        if not batch:
            return
        try:
            for start in range(0, len(batch), self.size):
                try:
                    self.sink(batch[start : start + self.size])
                except Exception:
                    logger.exception(
                        "Could not write %d events; they are kept and retried.", len(batch) - start
                    )
                    with self.lock:
                        self.pending[:0] = batch[start:][: self.max_pending]
                    return
        finally:
            if threading.current_thread() is self.thread:
                connections.close_all()  # this thread's own connection: no idle session held between ticks


class BaseRecorder(ABC):
    """Where events go. Subclass, implement ``write``, and name yours in ``RECORDER``.

    With ``FLUSH_INTERVAL`` > 0 events go to a background ``Batcher`` once the transaction
    that produced them commits. With 0 they are written at once: in the caller's transaction
    (so they roll back with it), or after it commits when ``after_commit`` is set.
    """

    after_commit = False

    def __init__(self) -> None:
        self.batcher = Batcher(
            self.write, app_settings.FLUSH_INTERVAL, app_settings.FLUSH_SIZE, app_settings.MAX_PENDING_EVENTS
        )

    @abstractmethod
    def write(self, records: list[EventRecord]) -> None:
        """Persist ``records`` now (all of them, or raise)."""

    def record(self, records: Sequence[EventRecord]) -> None:
        records = list(records)
        if not records:
            return
        if app_settings.FLUSH_INTERVAL > 0:
            transaction.on_commit(lambda: self.batcher.add(records))
        elif self.after_commit:
            transaction.on_commit(lambda: self.write(records))
        else:
            self.write(records)


class DatabaseRecorder(BaseRecorder):
    """Bulk INSERTs from this process."""

    def write(self, records: list[EventRecord]) -> None:
        store_events(records)


class CeleryRecorder(BaseRecorder):
    """One Celery message per batch; a worker bulk-inserts it.

    If the broker cannot take a batch, it is written to the database right here: a dead
    Redis costs one INSERT, not the events.
    """

    after_commit = True

    def __init__(self) -> None:
        require("celery")
        from . import tasks  # Celery itself loads only when this recorder is chosen

        self.tasks = tasks
        super().__init__()

    def write(self, records: list[EventRecord]) -> None:
        try:
            self.tasks.send_events(records)
        except Exception as exc:  # the broker is down or refuses: keep the events anyway
            logger.warning(
                "Event broker unreachable (%s); writing %d events to the database instead.",
                type(exc).__name__,
                len(records),
            )
            store_events(records)


@lru_cache(maxsize=1)
def get_recorder() -> BaseRecorder:
    return app_settings.get_class("RECORDER")()


app_settings.on_reload(get_recorder.cache_clear)
