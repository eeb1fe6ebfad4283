"""``manage.py recommendations_import_events PATH --format FORMAT``: load an event log."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations.capture.importers import FORMATS, ImportRowError, import_events


class Command(BaseCommand):
    help = (
        "Import events from a file (plain or .gz). Formats: canonical CSV "
        "(timestamp,session_id,user_id,event,item_id,query,category_id,price,quantity) and the public "
        "logs rees46, diginetica, groceries, movielens, wands. All rows are validated first; a bad row "
        "stops the import and nothing of the file is written. Importing a file again adds nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument("--format", default="canonical", choices=sorted(FORMATS))
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        for path in options["paths"]:
            self.stdout.write(f"Reading {path} ({options['format']}) ...")

            def progress(done: int, total: int) -> None:
                self.stdout.write(f"  written {done:,}/{total:,} rows", ending="\r" if done < total else "\n")
                self.stdout.flush()

            try:
                result = import_events(
                    path, options["format"], batch_size=options["batch_size"], progress=progress
                )
            except ImportRowError as exc:
                raise CommandError(f"Nothing imported from {path}. {exc}") from exc
            self.stdout.write(
                self.style.SUCCESS(
                    f"{path}: {result.rows:,} rows, {result.added:,} new events, "
                    f"{result.already_present:,} already imported."
                )
            )
