"""Preprocessing: each cleaning rule, vocabularies, item features, weights, JSON round trip, speed.

Frames are crafted in memory; only the last test (``events_frame``) touches the database.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommendations.ml import frames
from recommendations.ml.frames import FRAME_COLUMNS, normalize_frame
from recommendations.ml.preprocessing import NotFittedError, Preprocessor
from recommendations.models import Event

ROOT = Path(__file__).resolve().parent.parent

T0 = pd.Timestamp("2024-03-01T10:00:00Z")


def ev(seconds: float = 0.0, **fields) -> dict:
    """One event ``seconds`` after T0; every field has a plain default."""
    row = {
        "timestamp": T0 + pd.Timedelta(seconds=seconds),
        "user": "",
        "session": "s1",
        "event": "view",
        "item": "1",
        "category": "",
        "price": np.nan,
        "quantity": np.nan,
        "query": "",
    }
    row.update(fields)
    return row


def frame(rows: list[dict]) -> pd.DataFrame:
    return normalize_frame(pd.DataFrame(rows, columns=list(FRAME_COLUMNS)))


def synthetic_events(
    n_events: int, n_shoppers: int, n_items: int, seed: int = 0, mean_session: float = 4.0
) -> pd.DataFrame:
    """A realistic-looking log: Zipf item popularity, 95/3/2 view/cart/purchase, geometric sessions."""
    rng = np.random.default_rng(seed)
    lengths = rng.geometric(1.0 / mean_session, size=int(n_events / mean_session * 1.2) + 10)
    n_sessions = int(np.searchsorted(np.cumsum(lengths), n_events)) + 1
    session = np.repeat(np.arange(n_sessions), lengths[:n_sessions])[:n_events]
    shopper = rng.integers(0, n_shoppers, n_sessions)
    start = rng.uniform(0, 30 * 86_400, n_sessions)
    gaps = rng.exponential(40.0, n_events)
    gaps[np.r_[True, session[1:] != session[:-1]]] = 0.0
    offset = np.cumsum(gaps)
    first = np.r_[0, np.flatnonzero(session[1:] != session[:-1]) + 1]
    offset -= np.repeat(offset[first], np.diff(np.r_[first, n_events]))
    seconds = start[session] + offset

    ranks = np.arange(1, n_items + 1)
    popularity = 1.0 / ranks
    item = rng.choice(n_items, size=n_events, p=popularity / popularity.sum())
    item_ids = np.array([f"p{k}" for k in range(n_items)], dtype=object)
    categories = np.array([f"c{k % 300}" for k in range(n_items)], dtype=object)
    prices = np.round(rng.lognormal(3.5, 1.0, n_items), 2)
    users = np.array([f"{k}" if k % 2 else "" for k in range(n_shoppers)], dtype=object)
    events = rng.choice(np.array(["view", "cart", "purchase"], dtype=object), n_events, p=[0.95, 0.03, 0.02])
    data = pd.DataFrame(
        {
            "timestamp": pd.to_datetime((T0.value + seconds * 1e9).astype(np.int64), utc=True),
            "user": users[shopper[session]],
            "session": np.char.add("v", session.astype(str)).astype(object),
            "event": events,
            "item": item_ids[item],
            "category": categories[item],
            "price": prices[item],
            "quantity": np.where(events == "view", np.nan, 1.0),
            "query": "",
        }
    )
    return normalize_frame(data)


# ----------------------------------------------------------------- rule 1: repeated events


def test_identical_events_within_dedupe_seconds_collapse_to_the_first():
    rows = [
        ev(0.0),
        ev(1.0),
        ev(2.0),  # three identical views within 2 s -> one
        ev(12.0),  # the same view 10 s after the previous one: kept
        ev(1.5, item="2"),  # a different item: kept
        ev(1.0, event="cart"),  # a different event type: kept
        ev(0.5, session="s2"),  # another shopper: kept
        ev(3.0, event="search", item="", query="shoes"),
        ev(4.0, event="search", item="", query="shoes"),  # same search: dropped
        ev(4.5, event="search", item="", query="boots"),  # another query: kept
    ]
    cleaned = Preprocessor().clean(frame(rows))
    assert len(cleaned) == 7
    mine = cleaned[(cleaned["session"] == "s1") & (cleaned["event"] == "view") & (cleaned["item"] == "1")]
    assert list((mine["timestamp"] - T0).dt.total_seconds()) == [0.0, 12.0]
    assert sorted(cleaned.loc[cleaned["event"] == "search", "query"]) == ["boots", "shoes"]
    assert len(Preprocessor(dedupe_seconds=0.5).clean(frame(rows))) == 10


# ----------------------------------------------------------------- rule 2: robots


def test_robot_like_sessions_are_dropped_and_humans_kept():
    many = [ev(2.0 * i, session="many", item=str(i)) for i in range(600)]  # > 500 events, human pace
    fast = [ev(0.1 * i, session="fast", item=str(i)) for i in range(30)]  # 10 per second
    human = [ev(15.0 * i, session="human", item=str(i)) for i in range(40)]
    short_fast = [ev(0.1 * i, session="quick", item=str(i)) for i in range(10)]  # too few to judge
    cleaned = Preprocessor().clean(frame(many + fast + human + short_fast))
    assert sorted(cleaned["session"].unique()) == ["human", "quick"]
    assert (cleaned["session"] == "human").sum() == 40
    assert (
        len(Preprocessor(max_session_events=1000, min_seconds_per_event=0.05).clean(frame(many + fast)))
        == 630
    )


def test_a_loyal_visitor_over_many_visits_is_not_a_robot():
    """The session key is a visitor id that lives for weeks: the limit is per visit."""
    visits = [
        ev(86_400.0 * day + 20.0 * i, session="loyal", item=str(i)) for day in range(10) for i in range(100)
    ]
    assert len(Preprocessor().clean(frame(visits))) == 1000


# ----------------------------------------------------------------- rule 3: min counts


def test_min_counts_drop_rare_items_and_quiet_shoppers_in_fit_only():
    rows = [ev(10.0 * i, session="a", item="popular") for i in range(3)]
    rows += [ev(100.0, session="a", item="rare")]
    rows += [
        ev(200.0, session="b", item="popular"),
        ev(210.0, session="b", event="search", item="", query="x"),
    ]
    rows += [ev(300.0, session="c", item="popular")]  # one event only
    events = frame(rows)
    preprocessor = Preprocessor(min_item_count=2, min_shopper_events=2, dedupe_seconds=0)
    cleaned = preprocessor.clean(events)
    assert "rare" not in set(cleaned["item"])
    assert set(cleaned["session"]) == {"a", "b"}

    preprocessor.fit(events)
    assert list(preprocessor.item_ids_) == ["popular"]
    assert preprocessor.n_events_ == len(cleaned) == 5
    out = preprocessor.transform(events)  # later data is never thinned by counts
    assert len(out) == 7
    assert out.loc[out["item"] == "rare", "item_idx"].tolist() == [0]


# ----------------------------------------------------------------- rules 4 and 5


def test_inactive_items_are_dropped_but_searches_survive():
    rows = [
        ev(0.0, item="sold"),
        ev(10.0, item="gone"),
        ev(20.0, event="search", item="", query="shoes"),
        ev(30.0, event="category_view", item="", category="c1"),
    ]
    cleaned = Preprocessor().clean(frame(rows), active_items=["sold"])
    assert list(cleaned["event"]) == ["view", "search", "category_view"]
    assert "gone" not in set(cleaned["item"])
    preprocessor = Preprocessor().fit(frame(rows), active_items={"sold"})
    assert list(preprocessor.item_ids_) == ["sold"]
    assert len(Preprocessor().clean(frame(rows), active_items=[])) == 2
    assert Preprocessor().clean(frame([ev(0.0, item="7")]), active_items=[7])["item"].tolist() == ["7"]


def test_events_without_an_item_are_kept_only_for_search_and_category_view():
    rows = [
        ev(0.0, item=""),  # a view of nothing
        ev(1.0, event="cart", item=""),
        ev(2.0, event="impression", item=""),
        ev(3.0, event="search", item="", query="red"),
        ev(4.0, event="category_view", item="", category="shoes"),
        ev(5.0, session="", user="", item="9"),  # neither user nor session: nobody to attribute it to
    ]
    cleaned = Preprocessor().clean(frame(rows))
    assert list(cleaned["event"]) == ["search", "category_view"]


# ----------------------------------------------------------------- vocabularies and features


def test_item_indices_are_1_to_n_and_0_for_unknown_items_in_later_data():
    train = frame(
        [ev(10.0 * i, item="b", session=f"s{i}") for i in range(3)]
        + [ev(100.0 + 10 * i, item="a", session=f"t{i}") for i in range(3)]
        + [ev(200.0, item="c")]
    )
    preprocessor = Preprocessor().fit(train)
    assert preprocessor.n_items_ == 3
    assert list(preprocessor.item_ids_) == ["a", "b", "c"]  # most popular first, ties by id
    assert preprocessor.item_index_ == {"a": 1, "b": 2, "c": 3}
    assert preprocessor.item_popularity_.tolist() == [0.0, 3.0, 3.0, 1.0]
    assert preprocessor.train_end_ == T0 + pd.Timedelta(seconds=200)

    later = frame(
        [
            ev(1000.0, item="c", user="42"),
            ev(1010.0, item="new", user="42"),
            ev(1020.0, event="search", item="", query="q", user="42"),
            ev(1030.0, item="a", session="anon"),
        ]
    )
    out = preprocessor.transform(later)
    assert out["item_idx"].tolist() == [3, 0, 0, 1]
    assert out["shopper"].tolist() == ["u:42", "u:42", "u:42", "s:anon"]
    assert out["type_idx"].tolist() == [1, 1, 0, 1]
    assert out["item_idx"].dtype == np.int32
    assert out["type_idx"].dtype == np.int8
    assert out["weight"].dtype == np.float32
    assert str(out["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert out["timestamp"].is_monotonic_increasing
    assert list(out.columns) == [*FRAME_COLUMNS, "shopper", "item_idx", "type_idx", "weight"]
    assert preprocessor.item_indices(["a", "zzz", "c"]).tolist() == [1, 0, 3]


def test_item_category_is_the_most_frequent_non_empty_one():
    rows = [
        ev(0.0, item="1", category="shoes"),
        ev(10.0, item="1", category="boots"),
        ev(20.0, item="1", category="boots"),
        ev(30.0, item="1", category=""),
        ev(40.0, item="1", category=""),
        ev(50.0, item="1", category=""),
        ev(60.0, item="2", category=""),
        ev(70.0, event="category_view", item="", category="hats"),
    ]
    preprocessor = Preprocessor().fit(frame(rows))
    assert list(preprocessor.category_ids_) == ["", "boots", "hats", "shoes"]
    categories = preprocessor.category_ids_[preprocessor.item_category_]
    assert categories[preprocessor.item_index_["1"]] == "boots"
    assert categories[preprocessor.item_index_["2"]] == ""  # unknown
    assert preprocessor.item_category_[0] == 0
    assert preprocessor.item_category_.dtype == np.int32


def test_price_is_the_median_and_buckets_are_quantiles_of_item_prices():
    rows = [ev(10.0 * k, item=f"i{k}", price=float(k + 1)) for k in range(10)]
    rows += [ev(200.0, item="i0", price=1.0), ev(210.0, item="i0", price=31.0)]  # i0: 1, 1, 31 -> 1
    rows += [ev(300.0, item="free")]  # no price seen
    preprocessor = Preprocessor(price_buckets=5).fit(frame(rows))
    index = preprocessor.item_index_
    assert preprocessor.item_price_[index["i0"]] == 1.0
    assert np.isnan(preprocessor.item_price_[index["free"]]) and np.isnan(preprocessor.item_price_[0])
    buckets = {f"i{k}": int(preprocessor.item_price_bucket_[index[f"i{k}"]]) for k in range(10)}
    assert buckets == {
        "i0": 1,
        "i1": 1,
        "i2": 2,
        "i3": 2,
        "i4": 3,
        "i5": 3,
        "i6": 4,
        "i7": 4,
        "i8": 5,
        "i9": 5,
    }
    assert preprocessor.item_price_bucket_[index["free"]] == 0
    assert preprocessor.item_price_bucket_.dtype == np.int8
    assert preprocessor.price_bucket([0.5, 5.5, 100.0, np.nan]).tolist() == [1, 3, 5, 0]


# ----------------------------------------------------------------- weights


def test_weights_rank_purchase_over_cart_over_view_and_newer_over_older():
    day = 86_400.0
    rows = [
        ev(0.0, item="old"),
        ev(30 * day, item="v", session="s2"),
        ev(30 * day, item="c", event="cart", session="s3"),
        ev(30 * day, item="p", event="purchase", session="s4"),
        ev(30 * day, item="", event="search", query="x", session="s5"),
    ]
    out = Preprocessor(half_life_days=30.0).fit_transform(frame(rows))
    weight = dict(zip(out["item"].astype(str) + out["event"].astype(str), out["weight"], strict=True))
    assert weight["ppurchase"] > weight["ccart"] > weight["vview"] > weight["oldview"]
    assert weight["vview"] == pytest.approx(1.0)
    assert weight["oldview"] == pytest.approx(0.5)  # one half-life older than train_end_
    assert weight["search"] == pytest.approx(1.0)  # not in event_weights: 1 x decay

    later = Preprocessor().fit(frame(rows)).transform(frame(rows), now=T0 + pd.Timedelta(days=90))
    assert later["weight"].iloc[0] == pytest.approx(0.125)
    future = Preprocessor().fit(frame(rows)).transform(frame(rows), now=T0 - pd.Timedelta(days=1))
    assert future["weight"].max() == pytest.approx(5.0)  # age is clipped at 0


# ----------------------------------------------------------------- persistence and determinism


def test_vocabulary_is_json_and_restores_an_identical_preprocessor():
    train = synthetic_events(5_000, n_shoppers=300, n_items=400, seed=1)
    test = synthetic_events(2_000, n_shoppers=300, n_items=600, seed=2)
    preprocessor = Preprocessor(min_item_count=2, event_weights={"view": 1.0, "purchase": 4.0}).fit(train)
    text = json.dumps(preprocessor.vocabulary(), allow_nan=False)
    restored = Preprocessor.from_vocabulary(json.loads(text))
    pd.testing.assert_frame_equal(restored.transform(test), preprocessor.transform(test))
    for name in ("item_ids_", "category_ids_", "item_category_", "item_price_bucket_", "item_popularity_"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(preprocessor, name))
        assert getattr(restored, name).dtype == getattr(preprocessor, name).dtype
    np.testing.assert_array_equal(restored.item_price_, preprocessor.item_price_)  # NaN == NaN here
    assert restored.item_index_ == preprocessor.item_index_
    assert (restored.train_end_, restored.n_events_, restored.n_items_) == (
        preprocessor.train_end_,
        preprocessor.n_events_,
        preprocessor.n_items_,
    )
    assert restored.event_weights_ == {"view": 1.0, "purchase": 4.0}
    assert restored.get_params() == preprocessor.get_params()


def test_a_catalogue_adds_items_without_events_after_the_others_and_fills_gaps():
    train = frame(
        [
            ev(0, item="a", category="shoes", price=50.0),
            ev(10, item="b", session="s2", price=80.0),  # no category in the events
            ev(20, item="a", session="s3", category="shoes", price=50.0),
        ]
    )
    catalogue = pd.DataFrame(
        {
            "item": ["b", "z-new", "c-new"],
            "category": ["bags", "shoes", ""],
            "price": [99.0, 60.0, None],
            "brand": ["acme", "", "zeta"],
            "added_at": [None, "2024-03-05T00:00:00Z", None],
        }
    )
    preprocessor = Preprocessor(dedupe_seconds=0, min_seconds_per_event=0).fit(train, catalogue=catalogue)
    assert list(preprocessor.item_ids_) == ["a", "b", "c-new", "z-new"]  # event items first, by popularity
    categories = list(preprocessor.category_ids_)
    assert [categories[c] for c in preprocessor.item_category_[1:]] == ["shoes", "bags", "", "shoes"]
    assert preprocessor.item_price_[2] == 80.0  # the events' price stays; the catalogue fills gaps only
    assert list(preprocessor.item_popularity_[1:]) == [2.0, 1.0, 0.0, 0.0]  # cold: no training events
    assert preprocessor.item_price_bucket_[3] == 0 and preprocessor.item_price_bucket_[4] > 0
    assert preprocessor.item_added_[1] == T0.timestamp()  # first seen
    assert preprocessor.item_added_[4] == pd.Timestamp("2024-03-05T00:00:00Z").timestamp()
    assert np.isnan(preprocessor.item_added_[3])  # unknown: listed all along
    restored = Preprocessor.from_vocabulary(
        json.loads(json.dumps(preprocessor.vocabulary(), allow_nan=False))
    )
    np.testing.assert_array_equal(restored.item_added_, preprocessor.item_added_)
    assert list(preprocessor.item_brand_) == ["", "", "acme", "zeta", ""]  # brands: from a catalogue only
    assert list(restored.item_brand_) == list(preprocessor.item_brand_)
    assert list(restored.transform(frame([ev(30, item="z-new")]))["item_idx"]) == [4]


def test_output_is_deterministic_and_fit_transform_equals_fit_then_transform():
    events = synthetic_events(5_000, n_shoppers=200, n_items=300, seed=3)
    shuffled = events.sample(frac=1.0, random_state=7)
    a = Preprocessor(random_state=0).fit_transform(events)
    b = Preprocessor(random_state=123).fit(shuffled).transform(shuffled)
    pd.testing.assert_frame_equal(a, b)
    preprocessor = Preprocessor().fit(events)
    pd.testing.assert_frame_equal(preprocessor.transform(events), preprocessor.transform(events))


def test_transform_before_fit_and_fit_on_nothing_say_what_is_wrong():
    with pytest.raises(NotFittedError, match="not fitted"):
        Preprocessor().transform(frame([ev()]))
    with pytest.raises(ValueError, match="No events left"):
        Preprocessor().fit(frame([ev(item="")]))
    fitted = Preprocessor().fit(frame([ev()]))
    empty = fitted.transform(frame([ev(item="")]))
    assert len(empty) == 0 and "weight" in empty


def test_200k_events_fit_transform_quickly():
    """Only catches an accidental per-event Python loop (a loop costs minutes here, not seconds)."""
    events = synthetic_events(200_000, n_shoppers=40_000, n_items=10_000, seed=4)
    start = time.perf_counter()
    out = Preprocessor().fit_transform(events)
    assert time.perf_counter() - start < 10.0
    assert len(out) > 150_000


# ----------------------------------------------------------------- the database reader


@pytest.mark.django_db
def test_events_frame_reads_event_rows_into_the_canonical_frame():
    from recommendations.lifecycle.reading import events_frame

    from .factories import event, user

    alice = user()
    at = T0.to_pydatetime()
    event(
        "view",
        timestamp=at,
        user=alice,
        session_key="v1",
        item_id="101",
        category_id="phones",
        price=Decimal("199.99"),
    )
    event(
        "search",
        timestamp=at + pd.Timedelta(minutes=1),
        session_key="v2",
        external_user_id="ext-7",
        item_id="",
        query="red shoes",
    )
    event("purchase", timestamp=at + pd.Timedelta(minutes=2), session_key="v2", item_id="101", quantity=2)
    event("view", timestamp=at + pd.Timedelta(days=2), session_key="v3", item_id="5")

    data = events_frame()
    assert list(data.columns) == list(FRAME_COLUMNS)
    assert data["event"].tolist() == ["view", "search", "purchase", "view"]
    assert data["user"].tolist() == [str(alice.pk), "ext-7", "", ""]
    assert data["session"].tolist()[:3] == ["v1", "v2", "v2"]
    assert data["price"].iloc[0] == pytest.approx(199.99) and np.isnan(data["price"].iloc[1])
    assert data["quantity"].iloc[2] == 2.0
    assert data["query"].iloc[1] == "red shoes"
    assert data["category"].iloc[0] == "phones"
    assert data["timestamp"].iloc[0] == T0

    window = events_frame(since=at + pd.Timedelta(minutes=1), until=at + pd.Timedelta(days=1))
    assert window["event"].tolist() == ["search", "purchase"]
    only_views = events_frame(queryset=Event.objects.filter(event_type="view"))
    assert len(only_views) == 2
    assert len(events_frame(since=at + pd.Timedelta(days=10))) == 0
    out = Preprocessor().fit_transform(data)
    assert out["shopper"].tolist() == [f"u:{alice.pk}", "u:ext-7", "s:v2", "s:v3"]


@pytest.mark.django_db
def test_the_copy_reader_gives_the_frame_the_row_reader_gives():
    """PostgreSQL's COPY path (CSV through Arrow's reader) against the row-by-row reader, on
    the values CSV gets wrong when done carelessly: NULL against "", quotes, commas, newlines,
    a backslash-N typed by a shopper, non-Latin text, microseconds."""
    from django.db import connection

    from recommendations.lifecycle.reading import _FIELDS, _chunked_frame, _copy_frame

    from .factories import event, user

    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's (SQLite reads rows)")
    alice = user()
    at = T0.to_pydatetime()
    awkward = ['say "hi", then\nleave', "\\N", "ünïcødé 靴", "", "a,b\r\nc", "NULL", "NaN"]
    for n, text in enumerate(awkward):
        event(
            "search",
            timestamp=at + pd.Timedelta(microseconds=7 * n + 1),
            user=alice if n % 2 else None,
            external_user_id="" if n % 3 else f"ext-{n}",
            session_key=f"s{n}",
            item_id="",
            category_id=text,
            query=text,
            price=None if n % 2 else Decimal("0.10") * n,
            quantity=None if n % 3 else n,
        )
    rows = Event.objects.order_by("pk").values_list(*_FIELDS)
    copied, chunked = _copy_frame(rows), _chunked_frame(rows, chunk_size=3)
    pd.testing.assert_frame_equal(copied, chunked)
    assert copied["query"].tolist() == awkward
    assert copied["timestamp"].iloc[1] == T0 + pd.Timedelta(microseconds=8)


@pytest.mark.django_db
def test_the_copy_reader_keeps_newlines_in_queries_across_its_blocks():
    """Arrow's CSV reader cuts a large file into blocks and parses them in parallel; a newline
    inside a quoted query must not be taken for the end of a row (a few MB of them here)."""
    from django.db import connection

    from recommendations.lifecycle.reading import _FIELDS, _copy_frame

    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's (SQLite reads rows)")
    at = T0.to_pydatetime()
    queries = [f"line {n}\n" + "x" * 200 + '\n"quoted", comma' for n in range(12_000)]
    Event.objects.bulk_create(
        Event(
            timestamp=at + pd.Timedelta(seconds=n),
            event_type="search",
            session_key=f"s{n % 50}",
            query=query,
        )
        for n, query in enumerate(queries)
    )
    frame = _copy_frame(Event.objects.order_by("pk").values_list(*_FIELDS))
    assert frame["query"].tolist() == queries
    assert frame["session"].tolist() == [f"s{n % 50}" for n in range(len(queries))]


def test_a_raw_unsorted_frame_is_normalized_first():
    raw = pd.DataFrame(
        {
            "timestamp": ["2024-03-01T10:00:10Z", "2024-03-01T10:00:00Z"],
            "user": [None, "7"],
            "session": ["s1", None],
            "event": ["cart", "view"],
            "item": [5, "5"],
        }
    )
    out = Preprocessor().fit_transform(raw)
    assert out["event"].tolist() == ["view", "cart"]
    assert out["shopper"].tolist() == ["u:7", "s:s1"]
    assert out["item_idx"].tolist() == [1, 1]
    assert str(out["timestamp"].dtype) == "datetime64[ns, UTC]"


@pytest.mark.skipif(frames._malloc_trim() is None, reason="glibc's malloc_trim only")
def test_release_unused_memory_gives_freed_arrays_back_to_the_system():
    """glibc keeps freed arrays below its mmap threshold in its heap, and the threshold grows
    with each large array freed: a retrain's later steps carried 500 MB of preprocessing's
    arrays at 3M events. Replayed in a fresh process (a clean heap): arrays freed between
    arrays still alive stay resident until the release."""
    script = """
import os, numpy as np
from recommendations.ml import frames
def resident():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
large = np.ones(16 << 20, np.uint8)
del large  # a freed 16 MB array raises the threshold to 16 MB
arrays, pins = [], []
for _ in range(48):
    arrays.append(np.ones(4 << 20, np.uint8))  # 4 MB each, from the heap now
    pins.append(np.ones(256 << 10, np.uint8))  # alive after: the heap cannot shrink from its top
del arrays
kept = resident()
frames.release_unused_memory()
print(kept, resident(), len(pins))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    kept, after, _ = map(int, done.stdout.split())
    assert kept - after > 100 << 20, (kept, after)
