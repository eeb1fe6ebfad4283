"""Learning: a library of plain Python, numpy, pandas and Keras, with no Django.

Data flow: ``frames`` (events -> canonical DataFrame) -> ``preprocessing`` (clean,
normalize, vocabularies) -> ``cases`` (padded histories: what each prediction sees) ->
``model``/``training`` (Keras) and ``baselines`` -> ``evaluation`` (metrics on later data);
``tower`` is the numpy forward pass serving uses. It runs where Django is not installed (a
GPU machine, a notebook); ``lifecycle`` is its Django side. The import contract in
``pyproject.toml`` keeps it so.
"""
