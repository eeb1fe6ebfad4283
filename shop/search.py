"""The demo shop's product search: every word must match a name, brand, description or category.

Results are ordered by how well the text matches (name over brand and category, over the
description) and, when the recommendations app is set to, re-ranked for the shopper by
its model (``RECOMMENDATIONS["SUGGEST"]["RERANK_WEIGHT"]``, 0 turns it off).
"""

from __future__ import annotations

from functools import reduce
from operator import and_
from typing import Any

from django.db.models import Q, QuerySet

from recommendations.suggest.services import rerank_results

from .models import Product

MAX_SEARCH_TERMS = 8
#: Results re-ranked for the shopper (the rest follow in text order).
MAX_RERANKED = 240


def terms_of(query: str) -> list[str]:
    """The words searched for; control characters (a NUL, say) are no part of any word."""
    printable = "".join(c if c.isprintable() else " " for c in query)
    return " ".join(printable.split())[:200].split()[:MAX_SEARCH_TERMS]


def search_products(query: str) -> QuerySet[Product]:
    terms = terms_of(query)
    if not terms:
        return Product.objects.none()
    matches = [
        Q(name__icontains=term)
        | Q(brand__icontains=term)
        | Q(description__icontains=term)
        | Q(category__name__icontains=term)
        for term in terms
    ]
    return Product.objects.active().filter(reduce(and_, matches)).select_related("category")


def text_score(product: Product, terms: list[str]) -> float:
    score = 0.0
    for term in (t.lower() for t in terms):
        score += 3.0 * (term in product.name.lower())
        score += 2.0 * (term in product.brand.lower() or term in product.category.name.lower())
        score += 0.5 * (term in product.description.lower())
    return score


def ranked_results(query: str, request: Any = None) -> list[Product]:
    """Matching products, best first for this shopper."""
    terms = terms_of(query)
    products = list(search_products(query).order_by("pk"))
    scores = [text_score(product, terms) for product in products]
    head = sorted(range(len(products)), key=lambda i: (-scores[i], products[i].pk))
    products = [products[i] for i in head]
    scores = [scores[i] for i in head]
    top = rerank_results(request, products[:MAX_RERANKED], scores[:MAX_RERANKED])
    return top + products[MAX_RERANKED:]
