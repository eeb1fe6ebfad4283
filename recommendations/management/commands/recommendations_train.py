"""``manage.py recommendations_train``: train, evaluate and maybe activate a model version
here and now, for shops without Celery (cron) and for operators."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations.conf import app_settings
from recommendations.extras import MissingExtra
from recommendations.lifecycle import registry


class _StdoutHandler(logging.Handler):
    def __init__(self, write: Any) -> None:
        super().__init__(logging.INFO)
        self.write = write

    def emit(self, record: logging.LogRecord) -> None:
        self.write(f"  {record.getMessage()}")


class Command(BaseCommand):
    help = (
        "Train a model version on the stored events, evaluate it on the latest part, activate it if better."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--epochs", type=int, help="override the MODEL setting's epochs for this run")
        parser.add_argument(
            "--if-none-active",
            action="store_true",
            help="do nothing when a version is already active (first start of a shop or a demo)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_none_active"] and registry.active_version() is not None:
            self.stdout.write(f"Version {registry.active_version().pk} is active; nothing to do.")
            return
        params = {}
        if options["epochs"] is not None:
            if options["epochs"] < 1:
                raise CommandError("--epochs must be at least 1")
            params["epochs"] = options["epochs"]
            params["scalar_epochs"] = min(options["epochs"], app_settings.MODEL.get("scalar_epochs", 10))
        try:
            from recommendations.ml import training  # noqa: F401  (fails early without the ml extra)
        except MissingExtra as exc:
            raise CommandError(str(exc)) from exc
        version, created = registry.request_training({**app_settings.MODEL, **params})
        if not created:
            raise CommandError(f"Version {version.pk} is already training; try again when it has finished.")
        self.stdout.write(f"Training version {version.pk} ...")
        handler = _StdoutHandler(self.stdout.write)
        loggers = [
            logging.getLogger("recommendations.ml.training"),
            logging.getLogger("recommendations.lifecycle.registry"),
        ]
        saved = [(logger.level, logger.propagate) for logger in loggers]
        for logger in loggers:
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False  # one line per message: ours, not also the site's log format
        try:
            version = registry.train_version(version.pk)
        finally:
            for logger, (level, propagate) in zip(loggers, saved, strict=True):
                logger.removeHandler(handler)
                logger.setLevel(level)
                logger.propagate = propagate
        if version.status == version.Status.FAILED:
            raise CommandError(f"Version {version.pk} failed: {version.error}")
        self.stdout.write(
            self.style.SUCCESS(f"Version {version.pk} is {version.status}. {version.promotion_note}")
        )
