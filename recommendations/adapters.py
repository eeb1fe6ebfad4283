"""How the app reads the host shop's catalogue: item ids, categories, prices, order lines.

The app never imports the shop. It asks the adapter named in
``RECOMMENDATIONS["CATALOGUE_ADAPTER"]``; subclass ``CatalogueAdapter`` and override only
what differs in your shop, for example::

    class MyAdapter(CatalogueAdapter):
        def category_id(self, item):
            return item.category.slug
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple


class OrderLine(NamedTuple):
    item: Any
    quantity: int
    price: Decimal | None


class CatalogueAdapter:
    """Defaults for a shop whose product model has ``pk``, ``category_id`` and ``price``,
    and whose order has ``user`` and ``lines`` with ``product``, ``quantity``, ``price``."""

    def item_id(self, item: Any) -> str:
        """The shop's own id of an item (a model instance, or an id already)."""
        return str(getattr(item, "pk", item))

    def category_id(self, item: Any) -> str:
        value = getattr(item, "category_id", None)
        return "" if value is None else str(value)

    def price(self, item: Any) -> Decimal | None:
        value = getattr(item, "price", None)
        if value is None:
            return None
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None

    def order_lines(self, order: Any) -> Iterable[OrderLine]:
        for line in order.lines.select_related("product"):
            yield OrderLine(line.product, line.quantity, line.price)

    def order_user(self, order: Any) -> Any:
        return getattr(order, "user", None)
