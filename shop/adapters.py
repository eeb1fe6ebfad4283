"""How the ``recommendations`` app reads this shop's catalogue.

Named in ``settings.RECOMMENDATIONS["CATALOGUE_ADAPTER"]``. Events name categories by
their code (the slug), not by a database id; recommendable products are the active ones
in stock; the cart lives in the session.
"""

from __future__ import annotations

import math
from typing import Any

from django.db.models import Count, QuerySet
from django.http import HttpRequest

from recommendations.adapters import CatalogueAdapter

from .cart import Cart
from .models import Category, Product


class ShopCatalogueAdapter(CatalogueAdapter):
    def category_id(self, item: Any) -> str:
        """The category code (``electronics.smartphone``), as in the imported REES46 events."""
        category = getattr(item, "category", None)
        return getattr(category, "slug", "") or ""

    def item_queryset(self) -> QuerySet:
        # Widgets show name, brand, price and category (training also reads when it was added):
        # only those columns are read.
        return (
            Product.objects.active()
            .filter(stock__gt=0)
            .select_related("category")
            .only("name", "brand", "price", "stock", "created", "category__slug", "category__name")
        )

    def all_items_queryset(self) -> QuerySet:
        return Product.objects.select_related("category")

    def cart_item_ids(self, request: HttpRequest | None) -> set[str]:
        session = getattr(request, "session", None)
        if session is None:
            return set()
        return {str(item_id) for item_id in Cart(session).product_ids()}

    def display(self, item: Any) -> dict[str, Any]:
        data = super().display(item)
        data["category"] = str(item.category.name) if item.category_id else ""
        data["brand"] = item.brand
        data["hue"] = item.category.hue if item.category_id else 0
        return data

    def suggestion_terms(self):
        """Category names, brands, and "brand category" pairs (the demo's product names are
        "Brand Category X-0123": nobody types the code), weighted by how many products match."""
        for category in Category.objects.annotate(n=Count("products")):
            yield category.name, category.slug, 4.0 + math.log1p(category.n)
        pairs = (
            self.item_queryset()
            .exclude(brand="")
            .values("brand", "category__name", "category__slug")
            .annotate(n=Count("pk"))
        )
        brands: dict[str, tuple[str, int]] = {}
        for row in pairs:
            name = row["brand"]  # as the products write it ("HP", "Samsung")
            yield f"{name} {row['category__name']}", row["category__slug"], 1.0 + math.log1p(row["n"])
            slug, count = brands.get(name, (row["category__slug"], 0))
            brands[name] = (slug, count + row["n"])
        for name, (slug, count) in brands.items():
            yield name, slug, 2.0 + math.log1p(count)
