"""Learning: pure Python + pandas + Keras, no Django except ``events.py``.

Data flow: ``frames`` (events -> canonical DataFrame) -> ``preprocessing`` (clean,
normalize, vocabularies) -> ``cases`` (padded histories: what each prediction sees) ->
``model``/``training`` (Keras) and ``baselines`` -> ``evaluation`` (metrics on later data)
-> ``artifacts`` (what serving loads).
"""
