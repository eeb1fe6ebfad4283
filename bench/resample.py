"""Large event sets for speed benchmarks, made by resampling real REES46 shoppers (not invented data).

The real data here are small (the REES46 head sample: 13,947 events, 5,457 products), so the
speed suites need more events and a bigger catalogue than exist. ``resample_events`` builds
them from the real events alone:

- Whole shoppers are drawn with replacement (a shopper is a user, or a session without one),
  with all their sessions and events in order, so session lengths, gaps between events and
  the event-type mix (view / cart / purchase) are the real ones. Each draw becomes a new
  shopper with new user and session ids.
- Each draw is shifted in time by a random whole number of seconds within ``days`` days, so
  the events spread over weeks as a shop's log does (within a draw the real timing is kept).
- The catalogue is stretched to ``n_items`` ids by copying: every draw is assigned one of
  ``ceil(n_items / base items)`` catalogue copies, and a base item's id in copy ``c`` is
  ``(code + c * base items) mod n_items``, where ``code`` is the item's position in a fixed
  random permutation. Each copy therefore has the real popularity profile (the items a real
  shopper viewed together stay together, in the same copy); where the last copy runs past
  ``n_items`` its ids wrap onto random items of the first copy. Categories and prices stay
  those of the base item.

``describe`` gives the figures that show the shape is kept (session lengths, event mix,
popularity concentration) for the real and the resampled set side by side.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench import common

#: The real data every resampled set is drawn from.
REES46_PATH = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "rees46_oct2019_head" / "events.csv"
)
REES46_FORMAT = "rees46"
_NS = 1_000_000_000


def load_base(path: Path | str = REES46_PATH, fmt: str = REES46_FORMAT) -> pd.DataFrame:
    """The real events as a canonical frame (``common.read_events``; needs Django set up)."""
    return common.read_events(path, fmt)


def resample_events(
    base: pd.DataFrame,
    n_events: int,
    n_items: int,
    *,
    days: float = 28.0,
    seed: int = 0,
) -> pd.DataFrame:
    """A canonical frame of exactly ``n_events`` events over at most ``n_items`` item ids.

    ``base`` is a canonical frame (``common.read_events``). See the module docstring for how
    shoppers, times and items are resampled. Deterministic for a given ``seed``.
    """
    from recommendations.ml.frames import normalize_frame

    if n_events < 1 or n_items < 1:
        raise ValueError("n_events and n_items must be positive")
    rng = np.random.default_rng(seed)
    user = base["user"].to_numpy(dtype=object)
    session = base["session"].to_numpy(dtype=object)
    has_user = user != ""
    shopper_key = np.where(has_user, "u:" + user.astype(str), "s:" + session.astype(str))
    shopper = pd.factorize(shopper_key)[0]
    time = base["timestamp"].dt.as_unit("ns").array.asi8
    order = np.lexsort((time, shopper))  # shoppers in blocks, each in time order
    shopper, time = shopper[order], time[order]
    session_code = pd.factorize(session[order])[0].astype(np.int64)
    item_code, item_uniques = pd.factorize(base["item"].to_numpy(dtype=object)[order])
    n_base_items = int((item_uniques != "").sum())

    starts = np.flatnonzero(np.r_[True, shopper[1:] != shopper[:-1]])
    lengths = np.diff(np.r_[starts, len(shopper)])
    # Enough draws for n_events (with a margin), then cut to exactly n_events rows.
    n_draws = math.ceil(n_events / lengths.mean() * 1.1) + 10
    picks = rng.integers(0, len(starts), n_draws)
    while lengths[picks].sum() < n_events:
        picks = np.r_[picks, rng.integers(0, len(starts), n_draws // 10 + 10)]
    cumulative = np.cumsum(lengths[picks])
    picks = picks[: int(np.searchsorted(cumulative, n_events)) + 1]
    draw_lengths = lengths[picks]
    draw = np.repeat(np.arange(len(picks)), draw_lengths)
    first = np.repeat(starts[picks], draw_lengths)
    rows = first + np.arange(len(draw)) - np.repeat(np.cumsum(draw_lengths) - draw_lengths, draw_lengths)
    rows, draw = rows[:n_events], draw[:n_events]

    # Catalogue copies: a random permutation of the base items, one copy per draw.
    copies = max(1, math.ceil(n_items / max(n_base_items, 1)))
    permutation = np.full(len(item_uniques), -1, dtype=np.int64)  # "" (no item) stays "", no id
    real = np.flatnonzero(item_uniques != "")
    permutation[real] = rng.permutation(len(real))
    copy = rng.integers(0, copies, len(picks))[draw]
    code = permutation[item_code[rows]]
    new_item = np.where(code >= 0, (code + copy * n_base_items) % n_items + 1, 0)
    item_text = pd.Series(new_item).astype(str).to_numpy(dtype=object)
    item_text[new_item == 0] = ""

    offsets = rng.integers(0, max(int(days * 86_400), 1), len(picks)).astype(np.int64) * _NS
    new_time = time[rows] + offsets[draw]
    source = base.iloc[order[rows]].reset_index(drop=True)
    user_text = pd.Series(draw).astype(str).to_numpy(dtype=object)
    user_text[~has_user[order[rows]]] = ""
    n_sessions = int(session_code.max()) + 1 if len(session_code) else 1
    sessions = pd.Series(draw.astype(np.int64) * n_sessions + session_code[rows]).astype(str)
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(new_time, unit="ns", utc=True),
            "user": user_text,
            "session": sessions.to_numpy(dtype=object),
            "event": source["event"].to_numpy(dtype=object),
            "item": item_text,
            "category": source["category"].to_numpy(dtype=object),
            "price": source["price"].to_numpy(dtype=np.float64),
            "quantity": source["quantity"].to_numpy(dtype=np.float64),
            "query": source["query"].to_numpy(dtype=object),
        }
    )
    return normalize_frame(frame)


def describe(frame: pd.DataFrame) -> dict[str, float]:
    """Shape figures of an event frame: what resampling must keep (and the catalogue it stretches)."""
    events = len(frame)
    sessions = frame.groupby(["user", "session"], sort=False).size().to_numpy()
    items = frame.loc[frame["item"] != "", "item"].value_counts().to_numpy()
    top = max(1, round(len(items) * 0.01))
    mix = frame["event"].value_counts(normalize=True)
    return {
        "events": float(events),
        "sessions": float(len(sessions)),
        "mean_session_events": float(sessions.mean()) if len(sessions) else 0.0,
        "median_session_events": float(np.median(sessions)) if len(sessions) else 0.0,
        "single_event_sessions": float((sessions == 1).mean()) if len(sessions) else 0.0,
        "items": float(len(items)),
        "top1pct_item_share": float(items[:top].sum() / items.sum()) if len(items) else 0.0,
        "view": float(mix.get("view", 0.0)),
        "cart": float(mix.get("cart", 0.0)),
        "purchase": float(mix.get("purchase", 0.0)),
        "days": float((frame["timestamp"].max() - frame["timestamp"].min()).total_seconds() / 86_400),
    }
