"""Cases: what one prediction sees, as padded numpy arrays, for training and evaluation alike.

A case is a shopper's history (the last ``L`` item events before a moment, most recent
last) and the item they interacted with next. Training cases come from every position of
every shopper's timeline; evaluation cases from every prefix of every later session, with
the user's training-period history in front when the user is known (DESIGN.md). Both are
built with the same vectorized gather, so a model featurizes one structure everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..extras import lazy, require

np = require("ml", "numpy")
#: pandas only where frames are handled: serving imports this module without it.
pd = lazy("ml", "pandas")

#: Event types that name an item, and their index in the model's type embedding (0 = padding).
TYPE_INDEX = {"view": 1, "cart": 2, "purchase": 3, "click": 4}
N_TYPES = len(TYPE_INDEX) + 1


@dataclass
class CaseBatch:
    """``n`` cases with histories of length ``L`` (left-padded with item 0)."""

    items: np.ndarray  # int32 [n, L] item index 1..N, 0 = padding or unknown item
    types: np.ndarray  # int8 [n, L] TYPE_INDEX value, 0 = padding
    times: np.ndarray  # float64 [n, L] Unix seconds of each history event (0 for padding)
    in_session: np.ndarray  # bool [n, L] the event belongs to the case's current session
    now: np.ndarray  # float64 [n] Unix seconds of the moment of prediction
    targets: np.ndarray  # int32 [n] the next item (0 when not known, as in serving)
    target_types: np.ndarray  # int8 [n]
    weights: np.ndarray  # float32 [n] sample weight (event type x recency) for training
    is_new: np.ndarray  # bool [n] target not seen earlier in the current session

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, index: np.ndarray | slice) -> CaseBatch:
        return CaseBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @property
    def history_length(self) -> int:
        return self.items.shape[1]


def _gather(
    group: np.ndarray,
    items: np.ndarray,
    types: np.ndarray,
    times: np.ndarray,
    sessions: np.ndarray,
    case_rows: np.ndarray,
    length: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Histories of ``case_rows``: up to ``length`` earlier rows of the same group.

    Arrays are sorted by group, then time. No Python loop per event: one fancy-index gather.
    """
    n = len(items)
    if n == 0 or len(case_rows) == 0:
        empty = np.zeros((len(case_rows), length))
        return empty.astype(np.int32), empty.astype(np.int8), empty, empty.astype(bool)
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    new_group[1:] = group[1:] != group[:-1]
    starts = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    index = case_rows[:, None] + np.arange(-length, 0)[None, :]
    valid = index >= starts[case_rows][:, None]
    index = np.where(valid, index, 0)
    hist_items = np.where(valid, items[index], 0).astype(np.int32)
    valid &= hist_items > 0
    hist_types = np.where(valid, types[index], 0).astype(np.int8)
    hist_times = np.where(valid, times[index], 0.0)
    in_session = (
        valid & (sessions[index] == sessions[case_rows][:, None]) & (sessions[case_rows][:, None] >= 0)
    )
    return hist_items, hist_types, hist_times, in_session


def unix_seconds(timestamps: pd.Series) -> np.ndarray:
    """Unix seconds as float64, whatever the resolution of the datetime column."""
    if not len(timestamps):
        return np.zeros(0)
    return timestamps.dt.as_unit("ns").astype("int64").to_numpy() / 1e9


def _item_events(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["event"].isin(TYPE_INDEX.keys()) & (frame["item"] != "")]


def _first_in_session(frame: pd.DataFrame, session_column: str, item_column: str = "item") -> np.ndarray:
    """Whether each row's item appears for the first time in its session (rows in time order)."""
    return ~frame.duplicated([session_column, item_column]).to_numpy()


@dataclass(frozen=True)
class ItemTimeline:
    """A frame's item events (known item, item event type) as integer columns, ordered by
    shopper, visit and time: what the priors and item-kNN count pairs along."""

    shopper: np.ndarray  # int64 code of the shopper (codes follow the ids' sorted order)
    visit: np.ndarray  # int64, one per (shopper, session), increasing along the timeline
    item: np.ndarray  # int64 item index
    time: np.ndarray  # int64 nanoseconds
    row: np.ndarray  # int64 position of each event in the frame (its other columns)


def item_timeline(frame: pd.DataFrame) -> ItemTimeline:
    """``ItemTimeline`` of ``frame``: the order of sorting the rows by shopper, session and
    time (stable), reached by sorting integer codes, so no text column is copied or sorted
    (at 10M events the sorted text copies added 2 GB to a retrain's peak, each time)."""
    keep = (frame["item_idx"].to_numpy() > 0) & (frame["type_idx"].to_numpy() > 0)
    shopper = pd.factorize(frame["shopper"], sort=True)[0][keep].astype(np.int64)
    session = pd.factorize(frame["session"], sort=True)[0][keep].astype(np.int64)
    time = frame["timestamp"].dt.as_unit("ns").array.asi8[keep]
    order = np.lexsort((time, session, shopper))
    shopper, session = shopper[order], session[order]
    starts = np.r_[True, (shopper[1:] != shopper[:-1]) | (session[1:] != session[:-1])]
    row = np.flatnonzero(keep)[order]
    return ItemTimeline(
        shopper=shopper,
        visit=np.cumsum(starts) - 1,
        item=frame["item_idx"].to_numpy(np.int64)[row],
        time=time[order],
        row=row,
    )


def training_cases(frame: pd.DataFrame, max_history: int = 20, newest: int | None = None) -> CaseBatch:
    """Every position of every shopper's timeline, predicted from what came before it.

    ``frame`` is a transformed frame (see ``preprocessing``): columns ``timestamp``,
    ``shopper``, ``session``, ``event``, ``item``, ``item_idx``, ``type_idx`` and ``weight``.
    ``newest``: only the latest ``newest`` positions by time become cases (their histories
    still reach back into older events), so a big log costs a bounded training.
    """
    # Each shopper's events in time order, ties in the frame's order (a stable sort by shopper
    # and time), from the integer timeline: no text column is sorted, copied or joined.
    timeline = item_timeline(frame)
    order = np.lexsort((timeline.row, timeline.time, timeline.shopper))
    rows = timeline.row[order]
    group = pd.factorize(timeline.shopper[order])[0]
    sessions = timeline.visit[order]
    positions = np.arange(len(rows))
    if len(rows):
        first_of_group = np.r_[True, group[1:] != group[:-1]]
        case_rows = positions[~first_of_group]
    else:
        case_rows = positions
    items = timeline.item[order].astype(np.int32)
    types = frame["type_idx"].to_numpy(np.int8)[rows]
    times = timeline.time[order] / 1e9  # as unix_seconds
    if newest is not None and len(case_rows) > newest:
        latest = np.argsort(times[case_rows], kind="stable")[len(case_rows) - max(int(newest), 0) :]
        case_rows = np.sort(case_rows[latest])
    hist = _gather(group, items, types, times, sessions, case_rows, max_history)
    new = _first_in_session(pd.DataFrame({"session": sessions, "item": items}), "session", "item")
    return CaseBatch(
        *hist,
        now=times[case_rows],
        targets=items[case_rows],
        target_types=types[case_rows],
        weights=frame["weight"].to_numpy(np.float32)[rows[case_rows]],
        is_new=new[case_rows],
    )


#: Why a test prefix is not a case, as ``EvaluationCases.skipped`` counts them.
SKIPPED_UNKNOWN = "next item unknown: no training events and not in the catalogue"
SKIPPED_COLD_REPEAT = "next item a cold item already seen in the session (in no variant)"


@dataclass(frozen=True)
class EvaluationCases:
    cases: CaseBatch
    n_skipped: int  # prefixes whose next item is unknown (never seen in training, not in the catalogue)
    n_sessions: int
    #: bool per case: the next item had no training events (known from the catalogue only).
    is_cold: np.ndarray | None = None
    #: reason -> prefixes left out of every variant.
    skipped: dict[str, int] | None = None


def evaluation_cases(train: pd.DataFrame, test: pd.DataFrame, max_history: int = 50) -> EvaluationCases:
    """Every prefix of every test session predicts the session's next item.

    Both frames are transformed with the same fitted preprocessor (unknown test items have
    ``item_idx`` 0). A known user's training-period events come first in the history.
    """
    test = _item_events(test).copy()
    for column in ("user", "session", "item"):  # text (transformed frames hold categoricals)
        test[column] = test[column].astype(str)
    test["group"] = np.where(test["session"] != "", "s:" + test["session"], "u:" + test["user"])
    test = test[test["group"] != "u:"].sort_values(["group", "timestamp"], kind="stable")
    test["in_session"] = True

    users = test.loc[test["user"] != "", ["user", "group"]].drop_duplicates()
    history = _item_events(train)
    history = history[(history["item_idx"] > 0) & history["user"].isin(users["user"])]
    history = history.sort_values("timestamp", kind="stable").groupby("user", sort=False).tail(max_history)
    history = history.merge(users, on="user")
    history["in_session"] = False

    columns = ["group", "in_session", "timestamp", "item", "item_idx", "type_idx"]
    combined = pd.concat([history[columns], test[columns]], ignore_index=True)
    combined = combined.sort_values(["group", "in_session", "timestamp"], kind="stable").reset_index(
        drop=True
    )
    group = pd.factorize(combined["group"])[0]
    in_session = combined["in_session"].to_numpy(bool)
    sessions = np.where(in_session, group, -1)
    positions = np.arange(len(combined))
    session_rank = combined[in_session].groupby("group", sort=False).cumcount()
    is_prefix_case = np.zeros(len(combined), dtype=bool)
    is_prefix_case[session_rank.index.to_numpy()] = session_rank.to_numpy() >= 1
    items = combined["item_idx"].to_numpy(np.int32)
    known = items > 0
    case_rows = positions[is_prefix_case & known]
    n_skipped = int((is_prefix_case & ~known).sum())

    new = np.ones(len(combined), dtype=bool)
    session_rows = positions[in_session]
    new[session_rows] = _first_in_session(combined.iloc[session_rows], "group")

    times = unix_seconds(combined["timestamp"])
    types = combined["type_idx"].to_numpy(np.int8)
    hist = _gather(group, items, types, times, sessions, case_rows, max_history)
    cases = CaseBatch(
        *hist,
        now=times[case_rows],
        targets=items[case_rows],
        target_types=types[case_rows],
        weights=np.ones(len(case_rows), dtype=np.float32),
        is_new=new[case_rows],
    )
    trained = np.zeros(int(max(items.max(initial=0), train["item_idx"].max() if len(train) else 0)) + 1, bool)
    trained[_item_events(train)["item_idx"].to_numpy(np.int64)] = True
    is_cold = ~trained[cases.targets]
    skipped = {SKIPPED_UNKNOWN: n_skipped, SKIPPED_COLD_REPEAT: int((is_cold & ~cases.is_new).sum())}
    return EvaluationCases(
        cases=cases,
        n_skipped=n_skipped,
        n_sessions=int(test["group"].nunique()),
        is_cold=is_cold,
        skipped=skipped,
    )
