"""Event importers: public log formats -> the canonical schema -> validated ``EventRecord``s.

Each format is a reader that yields ``(line number, canonical row)``; one validator turns
canonical rows into records, so every format gets the same rules and the same error text:
``events.csv, line 12, field 'timestamp': ...``. An import is all or nothing: a file is
parsed and validated completely before anything is written, then written in one
transaction. Every row gets an id derived from its content, so importing the same file
twice adds nothing.

Canonical CSV (header row, any column order)::

    timestamp,session_id,user_id,event,item_id,query,category_id,price,quantity
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.db import transaction
from django.utils.dateparse import parse_datetime

from ..models import ITEM_EVENTS, Event, EventType
from ..records import EventRecord

CANONICAL_COLUMNS = (
    "timestamp",
    "session_id",
    "user_id",
    "event",
    "item_id",
    "query",
    "category_id",
    "price",
    "quantity",
)
REQUIRED_COLUMNS = ("timestamp", "event", "item_id")
ID_PATTERN = re.compile(r"^[^\s\x00-\x1f\x7f]{1,64}$")
#: Formats without clock times get synthetic ones from this origin, in file order.
SYNTHETIC_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)

CanonicalRow = dict[str, str]
Reader = Callable[[Path], Iterator[tuple[int, CanonicalRow]]]


class ImportRowError(ValueError):
    """A row that cannot be imported; the message names the file, line and field."""

    def __init__(self, path: Path | str, line: int, field: str | None, message: str) -> None:
        self.path, self.line, self.field = Path(path), line, field
        where = f"{self.path.name}, line {line}" + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class ImportResult:
    rows: int
    added: int

    @property
    def already_present(self) -> int:
        return self.rows - self.added


def open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _dict_rows(path: Path, delimiter: str, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    with open_text(path) as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        header = reader.fieldnames or []
        missing = [column for column in required if column not in header]
        if missing:
            raise ImportRowError(
                path,
                1,
                missing[0],
                f"missing column(s) {', '.join(missing)}; the header is {', '.join(header) or 'empty'}",
            )
        for row in reader:
            if None in row:
                raise ImportRowError(path, reader.line_num, None, "more values than header columns")
            yield reader.line_num, row


def read_canonical(path: Path) -> Iterator[tuple[int, CanonicalRow]]:
    for line, row in _dict_rows(path, ",", REQUIRED_COLUMNS):
        yield line, {column: (row.get(column) or "") for column in CANONICAL_COLUMNS}


def read_rees46(path: Path) -> Iterator[tuple[int, CanonicalRow]]:
    """REES46 ``event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session``.

    The readable ``category_code`` (``electronics.smartphone``) is the category id when
    present, else the numeric ``category_id``; ``remove_from_cart`` rows are skipped.
    """
    columns = (
        "event_time",
        "event_type",
        "product_id",
        "category_id",
        "category_code",
        "price",
        "user_id",
        "user_session",
    )
    for line, row in _dict_rows(path, ",", columns):
        if row["event_type"] == "remove_from_cart":
            continue
        yield (
            line,
            {
                "timestamp": row["event_time"].removesuffix(" UTC"),
                "session_id": row["user_session"],
                "user_id": row["user_id"],
                "event": row["event_type"],
                "item_id": row["product_id"],
                "query": "",
                "category_id": row["category_code"] or row["category_id"],
                "price": row["price"],
                "quantity": "1" if row["event_type"] in ("cart", "purchase") else "",
            },
        )


def _diginetica_time(path: Path, line: int, day: str, milliseconds: str) -> str:
    try:
        start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
        return (start + timedelta(milliseconds=int(milliseconds))).isoformat()
    except ValueError as exc:
        raise ImportRowError(path, line, "eventdate", f"bad date or timeframe ({exc})") from exc


def read_diginetica(path: Path) -> Iterator[tuple[int, CanonicalRow]]:
    """CIKM Cup 2016 views (``session_id;user_id;item_id;timeframe;eventdate``) or purchases
    (``sessionId;userId;timeframe;eventdate;ordernumber;itemId``), told apart by the header.

    ``timeframe`` is milliseconds since the session began, so the timestamp is the day plus
    that offset: exact order within a session, day resolution across sessions.
    """
    with open_text(path) as handle:
        header = handle.readline().strip().split(";")
    if "itemId" in header and "ordernumber" in header:
        for line, row in _dict_rows(path, ";", ("sessionId", "userId", "timeframe", "eventdate", "itemId")):
            yield (
                line,
                _diginetica_row(
                    path,
                    line,
                    row["sessionId"],
                    row["userId"],
                    row["itemId"],
                    row["timeframe"],
                    row["eventdate"],
                    "purchase",
                ),
            )
    elif "item_id" in header:
        for line, row in _dict_rows(
            path, ";", ("session_id", "user_id", "item_id", "timeframe", "eventdate")
        ):
            yield (
                line,
                _diginetica_row(
                    path,
                    line,
                    row["session_id"],
                    row["user_id"],
                    row["item_id"],
                    row["timeframe"],
                    row["eventdate"],
                    "view",
                ),
            )
    else:
        raise ImportRowError(
            path, 1, None, "not a Diginetica views or purchases file (product-categories.csv holds no events)"
        )


def _diginetica_row(
    path: Path, line: int, session: str, user: str, item: str, timeframe: str, day: str, event: str
) -> CanonicalRow:
    return {
        "timestamp": _diginetica_time(path, line, day, timeframe),
        "session_id": session,
        "user_id": "" if user == "NA" else user,
        "event": event,
        "item_id": item,
        "query": "",
        "category_id": "",
        "price": "",
        "quantity": "1" if event == "purchase" else "",
    }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64]


def read_groceries(path: Path) -> Iterator[tuple[int, CanonicalRow]]:
    """arules Groceries baskets: ``groceries.csv`` (one basket a line) or ``groceries_long.csv``
    (``basket_id,item``). Each item bought becomes a purchase; the item id is its name as a
    slug. The data has no times: basket N is dated N minutes after 2000-01-01 (synthetic)."""
    with open_text(path) as handle:
        first = handle.readline().strip()
    if first == "basket_id,item":
        rows = (
            (line, row["basket_id"], row["item"])
            for line, row in _dict_rows(path, ",", ("basket_id", "item"))
        )
    else:

        def basket_lines() -> Iterator[tuple[int, str, str]]:
            with open_text(path) as handle:
                for number, items in enumerate(csv.reader(handle), start=1):
                    for item in items:
                        yield number, str(number), item

        rows = basket_lines()
    for line, basket, item in rows:
        if not basket.isdigit():
            raise ImportRowError(path, line, "basket_id", f"{basket!r} is not a basket number")
        yield (
            line,
            {
                "timestamp": (SYNTHETIC_ORIGIN + timedelta(minutes=int(basket))).isoformat(),
                "session_id": f"basket-{basket}",
                "user_id": "",
                "event": "purchase",
                "item_id": _slug(item),
                "query": "",
                "category_id": "",
                "price": "",
                "quantity": "1",
            },
        )


def read_movielens(path: Path) -> Iterator[tuple[int, CanonicalRow]]:
    """MovieLens ``u.data`` (``user<TAB>item<TAB>rating<TAB>unix time``): every rating is a view
    of that movie by that user (a rating says the user watched it, not that they liked it)."""
    with open_text(path) as handle:
        for line, text in enumerate(handle, start=1):
            parts = text.rstrip("\n").split("\t")
            if len(parts) != 4:
                raise ImportRowError(
                    path, line, None, "expected user, item, rating and time separated by tabs"
                )
            user, item, _rating, stamp = parts
            yield (
                line,
                {
                    "timestamp": stamp,
                    "session_id": "",
                    "user_id": user,
                    "event": "view",
                    "item_id": item,
                    "query": "",
                    "category_id": "",
                    "price": "",
                    "quantity": "",
                },
            )


def read_wands(path: Path) -> Iterator[tuple[int, CanonicalRow]]:
    """WANDS ``query_id,query,query_class``: each query is one search, its product class the
    category. No times or counts: query N is dated N minutes after 2000-01-01 (synthetic)."""
    for line, row in _dict_rows(path, ",", ("query_id", "query", "query_class")):
        if not row["query_id"].isdigit():
            raise ImportRowError(path, line, "query_id", f"{row['query_id']!r} is not a number")
        yield (
            line,
            {
                "timestamp": (SYNTHETIC_ORIGIN + timedelta(minutes=int(row["query_id"]))).isoformat(),
                "session_id": f"wands-{row['query_id']}",
                "user_id": "",
                "event": "search",
                "item_id": "",
                "query": row["query"],
                "category_id": row["query_class"],
                "price": "",
                "quantity": "",
            },
        )


FORMATS: dict[str, Reader] = {
    "canonical": read_canonical,
    "rees46": read_rees46,
    "diginetica": read_diginetica,
    "groceries": read_groceries,
    "movielens": read_movielens,
    "wands": read_wands,
}


def parse_timestamp(value: str) -> datetime:
    """ISO 8601 (naive means UTC) or Unix seconds."""
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return datetime.fromtimestamp(float(value), tz=UTC)
    parsed = parse_datetime(value.replace("Z", "+00:00"))
    if parsed is None:
        raise ValueError(f"{value!r} is neither ISO 8601 nor Unix seconds")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def validate_row(path: Path, line: int, row: CanonicalRow, source: str) -> EventRecord:
    def fail(field: str, message: str) -> ImportRowError:
        return ImportRowError(path, line, field, message)

    event = row["event"].strip()
    if event not in EventType.values:
        raise fail("event", f"unknown event {event!r}; expected one of {', '.join(EventType.values)}")
    try:
        timestamp = parse_timestamp(row["timestamp"])
    except (ValueError, OverflowError, OSError) as exc:
        raise fail("timestamp", str(exc)) from exc
    item_id = row["item_id"].strip()
    if event in ITEM_EVENTS and not item_id:
        raise fail("item_id", f"a {event!r} event needs an item id")
    for field in ("item_id", "session_id", "user_id"):
        value = row[field].strip()
        if value and not ID_PATTERN.match(value):
            raise fail(
                field, f"{value[:80]!r} is not an id (1-64 characters, no spaces or control characters)"
            )
    query = " ".join(row["query"].split())
    if event == "search" and not query:
        raise fail("query", "a 'search' event needs a query")
    if len(query) > 255:
        raise fail("query", "longer than 255 characters")
    if event == "category_view" and not row["category_id"].strip():
        raise fail("category_id", "a 'category_view' event needs a category id")
    price = None
    if row["price"].strip():
        try:
            price = Decimal(row["price"].strip())
        except InvalidOperation as exc:
            raise fail("price", f"{row['price']!r} is not a number") from exc
        if not price.is_finite() or price < 0 or price >= Decimal("1e10"):
            raise fail("price", f"{row['price']!r} is not a valid price")
    quantity = None
    if row["quantity"].strip():
        if not row["quantity"].strip().isdigit():
            raise fail("quantity", f"{row['quantity']!r} is not a whole number ≥ 0")
        quantity = int(row["quantity"])
    return EventRecord(
        event_type=event,
        timestamp=timestamp,
        session_key=row["session_id"].strip(),
        external_user_id=row["user_id"].strip(),
        item_id=item_id,
        category_id=row["category_id"].strip()[:128],
        query=query,
        price=None if price is None else price.quantize(Decimal("0.01")),
        quantity=quantity,
        source=source[:32],
        client_event_id=None,
    )


def parse_file(path: Path | str, format: str) -> list[EventRecord]:
    """Read and validate a whole file; raises ``ImportRowError`` at the first bad row."""
    path = Path(path)
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise ImportRowError(path, 0, None, "no such file")
    source = f"import:{format}"
    records = []
    seen: Counter[str] = Counter()
    try:
        for line, row in FORMATS[format](path):
            record = validate_row(path, line, row, source)
            fingerprint = "\x1f".join(
                str(v)
                for v in (
                    record.event_type,
                    record.timestamp.isoformat(),
                    record.session_key,
                    record.external_user_id,
                    record.item_id,
                    record.query,
                    record.category_id,
                    record.price,
                    record.quantity,
                )
            )
            seen[fingerprint] += 1  # identical rows in one file are distinct events
            digest = hashlib.sha1(f"{fingerprint}\x1f{seen[fingerprint]}".encode(), usedforsecurity=False)
            records.append(replace(record, client_event_id=f"import:{digest.hexdigest()}"))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ImportRowError(path, 0, None, f"unreadable file ({exc})") from exc
    return records


def import_events(
    path: Path | str,
    format: str = "canonical",
    *,
    batch_size: int = 5000,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import a whole file, or nothing of it; rows already imported are not added again."""
    return import_records(parse_file(path, format), batch_size=batch_size, progress=progress)


def import_records(
    records: Sequence[EventRecord],
    *,
    batch_size: int = 5000,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    r"""Store validated records of a past log in one transaction; known ``client_event_id``\ s
    are skipped, so importing the same records twice adds nothing."""
    added = 0
    with transaction.atomic():
        for start in range(0, len(records), batch_size):
            batch = records[start : start + batch_size]
            known = set(
                Event.objects.filter(client_event_id__in=[r.client_event_id for r in batch]).values_list(
                    "client_event_id", flat=True
                )
            )
            new = [r.to_model() for r in batch if r.client_event_id not in known]
            Event.objects.bulk_create(new, batch_size=1000, ignore_conflicts=True)
            added += len(new)
            if progress:
                progress(min(start + batch_size, len(records)), len(records))
    return ImportResult(rows=len(records), added=added)
