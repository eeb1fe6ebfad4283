"""Learning: a library of plain Python, numpy, pandas and Keras, with no Django.

Data flow: ``frames`` (events -> canonical DataFrame) -> ``preprocessing`` (clean,
normalize, vocabularies) -> ``cases`` (padded histories: what each prediction sees) ->
``model``/``training`` (Keras) and ``baselines`` -> ``evaluation`` (metrics on later data);
``tower`` is the numpy forward pass serving uses. It runs where Django is not installed (a
GPU machine, a notebook); ``lifecycle`` is its Django side. The import contract in
``pyproject.toml`` keeps it so.
"""

import os

# TensorFlow's C++ start-up notes (oneDNN, CPU instructions) are INFO lines written to stderr
# twice per process; warnings and errors still show. A shop that wants them sets the variable.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
