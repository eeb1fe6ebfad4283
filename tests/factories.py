"""Small factories for test data (the shop's catalogue, users, events)."""

from __future__ import annotations

import itertools
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.utils import timezone

from recommendations.models import Event
from shop.models import Category, Product

_ids = itertools.count(1000)


def category(slug: str = "electronics.smartphone", name: str = "Smartphone") -> Category:
    parent_slug = slug.split(".")[0]
    parent = None
    if parent_slug != slug:
        parent, _ = Category.objects.get_or_create(slug=parent_slug, defaults={"name": parent_slug.title()})
    obj, _ = Category.objects.get_or_create(slug=slug, defaults={"name": name, "parent": parent})
    return obj


def product(**fields) -> Product:
    values = {
        "id": next(_ids),
        "name": "Acme Smartphone",
        "brand": "acme",
        "price": Decimal("199.99"),
        "stock": 10,
        "is_active": True,
    }
    values.update(fields)
    if "category" not in values:
        values["category"] = category()
    return Product.objects.create(**values)


def user(username: str = "alice", password: str = "pw-alice-123", **fields):
    return get_user_model().objects.create_user(username=username, password=password, **fields)


def event(event_type: str = "view", **fields) -> Event:
    values = {"timestamp": timezone.now(), "event_type": event_type, "item_id": "1"}
    values.update(fields)
    return Event.objects.create(**values)
