"""The app's own signals: how a stage tells the later ones, without importing them.

Capture sends ``events_recorded`` once a batch of events is accepted (before it is stored:
serving's real-time overlay and the suggestion rebuilds listen). Erasure sends
``shopper_forgotten`` so that every stage drops what it keeps about those shoppers. Send
them with ``send_robust``: a receiver that fails is logged by Django and never breaks the
sender.
"""

from __future__ import annotations

from django.dispatch import Signal

#: Sent with ``records`` (a list of ``EventRecord``) when capture accepts events.
events_recorded = Signal()
#: Sent with ``shoppers`` (a list of ``identity.Shopper``) when their data is erased.
shopper_forgotten = Signal()
