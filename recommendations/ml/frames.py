"""Events as a pandas DataFrame in one canonical layout, from files or records.

Columns (``FRAME_COLUMNS``): ``timestamp`` (datetime64[ns, UTC]), ``user`` (str, "" when
unknown), ``session`` (str), ``event`` (str), ``item`` (str, "" for searches and category
views), ``category`` (str), ``price`` (float, NaN when unknown), ``quantity`` (float),
``query`` (str). Files are read by capture's importers (``parse_file``), so they get the
same validation and error messages as an import; ``frame_from_records`` turns those records
(anything with ``EventRecord``'s attributes) into the frame, without touching the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..extras import require

pd = require("ml", "pandas")
np = require("ml", "numpy")

FRAME_COLUMNS = ("timestamp", "user", "session", "event", "item", "category", "price", "quantity", "query")


def frame_from_records(records: Iterable[Any]) -> pd.DataFrame:
    """The canonical frame of event records (``EventRecord`` or anything with its attributes)."""
    rows = [
        (
            r.timestamp,
            str(r.user_id) if r.user_id is not None else r.external_user_id,
            r.session_key,
            r.event_type,
            r.item_id,
            r.category_id,
            np.nan if r.price is None else float(r.price),
            np.nan if r.quantity is None else float(r.quantity),
            r.query,
        )
        for r in records
    ]
    return normalize_frame(pd.DataFrame(rows, columns=list(FRAME_COLUMNS)))


def normalize_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Give any frame with the canonical columns the canonical dtypes, sorted by time."""
    frame = frame.copy()
    for column in FRAME_COLUMNS:
        if column not in frame:
            frame[column] = np.nan if column in ("price", "quantity") else ""
    stamps = frame["timestamp"]
    if pd.api.types.is_numeric_dtype(stamps):  # Unix seconds, as the canonical CSV allows
        stamps = pd.to_datetime(stamps, unit="s", utc=True)
    frame["timestamp"] = pd.to_datetime(stamps, utc=True).dt.as_unit("ns")
    for column in ("user", "session", "event", "item", "category", "query"):
        frame[column] = _as_text(frame[column])
    for column in ("price", "quantity"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame[list(FRAME_COLUMNS)].sort_values("timestamp", kind="stable").reset_index(drop=True)


def _as_text(values: pd.Series) -> pd.Series:
    """Ids as text: whole floats (7.0, from a column with gaps) read as "7", missing as ""."""
    if pd.api.types.is_float_dtype(values):
        finite = values.dropna()
        if (finite == finite.round()).all():
            values = values.astype("Int64")
    return values.astype("string").fillna("").astype(str)


def split_at(frame: pd.DataFrame, timestamp: str | pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events before ``timestamp``, events at or after it): a split by time, never at random."""
    cut = pd.Timestamp(timestamp)
    cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut.tz_convert("UTC")
    before = frame["timestamp"] < cut
    return frame[before].reset_index(drop=True), frame[~before].reset_index(drop=True)


def cap_shopper_share(frame: pd.DataFrame, share: float, minimum: int = 20) -> pd.DataFrame:
    """At most ``share`` of the rows (and never fewer than ``minimum``) from any one shopper
    (the user, else the session): their earliest ones. A holdout that one shopper fills is
    judged by that shopper; with this, no single one can decide whether a model ships."""
    if frame.empty or share >= 1:
        return frame
    shopper = frame["user"].where(frame["user"] != "", "s:" + frame["session"].astype(str))
    allowed = max(int(share * len(frame)), minimum)
    keep = frame.assign(_shopper=shopper).groupby("_shopper", sort=False).cumcount() < allowed
    return frame[keep.to_numpy()].reset_index(drop=True)
