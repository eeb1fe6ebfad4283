"""The shopping cart, kept in the session so anonymous shoppers can buy too.

``request.session["cart"]`` maps a product id (as a string: sessions are JSON) to a quantity.
Products are read from the database only when the cart is listed, in one query.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.sessions.backends.base import SessionBase

from .models import Product

SESSION_KEY = "cart"


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def subtotal(self) -> Decimal:
        return self.product.price * self.quantity


class Cart:
    """A view over the session's cart; every change marks the session as modified."""

    def __init__(self, session: SessionBase) -> None:
        self.session = session
        self._lines: list[CartLine] | None = None

    @property
    def _items(self) -> dict[str, int]:
        return self.session.get(SESSION_KEY, {})

    def _save(self, items: dict[str, int]) -> None:
        self.session[SESSION_KEY] = items
        self._lines = None

    def product_ids(self) -> list[str]:
        """Ids of the products in the cart; reads the session only."""
        return list(self._items)

    def quantity_of(self, product_id: int) -> int:
        return self._items.get(str(product_id), 0)

    def add(self, product: Product, quantity: int = 1) -> int:
        """Add to the quantity already in the cart; returns the new quantity."""
        items = dict(self._items)
        items[str(product.pk)] = items.get(str(product.pk), 0) + quantity
        self._save(items)
        return items[str(product.pk)]

    def update(self, product_id: int, quantity: int) -> None:
        """Set a line's quantity; zero or less removes the line."""
        if quantity <= 0:
            self.remove(product_id)
            return
        items = dict(self._items)
        items[str(product_id)] = quantity
        self._save(items)

    def remove(self, product_id: int) -> None:
        items = dict(self._items)
        if items.pop(str(product_id), None) is not None:
            self._save(items)

    def clear(self) -> None:
        self.session.pop(SESSION_KEY, None)
        self._lines = None

    @property
    def count(self) -> int:
        """Number of units, for the header badge; reads the session only."""
        return sum(self._items.values())

    def lines(self) -> list[CartLine]:
        """The cart's lines with their products, in the order they were added.

        Products that were deactivated or deleted since are left out.
        """
        if self._lines is None:
            items = self._items
            products = Product.objects.active().select_related("category").in_bulk([int(pk) for pk in items])
            self._lines = [
                CartLine(products[int(pk)], quantity) for pk, quantity in items.items() if int(pk) in products
            ]
        return self._lines

    def __iter__(self) -> Iterator[CartLine]:
        return iter(self.lines())

    def __len__(self) -> int:
        return len(self.lines())

    @property
    def total(self) -> Decimal:
        return sum((line.subtotal for line in self.lines()), Decimal("0.00"))
