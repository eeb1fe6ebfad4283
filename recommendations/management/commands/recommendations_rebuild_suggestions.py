"""``manage.py recommendations_rebuild_suggestions``: rebuild the search suggestions now (cron, operators)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from recommendations.suggest.stats import rebuild


class Command(BaseCommand):
    help = "Rebuild the search suggestions from the search log and the catalogue."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("Reading the search log and the catalogue ...")
        count = rebuild()
        self.stdout.write(self.style.SUCCESS(f"{count:,} suggestions are ready."))
