"""Events as a pandas DataFrame in one canonical layout, from files or records.

Columns (``FRAME_COLUMNS``): ``timestamp`` (datetime64[ns, UTC]), ``user`` (str, "" when
unknown), ``session`` (str), ``event`` (str), ``item`` (str, "" for searches and category
views), ``category`` (str), ``price`` (float, NaN when unknown), ``quantity`` (float),
``query`` (str). Files are read by capture's importers (``parse_file``), so they get the
same validation and error messages as an import; ``frame_from_records`` turns those records
(anything with ``EventRecord``'s attributes) into the frame, without touching the database.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Iterable
from typing import Any

from ..extras import require

pd = require("ml", "pandas")
np = require("ml", "numpy")

FRAME_COLUMNS = ("timestamp", "user", "session", "event", "item", "category", "price", "quantity", "query")
#: A catalogue: one row per product. ``category`` is its category (a path "a.b.c" where the
#: shop has one), ``added_at`` when it entered the catalogue (NaT: unknown).
CATALOGUE_COLUMNS = ("item", "category", "brand", "price", "name", "added_at")


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
    """Give any frame with the canonical columns the canonical dtypes, sorted by time.

    Columns that already have their dtype are kept as they are, and a frame already in time
    order is not sorted again: a 10M-event frame is not copied three times over on its way in.
    """
    frame = frame.copy(deep=False)  # columns are replaced below, never written into
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
    frame = frame[list(FRAME_COLUMNS)]
    if not frame["timestamp"].is_monotonic_increasing:
        frame = frame.sort_values("timestamp", kind="stable")
    return frame.reset_index(drop=True)


def _as_text(values: pd.Series) -> pd.Series:
    """Ids as text: whole floats (7.0, from a column with gaps) read as "7", missing as ""."""
    if values.dtype == "str" and not values.hasnans:  # already text (pandas 3), nothing missing
        return values
    if pd.api.types.is_float_dtype(values):
        finite = values.dropna()
        if (finite == finite.round()).all():
            values = values.astype("Int64")
    return values.astype("string").fillna("").astype(str)


def release_unused_memory() -> None:
    """Give the memory the allocators keep from freed buffers back to the system.

    Text columns live in Arrow buffers; Arrow's allocator (mimalloc) keeps what a parse or a
    string operation freed for reuse: after reading 10M events it held 2.2 GB that no frame
    used. numpy's arrays come from C's malloc, and glibc's keeps freed arrays of up to 32 MB
    in its heap (its threshold for giving them back grows with the arrays freed): 500 MB
    after preprocessing 3M events. Each later step of a retrain carried both; this is called
    between the steps.
    """
    try:
        import pyarrow
    except ImportError:  # pandas without pyarrow keeps text in Python objects
        pass
    else:
        pyarrow.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl)."""
    name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None


def split_at(frame: pd.DataFrame, timestamp: str | pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events before ``timestamp``, events at or after it): a split by time, never at random."""
    cut = pd.Timestamp(timestamp)
    cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut.tz_convert("UTC")
    times = frame["timestamp"]
    if times.is_monotonic_increasing:  # canonical frames are in time order: two slices, no copy
        position = int(times.searchsorted(cut, side="left"))
        return frame.iloc[:position].reset_index(drop=True), frame.iloc[position:].reset_index(drop=True)
    before = times < cut
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


def sample_shoppers(frame: pd.DataFrame, most: int | None) -> pd.DataFrame:
    """Every row of at most ``most`` shoppers (the user, else the session), the rest left out.

    Shoppers are picked by a stable hash of their id, so two retrains sample alike and a
    run repeats exactly; whole shoppers are kept, so each session's prefixes stay intact.
    """
    if frame.empty or most is None:
        return frame
    shopper = frame["user"].where(frame["user"] != "", "s:" + frame["session"].astype(str))
    codes, names = pd.factorize(shopper)
    if len(names) <= most:
        return frame
    hashes = pd.util.hash_pandas_object(pd.Series(names), index=False).to_numpy()
    chosen = np.zeros(len(names), bool)
    chosen[np.argsort(hashes, kind="stable")[: max(int(most), 0)]] = True
    return frame[chosen[codes]].reset_index(drop=True)


def normalize_catalogue(catalogue: pd.DataFrame) -> pd.DataFrame:
    """Canonical dtypes for a catalogue; one row per item (the last one given wins)."""
    catalogue = catalogue.copy()
    for column in CATALOGUE_COLUMNS:
        if column not in catalogue:
            catalogue[column] = pd.NaT if column == "added_at" else (np.nan if column == "price" else "")
    for column in ("item", "category", "brand", "name"):
        catalogue[column] = _as_text(catalogue[column])
    catalogue["price"] = pd.to_numeric(catalogue["price"], errors="coerce").astype("float64")
    catalogue["added_at"] = pd.to_datetime(catalogue["added_at"], utc=True, errors="coerce").dt.as_unit("ns")
    catalogue = catalogue[catalogue["item"] != ""]
    return catalogue[list(CATALOGUE_COLUMNS)].drop_duplicates("item", keep="last").reset_index(drop=True)


def catalogue_from_events(*frames: pd.DataFrame) -> pd.DataFrame:
    """What event files say of each item: its latest category, median price, first event.

    The ``added_at`` of an item is its first event in these frames, so an evaluation's
    catalogue holds an item from the moment the log first shows it, never earlier.
    """
    events = pd.concat([frame[frame["item"] != ""] for frame in frames], ignore_index=True)
    events = events.sort_values("timestamp", kind="stable")
    grouped = events.groupby("item", sort=True)
    named = events[events["category"] != ""].groupby("item", sort=True)["category"].last()
    catalogue = pd.DataFrame(
        {
            "price": grouped["price"].median(),
            "added_at": grouped["timestamp"].min(),
        }
    )
    catalogue["category"] = named.reindex(catalogue.index).fillna("")
    return normalize_catalogue(catalogue.rename_axis("item").reset_index())


def merge_catalogues(events: pd.DataFrame, catalogue: pd.DataFrame | None) -> pd.DataFrame:
    """The catalogue file's rows first; what the events say fills its gaps and adds items."""
    events = normalize_catalogue(events)
    if catalogue is None:
        return events
    given = normalize_catalogue(catalogue).set_index("item")
    seen = events.set_index("item")
    merged = given.combine_first(seen)
    for column in ("category", "brand", "name"):
        gaps = merged[column].isna() | (merged[column] == "")
        merged.loc[gaps, column] = seen[column].reindex(merged.index[gaps])
    return normalize_catalogue(merged.rename_axis("item").reset_index())
