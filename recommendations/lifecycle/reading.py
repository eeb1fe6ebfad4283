"""Stored events as a DataFrame: the one place where training reads the database.

``Event`` rows (written by the recorders) become the canonical events frame of
``ml.frames`` here, so everything after this module (preprocessing, training, evaluation)
is plain pandas and numpy and runs the same on a file, a test frame or the live table.
On PostgreSQL the rows leave the database by ``COPY ... TO STDOUT`` as CSV into a temporary
file, which Arrow's CSV reader parses into typed columns (``_copy_frame``): no Python object per
row, and text stays in Arrow buffers, where pandas keeps it. Elsewhere rows are streamed in
chunks of ``values_list`` tuples, so a large table never sits in memory as model instances.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from itertools import islice

from django.db import connections
from django.db.models import QuerySet

from ..extras import require
from ..ml.frames import FRAME_COLUMNS, normalize_frame, release_unused_memory
from ..models import Event

pd = require("ml", "pandas")
np = require("ml", "numpy")
pa = require("ml", "pyarrow")
pa_csv = require("ml", "pyarrow.csv")
pa_compute = require("ml", "pyarrow.compute")

_FIELDS = (
    "timestamp",
    "user_id",
    "external_user_id",
    "session_key",
    "event_type",
    "item_id",
    "category_id",
    "price",
    "quantity",
    "query",
)


def _as_float(values: tuple) -> np.ndarray:
    return np.array([np.nan if value is None else float(value) for value in values], dtype=np.float64)


def _as_datetime(values: tuple) -> pd.DatetimeIndex:
    try:
        return pd.DatetimeIndex(values)  # Django gives UTC datetimes: the fast path
    except (TypeError, ValueError):
        return pd.to_datetime(list(values), utc=True)  # mixed offsets or naive values (USE_TZ=False)


def _chunk_frame(rows: list[tuple]) -> pd.DataFrame:
    """One chunk of ``values_list`` rows as canonical columns (Decimal and None handled here)."""
    (timestamp, user_id, external, session, event, item, category, price, quantity, query) = zip(
        *rows, strict=True
    )
    user = [
        external_id if uid is None else str(uid) for uid, external_id in zip(user_id, external, strict=True)
    ]
    return pd.DataFrame(
        {
            "timestamp": _as_datetime(timestamp),
            "user": user,
            "session": list(session),
            "event": list(event),
            "item": list(item),
            "category": list(category),
            "price": _as_float(price),
            "quantity": _as_float(quantity),
            "query": list(query),
        },
        columns=list(FRAME_COLUMNS),
    )


def events_frame(
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    queryset: QuerySet[Event] | None = None,
    *,
    chunk_size: int = 20_000,
) -> pd.DataFrame:
    """Events with ``since <= timestamp < until`` as the canonical frame, oldest first.

    ``queryset`` narrows the rows further (a shop, a source); the default is every event.
    A signed-in user is ``str(user_id)``; an imported log's user is its external id.
    """
    events = Event.objects.all() if queryset is None else queryset
    if since is not None:
        events = events.filter(timestamp__gte=since)
    if until is not None:
        events = events.filter(timestamp__lt=until)
    # In time order from the database (ties keep their insertion order), so the frame is never
    # reordered here: sorting 10M rows in pandas copied every text column (1 GB) at the peak.
    ordered = events.order_by("timestamp", "pk").values_list(*_FIELDS)
    if connections[ordered.db].vendor == "postgresql":
        frame = _copy_frame(ordered)
        release_unused_memory()
        return frame
    return _chunked_frame(ordered, chunk_size)


def _chunked_frame(ordered: QuerySet, chunk_size: int) -> pd.DataFrame:
    """The rows of a ``values_list(*_FIELDS)`` queryset, converted chunk by chunk."""
    rows = ordered.iterator(chunk_size=chunk_size)
    chunks = []
    while chunk := list(islice(rows, chunk_size)):
        chunks.append(_chunk_frame(chunk))
    if not chunks:
        return normalize_frame(pd.DataFrame(columns=list(FRAME_COLUMNS)))
    return normalize_frame(pd.concat(chunks, ignore_index=True))


def _copy_frame(rows: QuerySet) -> pd.DataFrame:
    """The rows of a ``values_list(*_FIELDS)`` queryset through PostgreSQL's COPY: the server
    writes CSV into a temporary file, and Arrow's CSV reader parses it straight into typed,
    columnar buffers (text included), which pandas then uses as they are: no Python object per
    row or per string, so 10M events take about a quarter of the memory object columns would."""
    sql, params = rows.query.sql_with_params()
    connection = connections[rows.db]
    with tempfile.TemporaryFile() as buffer:
        with connection.cursor() as cursor:
            statement = f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)"
            with cursor.cursor.copy(statement, params) as copy:  # psycopg 3
                for block in copy:
                    buffer.write(block)
        if buffer.tell() == 0:  # no rows: Arrow reads an empty file as an error
            return normalize_frame(pd.DataFrame(columns=list(FRAME_COLUMNS)))
        buffer.seek(0)
        table = _read_csv(buffer)
    user_id = table["user_id"]
    user = pa_compute.if_else(
        pa_compute.is_null(user_id), table["external_user_id"], pa_compute.cast(user_id, pa.large_string())
    )
    columns = {
        "timestamp": table["timestamp"],
        "user": user,
        "session": table["session_key"],
        "event": table["event_type"],
        "item": table["item_id"],
        "category": table["category_id"],
        "price": table["price"],
        "quantity": table["quantity"],
        "query": table["query"],
    }
    frame = pa.table(columns).to_pandas(split_blocks=True, self_destruct=True)
    return normalize_frame(frame)


def _read_csv(buffer) -> pa.Table:
    """The COPY's CSV as an Arrow table with the columns' own types."""
    # Text columns are NOT NULL (empty is ""): an empty field is NULL only in the numeric ones.
    types = dict.fromkeys(_FIELDS, pa.large_string())
    types.update(
        timestamp=pa.timestamp("us", tz="UTC"), user_id=pa.int64(), price=pa.float64(), quantity=pa.float64()
    )
    return pa_csv.read_csv(
        buffer,
        read_options=pa_csv.ReadOptions(column_names=list(_FIELDS)),
        # A shopper's query may hold a newline: blocks must be cut outside quoted values.
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types=types,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            null_values=[""],
        ),
    )
