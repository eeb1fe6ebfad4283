"""A small shop whose shoppers browse one category per visit, and a model trained on it.

Used by the serving, API and admin tests: the model is trained once per test process
(a few seconds) and its files are written into each test's own storage.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from recommendations import artifacts
from recommendations.lifecycle import registry
from recommendations.models import Event, ModelVersion
from shop.models import Product
from tests import factories

CATEGORIES = {
    "electronics.smartphone": "Smartphone",
    "appliances.kitchen.kettle": "Kettle",
    "furniture.living_room.sofa": "Sofa",
}
PER_CATEGORY = 10
#: item id -> category code; ids are 5000 + 100 * category + position.
ITEMS = {
    str(5000 + 100 * c + i): code for c, code in enumerate(CATEGORIES) for i in range(1, PER_CATEGORY + 1)
}
FAST_MODEL = {
    "epochs": 6,
    "scalar_epochs": 1,
    "embedding_dim": 16,
    "hidden_units": [32],
    "attention_units": 8,
    "batch_size": 64,
    "min_steps_per_epoch": 10,
    "n_neighbours": 10,
    "random_state": 3,
}


def items_of(code: str) -> list[str]:
    return [item for item, category in ITEMS.items() if category == code]


def session_rows(n_sessions: int = 240, seed: int = 1) -> list[dict]:
    """Each visit views five items of one category (canonical event fields)."""
    import random

    rng = random.Random(seed)
    start = timezone.now() - timedelta(days=5)
    codes = list(CATEGORIES)
    rows = []
    for s in range(n_sessions):
        code = codes[s % len(codes)]
        for j, item in enumerate(rng.sample(items_of(code), 5)):
            rows.append(
                {
                    "timestamp": start + timedelta(minutes=20 * s + j),
                    "session": f"visit-{s}",
                    "event": "view",
                    "item": item,
                    "category": code,
                }
            )
    return rows


@functools.cache
def trained_bundle() -> artifacts.Bundle:
    import pandas as pd

    from recommendations.ml.frames import normalize_frame
    from recommendations.ml.preprocessing import Preprocessor
    from recommendations.ml.training import NextItemRecommender

    frame = normalize_frame(pd.DataFrame(session_rows()))
    preprocessor = Preprocessor()
    train = preprocessor.fit_transform(frame)
    model = NextItemRecommender(**FAST_MODEL).fit_preprocessed(train, preprocessor)
    return registry.bundle_of(model, preprocessor)


def make_catalogue() -> dict[str, Product]:
    """The products of ``ITEMS`` (in stock, active), by id."""
    products = {}
    for item, code in ITEMS.items():
        category = factories.category(code, CATEGORIES[code])
        products[item] = factories.product(
            id=int(item),
            name=f"{CATEGORIES[code]} {item}",
            category=category,
            price=Decimal("10.00") + int(item) % 100,
        )
    return products


def store_history(rows: list[dict] | None = None) -> None:
    """The training sessions as stored events (for co-views and trending)."""
    rows = session_rows() if rows is None else rows
    Event.objects.bulk_create(
        Event(
            timestamp=row["timestamp"],
            session_key=row["session"],
            event_type=row["event"],
            item_id=row["item"],
            category_id=row["category"],
        )
        for row in rows
    )


def install_version(**fields) -> ModelVersion:
    """A ready version with the trained files, activated (the test's MEDIA_ROOT holds them)."""
    version = ModelVersion.objects.create(status=ModelVersion.Status.READY, running=None, **fields)
    folder, size = artifacts.save_bundle(version.pk, trained_bundle())
    ModelVersion.objects.filter(pk=version.pk).update(artifact_path=folder, artifact_size=size)
    version.refresh_from_db()
    return registry.activate(version)
