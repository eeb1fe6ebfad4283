"""Serving: the active model in memory, history at request time, rules, fallbacks, reasons.

Import the read API from ``recommendations.serving.services`` (template tags, the REST
API and the admin all go through it). Nothing here imports TensorFlow.
"""
