"""The app's composition root: the one place that wires the stages together at start-up."""

from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    verbose_name = "Recommendations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported for their side effects: checks register themselves, receivers connect.
        from . import checks  # noqa: F401
        from .capture import checks as capture_checks  # noqa: F401
        from .capture import receivers
        from .serving import catalogue, experiments, history  # noqa: F401  (listen to events_recorded, shopper_forgotten)
        from .suggest import scheduling, services  # noqa: F401  (the same, for suggestions)

        receivers.connect()
        # A saved or deleted item reaches every process's kept catalogue objects.
        catalogue.connect_item_signals()
