"""Placing an order: the cart becomes an order, atomically, or nothing changes.

Stock is decremented with a conditional UPDATE (``stock >= quantity``), so two shoppers
racing for the last unit cannot both get it, on SQLite as on PostgreSQL.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.http import HttpRequest

from .cart import Cart
from .models import Order, OrderLine, Product
from .signals import order_placed

#: Session key of the ids of orders placed in this session (who may see their confirmation).
PLACED_ORDERS_SESSION_KEY = "shop_placed_orders"


class OrderError(Exception):
    """The order could not be placed; the message is meant for the shopper."""


def place_order(request: HttpRequest, cart: Cart, email: str) -> Order:
    """Create the order and its lines, take the stock, empty the cart.

    Raises ``OrderError`` (and changes nothing) when the cart is empty or a product does not
    have enough stock left. ``order_placed`` is sent after the transaction commits.
    """
    lines = cart.lines()
    if not lines:
        raise OrderError("Your cart is empty.")
    user = request.user if request.user.is_authenticated else None
    with transaction.atomic():
        for line in lines:
            taken = Product.objects.filter(
                pk=line.product.pk, is_active=True, stock__gte=line.quantity
            ).update(stock=F("stock") - line.quantity)
            if not taken:
                left = Product.objects.filter(pk=line.product.pk).values_list("stock", flat=True).first() or 0
                raise OrderError(
                    f"Sorry, only {left} of “{line.product.name}” left in stock; "
                    "please change the quantity in your cart."
                )
        order = Order.objects.create(user=user, email=email, total=cart.total)
        OrderLine.objects.bulk_create(
            OrderLine(order=order, product=line.product, quantity=line.quantity, price=line.product.price)
            for line in lines
        )
        transaction.on_commit(lambda: order_placed.send(sender=Order, request=request, order=order))
    cart.clear()
    placed = request.session.get(PLACED_ORDERS_SESSION_KEY, [])
    request.session[PLACED_ORDERS_SESSION_KEY] = [*placed, order.pk]
    return order


def can_view_order(request: HttpRequest, order: Order) -> bool:
    """Only the shopper who placed an order sees it: its user, or the session that placed it."""
    if order.user_id is not None and order.user_id == request.user.pk:
        return True
    return order.pk in request.session.get(PLACED_ORDERS_SESSION_KEY, [])
