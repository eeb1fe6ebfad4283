"""The shop's data: a two-level category tree, products, and placed orders.

Categories and product ids come from the REES46 data set, so events imported from it and
events recorded by the shop name the same items and categories.
"""

from __future__ import annotations

import zlib
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.urls import reverse


class Category(models.Model):
    """A category; ``slug`` is the data set's ``category_code`` (``electronics.smartphone``).

    Top-level categories (``electronics``) have no parent; every other one hangs directly
    below its top-level category, whatever the depth of its code.
    """

    name = models.CharField(max_length=100)
    slug = models.CharField(
        max_length=128,
        unique=True,
        help_text="The data set's category_code, dots included; also the category id of events.",
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )

    class Meta:
        ordering = ("name",)
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name if self.parent_id is None else f"{self.parent} > {self.name}"

    def get_absolute_url(self) -> str:
        return reverse("shop:category", kwargs={"slug": self.slug})

    @property
    def hue(self) -> int:
        """A stable colour (0 to 359) for the placeholder tiles of this category's products."""
        return zlib.crc32(self.slug.encode()) % 360


class ProductQuerySet(models.QuerySet):
    def active(self) -> ProductQuerySet:
        """Products a shopper may see: inactive ones are hidden everywhere in the shop."""
        return self.filter(is_active=True)


class Product(models.Model):
    """A product; its primary key is the data set's ``product_id``, not an autoincrement."""

    id = models.BigIntegerField(primary_key=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    brand = models.CharField(max_length=64, blank=True)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = ProductQuerySet.as_manager()

    class Meta:
        ordering = ("name", "id")
        indexes = [models.Index(fields=["is_active", "category"], name="shop_product_active_cat")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("shop:product", kwargs={"pk": self.pk})

    @property
    def in_stock(self) -> bool:
        return self.stock > 0

    @property
    def initials(self) -> str:
        """Two letters for the placeholder tile: the brand's, else the category's."""
        words = (self.brand or self.category.name).replace("-", " ").split()
        if len(words) > 1:
            return (words[0][0] + words[1][0]).upper()
        word = words[0] if words else "?"
        return word[:2] if word.isupper() else word[:2].capitalize()


class Order(models.Model):
    """A placed order; anonymous shoppers may order too, so ``user`` is optional."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="shop_orders",
    )
    email = models.EmailField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    total = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))

    class Meta:
        ordering = ("-created", "-id")

    def __str__(self) -> str:
        return f"Order #{self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("shop:order", kwargs={"pk": self.pk})


class OrderLine(models.Model):
    """One product of an order, at the price it was sold for."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_lines")
    quantity = models.PositiveIntegerField()
    price = models.DecimalField(max_digits=10, decimal_places=2)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product}"

    @property
    def subtotal(self) -> Decimal:
        return self.price * self.quantity
