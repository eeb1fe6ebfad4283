"""Load suite: tracked product views under gunicorn for a fixed time; every event must be stored.

The demo shop on the bench PostgreSQL database, served by gunicorn (2 sync workers) with
the Celery recorder and a real Celery worker on Redis. wrk requests product pages for
``SECONDS`` (a browser's User-Agent, so they are tracked; no cookies, so each request is a
new visitor and its session is saved, as for a first visit). Afterwards the worker drains the
queue and the stored view events are counted: they must equal the 2xx responses.

Run ``python -m bench load --output RELIABILITY.md`` (the section lives there).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

from bench import common
from bench.capture import celery_worker, count_events, purge_queue, truncate_events, wait_for_count
from bench.report import Section, Table, strong
from bench.serving import gunicorn_server, warm_up

SECONDS, QUICK_SECONDS = 60, 5
CONNECTIONS = 8
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
LUA = """
local urls = {%(urls)s}
math.randomseed(5)
request = function()
  wrk.headers["User-Agent"] = "%(ua)s"
  return wrk.format("GET", urls[math.random(#urls)])
end
"""


@dataclass
class LoadResult:
    seconds: int
    requests: int
    non_2xx: int
    rate: float
    p50_ms: float
    p99_ms: float
    served: int  # tracked product pages the server answered with 200 (its access log)
    stored: int
    stored_later: int  # two seconds after that: nothing more may arrive
    drain_seconds: float


def run_load(port: int, urls: list[str], seconds: int) -> tuple[int, int, float, float, float]:
    """(requests, non-2xx, requests/s, p50 ms, p99 ms) of one wrk run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA % {"urls": ", ".join(f'"{url}"' for url in urls), "ua": UA})
    output = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{CONNECTIONS}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            script.name,
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    units = {"us": 1e-3, "ms": 1.0, "s": 1000.0}

    def latency(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        return float(match[1]) * units[match[2]] if match else float("nan")

    requests = int(re.search(r"(\d+) requests in", output)[1])
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])
    return requests, int(errors[1]) if errors else 0, rate, latency("50"), latency("99")


def run(quick: bool) -> Section:
    common.setup_django()
    from django.conf import settings
    from django.core.management import call_command
    from django.urls import reverse

    from shop.models import Product

    seconds = QUICK_SECONDS if quick else SECONDS
    call_command("shop_load_demo", "--no-events", stdout=StringIO())
    urls = [
        reverse("shop:product", kwargs={"pk": pk})
        for pk in Product.objects.active().values_list("pk", flat=True)[:500]
    ]
    queue = settings.RECOMMENDATIONS["CELERY_QUEUE"]
    purge_queue(queue)
    truncate_events()
    access_log = Path(tempfile.mkdtemp(prefix="bench-load-")) / "access.log"
    try:
        with celery_worker(queue), gunicorn_server("bench.settings", access_log=access_log) as (port, _):
            warm_up(port, urls[0], b"<html", times=2)  # a script's User-Agent: not tracked
            common.progress(f"wrk: {seconds} s of product views")
            requests, non_2xx, rate, p50, p99 = run_load(port, urls, seconds)
            time.sleep(1)  # requests still in flight when wrk stopped are answered (and tracked)
        # What the server answered, not what wrk counted before it stopped.
        served = sum(
            1
            for line in access_log.read_text().splitlines()
            if line.startswith("200 GET /product/") and UA in line
        )
        started = time.monotonic()
        stored = wait_for_count(served, timeout=180, event_type="view")
        drain = time.monotonic() - started
        common.progress(
            f"{served} tracked pages served, {stored} view events stored ({drain:.1f} s to drain)"
        )
        time.sleep(2)
        result = LoadResult(
            seconds, requests, non_2xx, rate, p50, p99, served, stored, count_events(event_type="view"), drain
        )
    finally:
        truncate_events()
        shutil.rmtree(access_log.parent, ignore_errors=True)
    return section(result, quick)


def section(result: LoadResult, quick: bool) -> Section:
    equal = result.stored == result.served == result.stored_later
    method = (
        f"gunicorn (2 sync workers) serving the demo shop on PostgreSQL with the Celery recorder and a "
        f"real Celery worker on Redis; `wrk -t2 -c{CONNECTIONS} -d{result.seconds}s` on loopback over 500 "
        "product pages with a browser User-Agent and no cookies (every request a first visit: its "
        "session is saved). Pages served are counted in gunicorn's access log (wrk stops counting "
        "before the requests in flight are answered); then the worker drains the queue and the view "
        "events are counted, and counted again two seconds later."
    )
    figures = Table(
        ["figure", "value"],
        [
            ["requests completed within wrk's window", f"{result.requests:,} ({result.non_2xx} non-2xx)"],
            ["sustained rate", f"{result.rate:,.0f} requests/s"],
            ["latency p50 / p99", f"{result.p50_ms:.1f} ms / {result.p99_ms:.1f} ms"],
            ["tracked product pages served (access log, 200)", result.served],
            ["view events stored", f"{result.stored:,} ({result.stored_later:,} two seconds later)"],
            ["queue drained in", f"{result.drain_seconds:.1f} s after the load stopped"],
        ],
    )
    outcome = (
        strong(f"Events stored = events sent: {'yes' if equal else 'NO'}")
        + f" ({result.stored:,} stored for {result.served:,} tracked pages served)."
    )
    return common.section(
        "Load: tracked product views under gunicorn", method, [figures, outcome], quick=quick
    )
