"""Optional dependencies stay optional: a missing extra says exactly what to install.

Plain Python, no Django: ``ml`` imports it, and ``ml`` runs where Django is not installed
(a GPU machine, a notebook).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

PACKAGE = "django-shop-recommendations"

#: extra name -> the modules it brings
EXTRAS = {
    "ml": ("keras", "pandas", "numpy", "pyarrow"),
    "api": ("rest_framework", "drf_spectacular"),
    "celery": ("celery", "redis"),
    "large": ("faiss",),
}


class MissingExtra(ImportError):
    """An optional feature was used without its extra installed."""

    def __init__(self, extra: str, module: str) -> None:
        self.extra = extra
        self.module = module
        super().__init__(
            f"This feature needs the '{extra}' extra ({module} is not installed). "
            f'Install it with: pip install "{PACKAGE}[{extra}]"'
        )


def require(extra: str, module: str | None = None) -> ModuleType:
    """Import ``module`` (by default the extra's first module) or raise ``MissingExtra``."""
    name = module or EXTRAS[extra][0]
    try:
        if name == "keras" and name not in sys.modules:
            with _without_startup_notes():
                return importlib.import_module(name)
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingExtra(extra, name) from exc


#: What TensorFlow's native code writes to stderr on every start, twice, before its logging
#: is set up (so TF_CPP_MIN_LOG_LEVEL cannot silence it): notes, not problems.
STARTUP_NOTES = (
    "WARNING: All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized",
    "To enable the following instructions",
)


@contextmanager
def _without_startup_notes() -> Iterator[None]:
    """Run an import with file descriptor 2 captured; everything it wrote but the start-up
    notes is written back to stderr afterwards (a real warning or error still shows)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (embedded, pythonw): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                if not any(note in line for note in STARTUP_NOTES)
            ]
            if kept:
                sys.stderr.write("".join(kept))


class _LazyModule:
    """A module imported on first use (what serving needs of ``ml`` must not pull in pandas)."""

    def __init__(self, extra: str, name: str) -> None:
        self._extra, self._name = extra, name

    def __getattr__(self, attribute: str):
        return getattr(require(self._extra, self._name), attribute)


def lazy(extra: str, module: str) -> ModuleType:
    """``require`` deferred to the first attribute access."""
    return _LazyModule(extra, module)  # type: ignore[return-value]


def is_installed(extra: str) -> bool:
    """Whether the extra's packages are importable, without importing them (no TensorFlow
    start-up cost in a web process that only runs system checks)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in EXTRAS[extra])
    except (ImportError, ValueError):
        return False
