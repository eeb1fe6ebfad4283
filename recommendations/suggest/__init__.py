"""Search suggestions from the shop's own search log: statistics, a prefix index, personalization.

``text`` normalizes queries; ``stats`` turns search events into one ``SearchQuery`` row per
normalized query (time-decayed count, success rate, categories, related searches), rebuilt
by a Celery task; ``index`` holds those rows in each process as sorted arrays for prefix
lookups (with a one-typo fallback); ``services`` re-ranks the candidates for a shopper
(category affinity, the model's view of them, their own earlier searches) and is what the
API, the template tag and the demo's search page call.
"""
