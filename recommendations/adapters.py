"""How the app reads the host shop's catalogue: item ids, categories, prices, order lines.

The app never imports the shop. It asks the adapter named in
``RECOMMENDATIONS["CATALOGUE_ADAPTER"]``; subclass ``CatalogueAdapter`` and override only
what differs in your shop, for example::

    class MyAdapter(CatalogueAdapter):
        def category_id(self, item):
            return item.category.slug
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, NamedTuple

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from .conf import app_settings


class OrderLine(NamedTuple):
    item: Any
    quantity: int
    price: Decimal | None


class CatalogueAdapter:
    """Defaults for a shop whose product model has ``pk``, ``category_id`` and ``price``,
    and whose order has ``user`` and ``lines`` with ``product``, ``quantity``, ``price``.

    Serving reads live querysets through ``item_queryset`` (which items may be
    recommended now) and ``cart_item_ids`` (what the shopper is about to buy anyway).
    """

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

    def brand(self, item: Any) -> str:
        return str(getattr(item, "brand", "") or "")

    def added_at(self, item: Any) -> datetime | None:
        """When the item entered the catalogue (``created_at``/``created``), or None."""
        for name in ("created_at", "created", "date_added"):
            value = getattr(item, name, None)
            if isinstance(value, datetime):
                return value
        return None

    def item_features(self) -> Iterator[dict[str, Any]]:
        """What training knows of each recommendable item besides its events.

        One dict per item of ``item_queryset()``: ``item``, ``category`` (a path such as
        ``electronics.smartphone`` where the shop has one), ``brand``, ``price``, ``name``
        and ``added_at``. Items nobody has interacted with yet join the model's catalogue
        through it (they are the evaluation's ``cold`` items). Override it to read the
        columns in one query, or to add what your product model calls them.
        """
        for item in self.item_queryset().iterator(chunk_size=2000):
            price = self.price(item)
            yield {
                "item": self.item_id(item),
                "category": self.category_id(item),
                "brand": self.brand(item),
                "price": None if price is None else float(price),
                "name": str(item),
                "added_at": self.added_at(item),
            }

    def order_lines(self, order: Any) -> Iterable[OrderLine]:
        for line in order.lines.select_related("product"):
            yield OrderLine(line.product, line.quantity, line.price)

    def order_user(self, order: Any) -> Any:
        return getattr(order, "user", None)

    # --- serving -------------------------------------------------------------

    def item_queryset(self) -> QuerySet:
        """Items that may be recommended right now (active, in stock), as a live queryset.

        The default takes ``RECOMMENDATIONS["ITEM_MODEL"]`` and keeps rows with
        ``is_active`` true and ``stock`` above 0 when the model has those fields.
        """
        label = app_settings.ITEM_MODEL
        if not label:
            raise ImproperlyConfigured(
                "Set RECOMMENDATIONS['ITEM_MODEL'] or override CatalogueAdapter.item_queryset()."
            )
        model = apps.get_model(label)
        queryset = model._default_manager.all()
        names = {field.name for field in model._meta.get_fields()}
        if "is_active" in names:
            queryset = queryset.filter(is_active=True)
        if "stock" in names:
            queryset = queryset.filter(stock__gt=0)
        return queryset

    def all_items_queryset(self) -> QuerySet:
        """Every item, recommendable or not (to name the item a reason points at)."""
        return self.item_queryset().model._default_manager.all()

    def _clean_ids(self, queryset: QuerySet, item_ids: Iterable[Any]) -> list[Any]:
        """The ids that are valid values of the model's primary key (a bad id is no item)."""
        field = queryset.model._meta.pk
        cleaned = []
        for item_id in item_ids:
            try:
                value = field.to_python(item_id)
                field.run_validators(value)  # an id out of the column's range is no item either
            except (ValidationError, TypeError, ValueError):
                continue
            cleaned.append(value)
        return cleaned

    def items_by_id(self, item_ids: Iterable[Any], *, available_only: bool = True) -> dict[str, Any]:
        """``{item id: item}`` for those of ``item_ids`` that exist (and may be recommended)."""
        queryset = self.item_queryset() if available_only else self.all_items_queryset()
        ids = self._clean_ids(queryset, item_ids)
        if not ids:
            return {}
        return {self.item_id(item): item for item in queryset.filter(pk__in=ids)}

    def known_item_ids(self, item_ids: Iterable[Any]) -> set[str]:
        """Those of ``item_ids`` that are items of the catalogue (on sale or not): events an
        app sends must name one."""
        return set(self.items_by_id(item_ids, available_only=False))

    def cart_item_ids(self, request: HttpRequest | None) -> set[str]:
        """Ids of the items in this shopper's cart (not recommended: they are taken)."""
        return set()

    def display(self, item: Any) -> dict[str, Any]:
        """What a widget or the API shows of an item: name, url, price, image."""
        url = item.get_absolute_url() if hasattr(item, "get_absolute_url") else ""
        price = self.price(item)
        return {
            "name": str(item),
            "url": url,
            "price": None if price is None else str(price),
            "image_url": str(getattr(item, "image_url", "") or ""),
        }

    def suggestion_terms(self) -> Iterable[tuple[str, str, float]]:
        """(text, category id, weight) of names worth suggesting before anyone searched.

        The default: every recommendable item's name, weight 1. Override to add category or
        brand names, or to weigh best sellers.
        """
        for item in self.item_queryset().iterator(chunk_size=2000):
            yield str(item), self.category_id(item), 1.0


@lru_cache(maxsize=1)
def get_adapter() -> CatalogueAdapter:
    """The adapter named in ``CATALOGUE_ADAPTER`` (one instance, rebuilt when settings change)."""
    return app_settings.get_class("CATALOGUE_ADAPTER")()


app_settings.on_reload(get_adapter.cache_clear)
