"""Signals the shop sends when a shopper adds to the cart or places an order.

The shop does not know who listens: the ``recommendations`` app connects to these through
``settings.RECOMMENDATIONS["SIGNALS"]``, and any other app may connect too.
"""

from django.dispatch import Signal

#: Sent by the "add to cart" view after the cart changed, with ``sender=Product`` and
#: ``request`` (the HttpRequest), ``item`` (the Product), ``quantity`` (the quantity just
#: added, an int) and ``price`` (the unit price, a Decimal).
product_added_to_cart = Signal()

#: Sent once the transaction that created an order has committed (``transaction.on_commit``),
#: with ``sender=Order``, ``request`` (the HttpRequest) and ``order`` (the Order, whose lines
#: are ``order.lines``). Receivers that fail do not undo the order.
order_placed = Signal()
