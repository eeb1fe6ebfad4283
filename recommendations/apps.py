"""The app's composition root: the one place that wires the stages together at start-up."""

from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    verbose_name = "Recommendations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported for their side effects: checks register themselves, receivers connect.
        from django.db.models.signals import post_delete, post_save

        from . import checks  # noqa: F401
        from .capture import checks as capture_checks  # noqa: F401
        from .capture import receivers
        from .serving import catalogue, experiments, history  # noqa: F401  (listen to events_recorded, shopper_forgotten)
        from .suggest import scheduling, services  # noqa: F401  (the same, for suggestions)

        receivers.connect()
        # A saved or deleted item reaches every process's kept catalogue objects.
        post_save.connect(catalogue.on_item_saved, dispatch_uid="recommendations.catalogue.saved")
        post_delete.connect(catalogue.on_item_saved, dispatch_uid="recommendations.catalogue.deleted")
