"""The model lifecycle: read the events, train with ``ml``, evaluate, version, promote.

``registry`` is the Django side of training (versions, the training lock, promotion),
``reading`` streams the ``Event`` table into ``ml``'s canonical frame, ``tasks`` is the
Celery entry. Imports the kernel and ``ml``; never capture, serving or suggestions.
"""
