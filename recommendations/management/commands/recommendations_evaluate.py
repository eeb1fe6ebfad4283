"""``manage.py recommendations_evaluate``: the model and the baselines on later data, from files.

Either ``--train PATH --test PATH`` or ``--events PATH --split-at TIMESTAMP``; any importer
format. Reads files only, never the database. Progress goes to stderr, so ``--json``
leaves exactly one JSON object on stdout.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations.capture.importers import FORMATS, ImportRowError, parse_file


class Command(BaseCommand):
    help = (
        "Next-item evaluation on events after a point in time: every prefix of every later session "
        "predicts its next item. Reports HR, MRR, NDCG, coverage and novelty at k for every model, in "
        "three variants: 'all' next items, 'new' ones (not yet in the session; session items are "
        "removed from every list) and 'cold' ones (new items without training events, ranked among "
        "the catalogue's other such items). Give --train and --test files, or one --events file and "
        "--split-at; the catalogue is what the event files say of each item, plus --catalogue."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--train", metavar="PATH", help="events of the training period")
        parser.add_argument("--test", metavar="PATH", help="events after the training period")
        parser.add_argument("--events", metavar="PATH", help="one event file, split by --split-at")
        parser.add_argument(
            "--split-at", metavar="TIMESTAMP", help="events before it train, the rest test (UTC if naive)"
        )
        parser.add_argument("--format", default="canonical", choices=sorted(FORMATS))
        parser.add_argument("--k", type=int, default=20, help="length of each recommendation list")
        parser.add_argument("--models", help="comma-separated names (default: all baselines and the model)")
        parser.add_argument(
            "--epochs", type=int, help="most training epochs of the learned model, in each of its two stages"
        )
        parser.add_argument("--max-history", type=int, default=50, help="history events per case")
        parser.add_argument(
            "--catalogue",
            metavar="PATH",
            help="CSV of products (item_id, category_path, brand, price, name[, added_at]); with the "
            "event files it is the catalogue of the 'cold' variant",
        )
        parser.add_argument(
            "--no-cold",
            action="store_true",
            help="leave items without training events out (as before: their cases are skipped)",
        )
        parser.add_argument("--json", action="store_true", help="print the result as one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        # pandas and Keras load only when the command runs, not at every manage.py start.
        from recommendations.ml.evaluation import MODEL_NAME, build_models, format_table, run_evaluation
        from recommendations.ml.frames import frame_from_records, split_at

        def say(message: str) -> None:
            self.stderr.write(message)
            self.stderr.flush()

        split_mode = options["events"] is not None or options["split_at"] is not None
        file_mode = options["train"] is not None or options["test"] is not None
        if split_mode == file_mode:
            raise CommandError("Give either --train and --test, or --events and --split-at (not both).")
        if file_mode and (options["train"] is None or options["test"] is None):
            raise CommandError("--train and --test go together: give both files.")
        if split_mode and (options["events"] is None or options["split_at"] is None):
            raise CommandError("--events and --split-at go together: give both.")
        k = options["k"]
        if k < 1:
            raise CommandError("--k must be at least 1.")
        if options["max_history"] < 1:
            raise CommandError("--max-history must be at least 1.")
        if options["epochs"] is not None and options["epochs"] < 1:
            raise CommandError("--epochs must be at least 1.")

        names = None
        if options["models"] is not None:
            names = [name.strip() for name in options["models"].split(",") if name.strip()]
            if not names:
                raise CommandError("--models names no model.")
        try:
            planned = build_models(names)  # fail on a bad name before reading any file
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        model_params: dict[str, dict[str, Any]] = {}
        if MODEL_NAME in planned:
            params: dict[str, Any] = {}
            if options["epochs"] is not None:
                params["epochs"] = options["epochs"]
                params["scalar_epochs"] = min(options["epochs"], planned[MODEL_NAME].scalar_epochs)
            if "progress" in inspect.signature(type(planned[MODEL_NAME])).parameters:
                from ...ml.training import describe_epoch

                params["progress"] = lambda row: say(f"  {MODEL_NAME} {describe_epoch(row)}")
            model_params[MODEL_NAME] = params
        elif options["epochs"] is not None:
            say(f"--epochs ignored: {MODEL_NAME} is not run.")

        fmt = options["format"]
        try:
            if split_mode:
                say(f"Reading {options['events']} ({fmt}) ...")
                frame = frame_from_records(parse_file(options["events"], fmt))
                try:
                    train, test = split_at(frame, options["split_at"])
                except (ValueError, TypeError) as exc:
                    raise CommandError(
                        f"--split-at {options['split_at']!r} is not a timestamp ({exc})."
                    ) from exc
                where = f"the split at {options['split_at']}"
            else:
                say(f"Reading {options['train']} and {options['test']} ({fmt}) ...")
                train = frame_from_records(parse_file(options["train"], fmt))
                test = frame_from_records(parse_file(options["test"], fmt))
                where = "the given files"
        except ImportRowError as exc:
            raise CommandError(f"Cannot read events. {exc}") from exc
        if train.empty or test.empty:
            side = "training" if train.empty else "test"
            raise CommandError(
                f"After {where} the {side} side has no events ({len(train):,} training, {len(test):,} test)."
            )
        say(f"{len(train):,} training events, {len(test):,} test events")
        catalogue = None
        if not options["no_cold"]:
            from recommendations.ml.frames import catalogue_from_events, merge_catalogues

            catalogue = merge_catalogues(
                catalogue_from_events(train, test),
                read_catalogue(options["catalogue"]) if options["catalogue"] else None,
            )
            say(f"Catalogue: {len(catalogue):,} items")
        elif options["catalogue"]:
            raise CommandError("--catalogue and --no-cold contradict each other: give one.")

        try:
            result = run_evaluation(
                train,
                test,
                k=k,
                models=names,
                model_params=model_params,
                max_history=options["max_history"],
                progress=say,
                catalogue=catalogue,
            )
        except ValueError as exc:
            raise CommandError(f"Evaluation failed: {exc}") from exc
        if result["n_cases"] == 0:
            say("No evaluation cases: no test session has a second item event known in training.")
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(format_table(result))


#: Columns of a catalogue CSV and their names in ``frames.CATALOGUE_COLUMNS``.
CATALOGUE_CSV = {
    "item_id": "item",
    "category_path": "category",
    "brand": "brand",
    "price": "price",
    "name": "name",
}


def read_catalogue(path: str) -> Any:
    """The catalogue CSV as a frame, or a ``CommandError`` that names what is wrong."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CommandError(f"Cannot read the catalogue {path}: {exc}") from exc
    if "item_id" not in frame.columns:
        raise CommandError(
            f"The catalogue {path} has no item_id column (its columns: {', '.join(frame.columns) or 'none'}); "
            f"expected {', '.join(CATALOGUE_CSV)}[, added_at]."
        )
    renamed = frame.rename(columns=CATALOGUE_CSV)
    keep = [column for column in (*CATALOGUE_CSV.values(), "added_at") if column in renamed.columns]
    renamed = renamed[keep]
    if "price" in renamed:
        renamed["price"] = pd.to_numeric(renamed["price"].replace("", None), errors="coerce")
    return renamed
