"""The app's own signals: how a stage tells the later ones, without importing them.

Capture sends ``events_recorded`` once a batch of events is accepted (before it is stored:
serving's real-time overlay and the suggestion rebuilds listen). Erasure sends
``shopper_forgotten`` so that every stage drops what it keeps about those shoppers, and a
login that joins a visitor to a user sends ``visitor_linked`` (their kept history is stale). Send
them with ``send_robust``: a receiver that fails is logged by Django and never breaks the
sender.
"""

from __future__ import annotations

from django.dispatch import Signal

#: Sent with ``records`` (a list of ``EventRecord``) when capture accepts events.
events_recorded = Signal()
#: Sent with ``shoppers`` (a list of ``identity.Shopper``) when their data is erased.
shopper_forgotten = Signal()
#: Sent with ``session_key`` and ``user_id`` when an anonymous visitor's events became a user's.
visitor_linked = Signal()
