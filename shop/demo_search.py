"""A simulated search log for the demo, from real query wording (WANDS) and the demo catalogue.

See ``demo_data/README.md`` for what is real and what is simulated. Events are imported
through the app's importer (``import_records``) like any past log, marked
``demo:simulated``, with ids derived from their content, so loading twice adds nothing.
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.db.models import Count

from recommendations.capture.importers import import_records
from recommendations.records import EventRecord

from .models import Category, Product
from .search import search_products

QUERIES_FILE = Path(__file__).resolve().parent / "demo_data" / "wands_queries_slice.csv"
#: The REES46 slice covers 2019-10-01 00:00 to 02:40 UTC: the simulated searches happen then too.
START = datetime(2019, 10, 1, tzinfo=UTC)
WINDOW_SECONDS = 160 * 60
SOURCE = "demo:simulated"


def _queries() -> list[tuple[str, str]]:
    """(query, demo category slug or "") from WANDS, then the demo's busiest category names."""
    with QUERIES_FILE.open(newline="") as handle:
        queries = [(row["query"], row["demo_category"]) for row in csv.DictReader(handle)]
    busiest = Category.objects.exclude(parent=None).annotate(n=Count("products")).order_by("-n", "slug")[:30]
    return queries + [(category.name.lower(), category.slug) for category in busiest]


def _id(*parts: object) -> str:
    return "demo-search-" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:40]


def simulated_events(seed: int = 7) -> Iterator[EventRecord]:
    rng = random.Random(seed)
    queries = _queries()
    products: dict[str, list[int]] = {}
    for slug, pk in Product.objects.active().values_list("category__slug", "pk"):
        products.setdefault(slug, []).append(pk)
    visit = 0
    for rank, (query, slug) in enumerate(queries, start=1):
        searches = max(1, int(40 / rank**0.6 * rng.uniform(0.5, 1.5)))  # Zipf-like popularity
        results = search_products(query).count()
        for _ in range(searches):
            visit += 1
            session = f"demo-search-visit-{visit}"
            moment = START + timedelta(seconds=rng.uniform(0, WINDOW_SECONDS))
            yield EventRecord(
                event_type="search",
                timestamp=moment,
                session_key=session,
                query=query,
                result_count=results,
                source=SOURCE,
                client_event_id=_id(session, "search", query),
            )
            if results and slug in products and rng.random() < 0.75:
                item = rng.choice(products[slug])
                yield EventRecord(
                    event_type="view",
                    timestamp=moment + timedelta(seconds=rng.uniform(5, 60)),
                    session_key=session,
                    item_id=str(item),
                    category_id=slug,
                    source=SOURCE,
                    client_event_id=_id(session, "view", item),
                )
            if rng.random() < 0.3:  # a second search in the same visit: a related search
                other, _ = queries[min(len(queries) - 1, max(0, rank - 1 + rng.randint(-3, 3)))]
                if other != query:
                    yield EventRecord(
                        event_type="search",
                        timestamp=moment + timedelta(seconds=rng.uniform(60, 300)),
                        session_key=session,
                        query=other,
                        result_count=search_products(other).count(),
                        source=SOURCE,
                        client_event_id=_id(session, "search-2", other),
                    )


def load(stdout=None) -> int:
    records = list(simulated_events())
    import_records(records)
    if stdout is not None:
        stdout.write(f"Simulated search log: {len(records):,} events (queries from WANDS, counts simulated).")
    return len(records)
