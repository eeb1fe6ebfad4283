"""Capture: every event enters the app here, through ``ingress.accept``.

Its ways in: ``middleware`` (page views by URL name), ``ingress.track`` (the shop's own
calls, ``recommendations.track``), ``receivers`` (the shop's cart and order signals, login),
``clicks`` (signed links on recommendations), the REST API's batch endpoint (which calls
``ingress.accept``) and ``importers`` (past logs). Accepted events go to a ``recorders``
recorder and end in ``store.store_events``. Capture imports only the kernel: it tells the
later stages about new events with the ``events_recorded`` signal.
"""
