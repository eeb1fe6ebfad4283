"""What every benchmark suite shares: Django set-up on the bench database, the machine, statistics.

``setup_django()`` points Django at ``bench.settings``, creates the PostgreSQL database
``recommendations_bench`` if it is missing and migrates it. ``section()`` makes a suite's
``report.Section`` with the facts every section starts with: the exact command, the date and
the machine. The statistics helpers are the medians and percentiles the sections report.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import numpy as np

from bench import report

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_MODULE = "bench.settings"
_STARTED = time.monotonic()
#: Load average when the benchmarks started (before our own work adds to it).
START_LOAD = "unknown"


def progress(message: str) -> None:
    """A progress line on stderr (BENCHMARKS.md gets the results, the terminal the story)."""
    print(f"[bench +{time.monotonic() - _STARTED:5.0f}s] {message}", file=sys.stderr, flush=True)


def ensure_database(settings_dict: dict) -> bool:
    """Create the PostgreSQL database named in ``settings_dict`` if it is missing; True if created."""
    import psycopg
    from psycopg import sql

    params = {
        "dbname": "postgres",
        "user": settings_dict.get("USER") or "postgres",
        "host": settings_dict.get("HOST") or "127.0.0.1",
        "port": settings_dict.get("PORT") or "5432",
    }
    if settings_dict.get("PASSWORD"):
        params["password"] = settings_dict["PASSWORD"]
    with psycopg.connect(**params, autocommit=True) as conn:
        name = settings_dict["NAME"]
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


@cache
def setup_django() -> None:
    """Django on ``bench.settings``: the bench database created if missing and migrated (once)."""
    global START_LOAD
    START_LOAD = load_average()
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django
    from django.conf import settings

    if ensure_database(settings.DATABASES["default"]):
        progress(f"created database {settings.DATABASES['default']['NAME']}")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def peak_rss_mb() -> float:
    """This process's peak resident size since it started its program, from VmHWM.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries the maximum across ``exec``, so a process
    started by a large one (the bench, holding millions of events) reports its parent's size
    as its own peak. VmHWM belongs to the new program's memory only.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def in_fresh_process(script: str, *args: str, timeout: float, **environment: str) -> dict:
    """Run ``script`` in a new Python process (its memory is its own); its last line of output,
    read as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"a measuring process failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def read_events(path: Path | str, fmt: str):
    """An event file (any importer format) as ml's canonical frame, validated like an import."""
    from recommendations.capture.importers import parse_file
    from recommendations.ml.frames import frame_from_records

    return frame_from_records(parse_file(path, fmt))


def device_part(name: str) -> str:
    """The random part of a benchmark shopper's device id: 22 URL-safe characters, from ``name``."""
    import base64
    import hashlib

    return base64.urlsafe_b64encode(hashlib.sha256(name.encode()).digest()[:16]).decode().rstrip("=")


def device_id(name: str) -> str:
    """The ``X-Device-Id`` the server would have issued to the benchmark shopper ``name``."""
    from recommendations.identity import issue_device_id

    return issue_device_id(device_part(name))


def device_visitor(name: str) -> str:
    """The stored visitor key of that device (``Event.session_key``)."""
    return f"device:{device_part(name)}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def postgres_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0].split()[0]


def load_average() -> str:
    """The 1-minute load average, which says how busy the shared machine was."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def machine_line() -> str:
    """``nproc``, CPU model, Python, Django and PostgreSQL versions, and the load, on one line."""
    import django

    return (
        f"{cpu_count()} CPU ({cpu_model()}), Python {platform.python_version()}, "
        f"Django {django.get_version()}, PostgreSQL {postgres_version()}; "
        f"1-min load average {START_LOAD} at start, {load_average()} at the end"
    )


def command_line() -> str:
    """The command that is running, as typed from the repository root."""
    python = Path(sys.executable)
    try:
        shown = str(python.relative_to(ROOT))
    except ValueError:
        shown = str(python)
    return shlex.join([shown, "-m", "bench", *sys.argv[1:]])


def section(title: str, method: str, blocks: Sequence[report.Block], *, quick: bool) -> report.Section:
    """A suite's section, with the facts of this run: the command, the date, the machine now."""
    return report.Section(
        title=title,
        command=command_line(),
        date=datetime.now(UTC),
        machine=machine_line(),
        method=method,
        quick=quick,
        blocks=list(blocks),
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile (0-100), linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * pct / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def bare_users(n: int, width: int) -> np.ndarray:
    """``n`` random user vectors (float32, a fixed seed) to time the bare bound with."""
    return np.random.default_rng(0).normal(size=(n, width)).astype(np.float32)


def bare_bound(user: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The least any list that scores every item must do, which the serving targets are set
    against: one float32 matrix-vector product over the item table, then the best ten."""
    values = user @ table.T
    best = np.argpartition(values, len(values) - 10)[-10:]
    return best[np.argsort(-values[best])]
