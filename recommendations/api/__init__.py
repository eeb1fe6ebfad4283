"""The REST API for mobile apps (the ``api`` extra: Django REST framework, drf-spectacular).

Include it with ``path("api/", include("recommendations.api.urls"))``: version 1 lives
under ``/api/v1/``, the OpenAPI 3 schema at ``/api/schema/`` and Swagger UI at
``/api/docs/``. Every view reads through ``serving.services``.
"""
