"""Mercato, the demo shop: a small catalogue, a session cart and a checkout.

It stands in for a real shop so the ``recommendations`` app has something to observe.
"""
