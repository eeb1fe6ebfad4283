"""``manage.py shop_load_demo``: the demo catalogue and events from the bundled REES46 slice.

The catalogue is derived from the events file itself (one product per ``product_id`` that has a
``category_code``), deterministically, so every run and every machine builds the same shop.
The events are then imported through the recommendations app's public command.
"""

from __future__ import annotations

import csv
import gzip
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from shop import demo_search
from shop.models import Category, Order, Product

DATA_FILE = Path(__file__).resolve().parents[2] / "demo_data" / "rees46_oct2019_slice.csv.gz"
DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-shopper"  # noqa: S105  (a documented demo account, not a secret)

DESCRIPTIONS = (
    "{brand} {kind} from our {department} range. {detail}",
    "{kind} by {brand}, picked for everyday use. {detail}",
    "The {brand} {kind}: a popular choice in {department_lower}. {detail}",
)
DETAILS = (
    "Ships in 1-2 working days.",
    "Two-year warranty included.",
    "Free returns within 30 days.",
    "Rated well by shoppers who bought it.",
)


@dataclass
class ProductRow:
    """The latest values seen for one product in the events file."""

    product_id: int
    category_code: str
    brand: str
    price: Decimal


ACRONYMS = frozenset({"cpu", "hdd", "tv"})


def humanize_code(part: str) -> str:
    """``air_conditioner`` → ``Air Conditioner``, ``tv`` → ``TV``."""
    return " ".join(word.upper() if word in ACRONYMS else word.title() for word in part.split("_"))


def brand_name(raw: str) -> str:
    """Brands are lower case in the data: ``lg`` → ``LG``, ``samsung`` → ``Samsung``."""
    return raw.upper() if len(raw) <= 3 else raw.title()


def category_names(codes: set[str]) -> dict[str, str]:
    """Readable names from the last part of each code; a last part shared by two codes
    (``furniture.kitchen.chair``, ``furniture.living_room.chair``) keeps the part before it."""
    leaves: dict[str, list[str]] = {}
    for code in codes:
        leaves.setdefault(code.rsplit(".", 1)[-1], []).append(code)
    names = {}
    for leaf, shared in leaves.items():
        for code in shared:
            parts = code.split(".")
            if len(shared) > 1 and len(parts) > 2:
                names[code] = f"{humanize_code(parts[-2])} {humanize_code(leaf)}"
            else:
                names[code] = humanize_code(leaf)
    return names


def read_products(path: Path) -> Iterator[ProductRow]:
    """One row per product with a category code; the file is in time order, so the latest wins."""
    latest: dict[int, ProductRow] = {}
    with gzip.open(path, "rt", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if not row["category_code"]:
                continue
            product_id = int(row["product_id"])
            latest[product_id] = ProductRow(
                product_id, row["category_code"], brand_name(row["brand"]), Decimal(row["price"])
            )
    return iter(sorted(latest.values(), key=lambda item: item.product_id))


def build_product(row: ProductRow, category: Category) -> Product:
    """A product with a readable, deterministic name, description and stock."""
    rng = random.Random(row.product_id)
    department = category.parent.name if category.parent else category.name
    kind = category.name
    prefix = (row.brand or kind)[0].upper()
    name = f"{row.brand} {kind}" if row.brand else kind
    description = rng.choice(DESCRIPTIONS).format(
        brand=row.brand or "Mercato",
        kind=kind,
        department=department,
        department_lower=department.lower(),
        detail=rng.choice(DETAILS),
    )
    return Product(
        id=row.product_id,
        name=f"{name} {prefix}-{row.product_id % 10000:04d}",
        description=description,
        brand=row.brand,
        category=category,
        price=row.price,
        stock=0 if rng.random() < 0.06 else rng.randint(1, 60),
        is_active=True,
    )


class Command(BaseCommand):
    help = (
        "Load the demo shop: the catalogue built from shop/demo_data/rees46_oct2019_slice.csv.gz, "
        "its events (through recommendations_import_events) and a demo shopper account. "
        "Running it again adds nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        only = parser.add_mutually_exclusive_group()
        only.add_argument("--events-only", action="store_true", help="Import the events, not the catalogue.")
        only.add_argument("--no-events", action="store_true", help="Build the catalogue, skip the events.")
        parser.add_argument(
            "--flush",
            action="store_true",
            help="Delete the shop's orders, products and categories first (events are kept).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["flush"]:
            self.flush()
        if not options["events_only"]:
            self.load_catalogue(DATA_FILE)
            self.create_demo_user()
        if not options["no_events"]:
            self.stdout.write("Importing the events ...")
            call_command("recommendations_import_events", str(DATA_FILE), format="rees46", stdout=self.stdout)
            demo_search.load(self.stdout)
            call_command("recommendations_rebuild_suggestions", stdout=self.stdout)
        if not get_user_model()._default_manager.filter(is_superuser=True).exists():
            self.stdout.write("For the admin, create a superuser: python manage.py createsuperuser")

    @transaction.atomic
    def flush(self) -> None:
        orders, _ = Order.objects.all().delete()
        products, _ = Product.objects.all().delete()
        categories, _ = Category.objects.all().delete()
        self.stdout.write(
            f"Flushed: {orders} orders and lines, {products} products, {categories} categories."
        )

    @transaction.atomic
    def load_catalogue(self, path: Path) -> None:
        self.stdout.write(f"Reading the catalogue from {path.name} ...")
        rows = list(read_products(path))
        categories, categories_created = self.ensure_categories({row.category_code for row in rows})
        existing = set(Product.objects.values_list("id", flat=True))
        new = [
            build_product(row, categories[row.category_code])
            for row in rows
            if row.product_id not in existing
        ]
        Product.objects.bulk_create(new, batch_size=500)
        self.stdout.write(
            self.style.SUCCESS(
                f"Catalogue: {len(categories)} categories ({categories_created} new), "
                f"{len(rows)} products ({len(new)} new, {len(rows) - len(new)} already there)."
            )
        )

    def ensure_categories(self, codes: set[str]) -> tuple[dict[str, Category], int]:
        """Every code and its top-level parent as a Category; returns them by slug and the count created."""
        tops = {code.split(".", 1)[0] for code in codes}
        names = category_names(codes - tops)
        by_slug = Category.objects.in_bulk(codes | tops, field_name="slug")
        missing_tops = [Category(slug=top, name=humanize_code(top)) for top in sorted(tops - by_slug.keys())]
        Category.objects.bulk_create(missing_tops)
        by_slug.update(Category.objects.in_bulk([c.slug for c in missing_tops], field_name="slug"))
        missing = [
            Category(slug=code, name=names[code], parent=by_slug[code.split(".", 1)[0]])
            for code in sorted(codes - tops - by_slug.keys())
        ]
        Category.objects.bulk_create(missing)
        by_slug.update(Category.objects.select_related("parent").in_bulk(codes, field_name="slug"))
        return by_slug, len(missing_tops) + len(missing)

    def create_demo_user(self) -> None:
        user, created = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        state = "created" if created else "already there"
        self.stdout.write(f"Demo shopper {state}: username {DEMO_USERNAME!r}, password {DEMO_PASSWORD!r}.")
