"""Evaluation: metrics by hand, the two variants, the baselines' behaviour, cases, the command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from recommendations.ml.base import Recommender
from recommendations.ml.baselines import EASE, ItemKNN, MostPopular, RecentPopular, SessionRecency
from recommendations.ml.cases import TYPE_INDEX, CaseBatch, evaluation_cases
from recommendations.ml.evaluation import evaluate, format_table

# No database here: the SQLite run (make test-sqlite) leaves these to the PostgreSQL run.
pytestmark = pytest.mark.no_db

ROOT = Path(__file__).resolve().parent.parent
DEMO_SLICE = ROOT / "shop" / "demo_data" / "rees46_oct2019_slice.csv.gz"
BASELINE_NAMES = [
    "popular", "recent_popular", "session_recency", "item_knn", "ease",
    "category_popular", "knn_category", "cold_price", "cold_newest",
]  # fmt: skip
START = pd.Timestamp("2024-03-01", tz="UTC")


def batch(items, in_session, targets, is_new=None) -> CaseBatch:
    """A hand-made CaseBatch; ``now`` holds the case's row number for ``FixedScores``."""
    items = np.asarray(items, dtype=np.int32)
    n = len(items)
    return CaseBatch(
        items=items,
        types=np.where(items > 0, 1, 0).astype(np.int8),
        times=np.zeros(items.shape),
        in_session=np.asarray(in_session, dtype=bool),
        now=np.arange(n, dtype=np.float64),
        targets=np.asarray(targets, dtype=np.int32),
        target_types=np.ones(n, dtype=np.int8),
        weights=np.ones(n, dtype=np.float32),
        is_new=np.ones(n, dtype=bool) if is_new is None else np.asarray(is_new, dtype=bool),
    )


class FixedScores(Recommender):
    name = "fixed"

    def __init__(self, table) -> None:
        self.table = np.asarray(table, dtype=np.float32)

    def fit(self, train, n_items):
        return self

    def score(self, cases):
        return self.table[cases.now.astype(int)].copy()


def transformed(rows, n_items: int | None = None) -> pd.DataFrame:
    """A frame as ``Preprocessor.transform`` returns it, from (minute, user, session, event, item_idx)."""
    frame = pd.DataFrame(rows, columns=["minute", "user", "session", "event", "item_idx"])
    frame["timestamp"] = START + pd.to_timedelta(frame.pop("minute"), unit="min")
    frame["item"] = frame["item_idx"].map(lambda i: f"i{i}" if i else "")
    frame["item_idx"] = frame["item_idx"].astype(np.int32)
    frame["type_idx"] = frame["event"].map(TYPE_INDEX).fillna(0).astype(np.int8)
    frame["shopper"] = np.where(frame["user"] != "", "u:" + frame["user"], "s:" + frame["session"])
    frame["weight"] = np.float32(1.0)
    for column in ("category", "query"):
        frame[column] = ""
    frame["price"] = frame["quantity"] = np.nan
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def ranking(model: Recommender, cases: CaseBatch) -> np.ndarray:
    scores = model.score(cases)
    assert scores.shape == (len(cases), model.n_items_ + 1) and scores.dtype == np.float32
    scores[:, 0] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")


# --- metrics ---------------------------------------------------------------------------------

#: 5 items. Column 0 (padding) scores highest in row 0 and must still never be recommended.
TABLE = [
    [9, 5, 4, 3, 2, 1],  # target 1: rank 1
    [0, 5, 4, 3, 2, 1],  # target 3: rank 3
    [0, 5, 4, 3, 2, 1],  # target 4: absent from the top 3; rank 3 once session item 1 goes
]
POPULARITY = np.array([0, 9, 4, 1, 0, 1])  # +1 smoothing: shares (pop + 1) / (15 + 5)


def bits(item: int) -> float:
    return -math.log2((POPULARITY[item] + 1) / 20)


def metric_cases() -> CaseBatch:
    return batch(
        items=[[0, 2], [1, 2], [3, 1]],
        in_session=[[False, True], [True, True], [False, True]],  # item 3 of row 2: training history
        targets=[1, 3, 4],
        is_new=[True, False, True],
    )


def evaluate_table(**options) -> dict:
    """``evaluate`` of the hand-computed ``TABLE`` on ``metric_cases()`` at k = 3."""
    return evaluate(
        {"fixed": FixedScores(TABLE)}, metric_cases(), k=3, item_popularity=POPULARITY, n_items=5, **options
    )


@pytest.mark.parametrize("batch_size", [2048, 2, 1])
def test_metrics_match_hand_computed_values(batch_size):
    result = evaluate_table(train_seconds={"fixed": 1.5}, batch_size=batch_size)
    every = result["all"]
    assert every["n_cases"] == 3
    m = every["models"]["fixed"]
    assert m["hr@3"] == pytest.approx(2 / 3)
    assert m["mrr@3"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(2) + 1 / math.log2(4) + 0) / 3)
    assert m["coverage@3"] == pytest.approx(3 / 5)  # items 1, 2, 3 (never 0)
    assert m["novelty@3"] == pytest.approx(3 * (bits(1) + bits(2) + bits(3)) / 9)
    assert m["train_seconds"] == 1.5


@pytest.mark.parametrize("batch_size", [2048, 2])
def test_per_case_reciprocal_ranks_are_the_mrr_case_by_case(batch_size):
    result = evaluate_table(batch_size=batch_size, per_case=True)
    every = result["all"]["reciprocal_ranks"]["fixed"]
    assert every.tolist() == pytest.approx([1.0, 1 / 3, 0.0])
    assert every.mean() == pytest.approx(result["all"]["models"]["fixed"]["mrr@3"])
    # new: rows 0 and 2; row 2 loses session item 1, so target 4 moves up to rank 3.
    assert result["new"]["reciprocal_ranks"]["fixed"].tolist() == pytest.approx([1.0, 1 / 3])
    assert "reciprocal_ranks" not in evaluate_table()["all"]


def test_new_variant_counts_only_new_targets_and_drops_session_items():
    result = evaluate_table()
    new = result["new"]
    assert new["n_cases"] == 2
    m = new["models"]["fixed"]
    # row 0 loses session item 2: [1, 3, 4], target 1 at rank 1; row 2 loses session item 1
    # but keeps item 3 (training history, not the session): [2, 3, 4], target 4 at rank 3.
    assert m["hr@3"] == pytest.approx(1.0)
    assert m["mrr@3"] == pytest.approx((1 + 1 / 3) / 2)
    assert m["ndcg@3"] == pytest.approx((1 + 1 / math.log2(4)) / 2)
    assert m["coverage@3"] == pytest.approx(4 / 5)
    assert m["novelty@3"] == pytest.approx((bits(1) + bits(3) + bits(4) + bits(2) + bits(3) + bits(4)) / 6)
    assert m["train_seconds"] is None
    assert result["all"]["models"]["fixed"]["hr@3"] == pytest.approx(2 / 3)  # the mask did not leak


def test_lists_longer_than_the_catalogue_hold_only_real_items():
    cases = batch(items=[[0, 2]], in_session=[[False, True]], targets=[5])
    result = evaluate({"fixed": FixedScores([TABLE[0]])}, cases, k=10, item_popularity=POPULARITY, n_items=5)
    every, new = result["all"]["models"]["fixed"], result["new"]["models"]["fixed"]
    assert every["mrr@10"] == pytest.approx(1 / 5)
    assert every["coverage@10"] == pytest.approx(1.0)
    assert new["mrr@10"] == pytest.approx(1 / 4)  # item 2 removed, and not counted as recommended
    assert new["coverage@10"] == pytest.approx(4 / 5)
    assert new["novelty@10"] == pytest.approx((bits(1) + bits(3) + bits(4) + bits(5)) / 4)


def test_empty_new_variant_reports_no_numbers_and_the_table_marks_the_best():
    cases = batch(items=[[1, 2]], in_session=[[True, True]], targets=[1], is_new=[False])
    models = {"fixed": FixedScores([TABLE[0]]), "worse": FixedScores([[0, 1, 2, 3, 4, 5]])}
    variants = evaluate(models, cases, k=3, item_popularity=POPULARITY, n_items=5)
    assert variants["new"]["n_cases"] == 0
    assert variants["new"]["models"]["fixed"]["hr@3"] is None
    result = {"n_cases": 1, "n_skipped": 0, "n_sessions": 1, "k": 3, "variants": variants}
    json.dumps(result)
    table = format_table(result)
    lines = table.splitlines()
    best = next(line for line in lines if "fixed" in line)
    assert best.startswith("* ") and lines.index(best) < lines.index(
        next(li for li in lines if "worse" in li)
    )
    assert "[new] 0 cases" in table


# --- baselines -------------------------------------------------------------------------------


def test_most_popular_and_recent_popular():
    rows = [(m, "", f"old{m}", "view", 1) for m in range(6)]  # item 1: popular ten days ago
    rows += [(14400 + m, "", f"new{m}", "view", 2) for m in range(3)]  # item 2: popular lately
    rows += [(14400 + 5, "", "new9", "view", 3)]
    train = transformed(rows)
    cases = batch(items=[[0]], in_session=[[False]], targets=[1])
    assert list(ranking(MostPopular().fit(train, 4), cases)[0][:3]) == [1, 2, 3]
    assert list(ranking(RecentPopular(days=7).fit(train, 4), cases)[0][:3]) == [2, 3, 1]


def test_session_recency_puts_the_session_first_most_recent_first():
    rows = [(m, "", f"s{m}", "view", 5) for m in range(5)]
    rows += [(10 + m, "", f"t{m}", "view", 3) for m in range(3)]
    rows += [(20 + m, "", f"u{m}", "view", 4) for m in range(2)]
    model = SessionRecency().fit(transformed(rows), 6)
    cases = batch(
        items=[[4, 1, 2, 1]],
        in_session=[[False, True, True, True]],  # item 4 came before the session: popularity only
        targets=[6],
    )
    assert list(ranking(model, cases)[0][:5]) == [1, 2, 5, 3, 4]


def test_item_knn_recommends_a_co_occurring_item():
    rows = []
    for s in range(4):
        rows += [(10 * s, "", f"a{s}", "view", 1), (10 * s + 1, "", f"a{s}", "view", 2)]
        rows += [(10 * s + 2, "", f"b{s}", "view", 3), (10 * s + 3, "", f"b{s}", "view", 4)]
    rows += [(100 + m, "", f"p{m}", "view", 5) for m in range(20)]  # popular, but alone
    model = ItemKNN(neighbours=2).fit(transformed(rows), 5)
    assert model.neighbour_items_[1, 0] == 2 and model.neighbour_scores_[1, 0] == pytest.approx(1.0)
    cases = batch(items=[[0, 3], [4, 1]], in_session=[[False, True], [True, True]], targets=[4, 2])
    top = ranking(model, cases)
    assert top[0][0] == 4
    assert top[1][0] == 2  # the most recent item (1) outweighs the older one (4)
    assert top[0][1] == 5  # then popularity


def test_ease_recovers_a_co_purchase_pattern():
    rows = []
    for u in range(6):
        rows += [(10 * u, f"u{u}", f"s{u}", "purchase", 1), (10 * u + 1, f"u{u}", f"s{u}", "purchase", 2)]
        rows += [(10 * u + 2, f"v{u}", f"t{u}", "purchase", 3), (10 * u + 3, f"v{u}", f"t{u}", "purchase", 4)]
    rows += [(100 + m, "", f"p{m}", "view", 5) for m in range(12)]
    rows += [(200, "", "rare", "view", 6)]
    model = EASE(l2=10.0).fit(transformed(rows), 6)
    cases = batch(items=[[0, 3], [0, 2]], in_session=[[False, True], [False, True]], targets=[4, 1])
    top = ranking(model, cases)
    assert top[0][0] == 4 and top[1][0] == 1

    small = EASE(l2=10.0, max_items=3).fit(transformed(rows), 6)
    assert len(small.items_) == 3
    scores = small.score(cases)
    assert (scores[:, [item for item in range(1, 7) if item not in small.items_]] == 0).all()


def random_log(seed: int = 0) -> tuple[pd.DataFrame, int]:
    rng = np.random.default_rng(seed)
    rows = [
        (10 * s + j, f"u{s}" if s % 3 else "", f"s{s}", "view", int(rng.integers(1, 120)))
        for s in range(200)
        for j in range(int(rng.integers(1, 6)))
    ]
    return transformed(rows), 120


def binary_matrix(frame: pd.DataFrame, n_items: int) -> np.ndarray:
    matrix = np.zeros((frame["shopper"].nunique(), n_items + 1))
    matrix[pd.factorize(frame["shopper"])[0], frame["item_idx"]] = 1.0
    return matrix


def test_ease_matches_the_dense_closed_form():
    frame, n_items = random_log()
    model = EASE(l2=5.0).fit(frame, n_items)
    x = binary_matrix(frame, n_items)[:, model.items_]
    precision = np.linalg.inv(x.T @ x + 5.0 * np.eye(len(model.items_)))
    expected = precision / -np.diag(precision)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(model.weights_[:-1], expected, atol=1e-6)


def test_item_knn_similarity_is_session_cosine():
    frame, n_items = random_log(1)
    model = ItemKNN(neighbours=n_items, window=10).fit(frame, n_items)
    x = binary_matrix(frame, n_items)  # one session per shopper here
    counts = x.sum(axis=0)
    cosine = (x.T @ x) / np.sqrt(np.outer(counts, counts) + 1e-300)
    np.fill_diagonal(cosine, 0.0)
    dense = np.zeros_like(cosine)
    rows = np.arange(n_items + 1)[:, None]
    dense[rows, model.neighbour_items_] = model.neighbour_scores_
    dense[:, 0] = 0.0
    np.testing.assert_allclose(dense, cosine, atol=1e-6)


# --- cases -----------------------------------------------------------------------------------


def test_evaluation_cases_skip_unknown_targets_and_prepend_a_known_users_history():
    train = transformed(
        [
            (0, "u1", "a", "view", 1),
            (1, "u1", "a", "cart", 2),
            (2, "", "c", "view", 3),
            (3, "", "c", "view", 4),
        ]
    )
    test = transformed(
        [
            (60, "u1", "b", "view", 3),
            (61, "u1", "b", "view", 0),  # an item unknown in training: item_idx 0
            (62, "u1", "b", "view", 4),
            (63, "", "d", "view", 1),  # a one-event session: no prefix, no case
        ]
    )
    test.loc[test["item_idx"] == 0, "item"] = "unknown"
    built = evaluation_cases(train, test, max_history=10)
    assert built.n_skipped == 1
    assert built.n_sessions == 2
    cases = built.cases
    assert len(cases) == 1 and cases.targets[0] == 4 and cases.is_new[0]
    items, in_session = cases.items[0], cases.in_session[0]
    assert list(items[in_session]) == [3]
    assert list(items[~in_session & (items > 0)]) == [1, 2]


# --- the command -----------------------------------------------------------------------------


def test_command_on_the_demo_slice_prints_one_json_object(capsys):
    call_command(
        "recommendations_evaluate",
        "--events",
        str(DEMO_SLICE),
        "--format",
        "rees46",
        "--split-at",
        "2019-10-01 02:30:00",
        "--json",
        "--epochs",
        "1",
    )  # every model: the five baselines and the learned one
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert captured.err  # progress went to stderr
    assert result["n_cases"] > 0 and result["k"] == 20
    assert set(result) == {"n_cases", "n_skipped", "skipped", "n_sessions", "k", "variants"}
    assert set(result["variants"]) == {"all", "new", "cold"}
    for variant in ("all", "new", "cold"):
        models = result["variants"][variant]["models"]
        assert sorted(models) == sorted([*BASELINE_NAMES, "mlp_attention"])
        for metrics in models.values():
            assert set(metrics) == {
                "hr@20",
                "mrr@20",
                "ndcg@20",
                "coverage@20",
                "novelty@20",
                "train_seconds",
            }
            assert 0 <= metrics["mrr@20"] <= metrics["hr@20"] <= 1
    every = result["variants"]["all"]["models"]
    new = result["variants"]["new"]["models"]
    assert every["session_recency"]["hr@20"] > every["popular"]["hr@20"]
    assert new["session_recency"]["hr@20"] == pytest.approx(new["popular"]["hr@20"])


def write_canonical(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "events.csv"
    path.write_text("timestamp,session_id,user_id,event,item_id,query,category_id,price,quantity\n" + body)
    return path


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--train", "missing.csv", "--test", "missing.csv"], "no such file"),
        ([], "either --train and --test, or --events and --split-at"),
        (["--train", "a", "--test", "b", "--events", "c", "--split-at", "2024"], "not both"),
        (["--train", "a"], "give both files"),
        (["--events", "a"], "give both"),
        (["--events", "a", "--split-at", "2024-01-01", "--k", "0"], "--k must be at least 1"),
        (
            ["--events", "a", "--split-at", "2024-01-01", "--models", "popular,oracle"],
            "unknown model 'oracle'",
        ),
    ],
)
def test_command_rejects_bad_input(arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("recommendations_evaluate", *arguments)


def test_command_rejects_an_empty_side_a_bad_row_and_a_bad_timestamp(tmp_path):
    path = write_canonical(
        tmp_path, "2024-03-01T10:00:00Z,s1,,view,1,,,,\n2024-03-01T10:01:00Z,s1,,view,2,,,,\n"
    )
    with pytest.raises(CommandError, match="the training side has no events"):
        call_command("recommendations_evaluate", "--events", str(path), "--split-at", "2020-01-01")
    with pytest.raises(CommandError, match="the test side has no events"):
        call_command("recommendations_evaluate", "--events", str(path), "--split-at", "2030-01-01")
    with pytest.raises(CommandError, match="is not a timestamp"):
        call_command("recommendations_evaluate", "--events", str(path), "--split-at", "tomorrow-ish")
    bad = write_canonical(tmp_path, "2024-03-01T10:00:00Z,s1,,view,1,,,,\nyesterday,s1,,view,2,,,,\n")
    with pytest.raises(CommandError, match=r"events.csv, line 3, field 'timestamp'"):
        call_command("recommendations_evaluate", "--events", str(bad), "--split-at", "2024-03-01T10:00:30Z")


# --- the cold variant and the category baselines ------------------------------------------


def canonical(rows) -> pd.DataFrame:
    """A canonical frame from (minute, session, item, category, price) view events."""
    from recommendations.ml.frames import normalize_frame

    frame = pd.DataFrame(rows, columns=["minute", "session", "item", "category", "price"])
    frame["timestamp"] = START + pd.to_timedelta(frame.pop("minute"), unit="min")
    frame["event"] = "view"
    return normalize_frame(frame)


def cold_world():
    """Shoes (cat s) and phones (cat p); two new shoes appear in the test period only."""
    train = canonical(
        [(m, f"t{m}", item, cat, price) for m, (item, cat, price) in enumerate(
            [("shoe-1", "s", 50), ("shoe-2", "s", 55), ("phone-1", "p", 500), ("phone-2", "p", 600)] * 5
        )] + [(100 + i, "pair", item, "s", 50) for i, item in enumerate(["shoe-1", "shoe-2"] * 3)]
    )  # fmt: skip
    test = canonical(
        [
            (200, "early", "new-shoe-a", "s", 52),  # new-shoe-a is first seen here: not yet listed before
            (210, "a", "shoe-1", "s", 50),
            (211, "a", "new-shoe-a", "s", 52),  # cold, listed since minute 200
            (212, "a", "new-shoe-b", "s", 300),  # cold, first sighting: left out of every variant
            (220, "b", "phone-1", "p", 500),
            (221, "b", "phone-2", "p", 600),  # warm: all and new
        ]
    )
    return train, test


def test_items_without_training_events_form_the_cold_variant_ranked_among_listed_cold_items():
    from recommendations.ml.baselines import CategoryPopular, ColdNewest, ColdPrice
    from recommendations.ml.evaluation import run_evaluation
    from recommendations.ml.frames import catalogue_from_events

    train, test = cold_world()
    models = [MostPopular(), CategoryPopular(), ColdPrice(), ColdNewest()]
    params = {"dedupe_seconds": 0, "min_seconds_per_event": 0}
    without = run_evaluation(train, test, models=models, preprocessor_params=params)
    assert set(without["variants"]) == {"all", "new"} and without["n_skipped"] == 2  # the two new shoes

    result = run_evaluation(
        train, test, models=models, preprocessor_params=params, catalogue=catalogue_from_events(train, test)
    )
    variants = result["variants"]
    assert variants["all"]["n_cases"] == 1 and variants["new"]["n_cases"] == 1  # only phone-1 -> phone-2
    assert variants["cold"]["n_cases"] == 1 and variants["cold"]["n_not_yet_listed"] == 1
    cold = variants["cold"]["models"]
    # Two cold items exist by minute 211, but new-shoe-b is not listed until minute 212: the
    # list holds new-shoe-a alone, so every model ranks it first (popular too: by elimination).
    assert cold["popular"]["hr@20"] == 1.0 and cold["cold_price"]["mrr@20"] == 1.0
    assert "1 more left out" in format_table(result)


def test_category_baselines_follow_the_latest_category_and_price():
    from recommendations.ml.baselines import CategoryPopular, ColdNewest, ColdPrice, KNNCategory
    from recommendations.ml.frames import catalogue_from_events
    from recommendations.ml.preprocessing import Preprocessor

    train, test = cold_world()
    preprocessor = Preprocessor(dedupe_seconds=0, min_seconds_per_event=0)
    preprocessor.fit(train, catalogue=catalogue_from_events(train, test))
    index = {item: i + 1 for i, item in enumerate(preprocessor.item_ids_)}
    transformed_train = preprocessor.transform(train)
    # A shopper who saw a phone long ago and a shoe last.
    cases = batch([[index["phone-1"], index["shoe-1"]]], [[True, True]], [index["shoe-2"]])

    def top(model, n=2):
        fitted = model.fit_preprocessed(transformed_train, preprocessor)
        return [preprocessor.item_ids_[i - 1] for i in ranking(fitted, cases)[0][:n]]

    assert top(CategoryPopular()) == ["shoe-1", "shoe-2"]  # the latest category first, by popularity
    assert top(KNNCategory()) == ["shoe-2", "shoe-1"]  # the co-viewed item first, then the fill
    assert top(ColdPrice(), 4)[:3] == ["shoe-1", "new-shoe-a", "shoe-2"]  # 50, 52, 55: closest in price
    assert top(ColdNewest(), 1) == ["new-shoe-b"]  # the newest shoe
    with pytest.raises(TypeError, match="fit_preprocessed"):
        CategoryPopular().fit(transformed_train, 4)


def test_command_reads_a_catalogue_csv_and_refuses_a_bad_one(tmp_path, capsys):
    events = write_canonical(
        tmp_path,
        "".join(
            f"2024-03-01T10:{m:02d}:00Z,s{m // 3},,view,{item},,c,10,\n"
            for m, item in enumerate(["1", "2", "3"] * 6 + ["1", "9"])
        ),
    )
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text("item_id,category_path,brand,price,name\n9,c,acme,11,Nine\n8,c,acme,,Eight\n")
    call_command(
        "recommendations_evaluate", "--events", str(events), "--split-at", "2024-03-01T10:18:00Z",
        "--catalogue", str(catalogue), "--models", "popular,cold_price", "--json",
    )  # fmt: skip
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert "Catalogue: 5 items" in captured.err  # 1, 2, 3, 9 from the events; 8 from the file
    assert result["variants"]["cold"]["n_cases"] == 0  # item 9's one event is its first sighting
    assert result["variants"]["cold"]["n_not_yet_listed"] == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,price\n1,2\n")
    with pytest.raises(CommandError, match="has no item_id column"):
        call_command(
            "recommendations_evaluate", "--events", str(events), "--split-at", "2024-03-01T10:18:00Z",
            "--catalogue", str(bad),
        )  # fmt: skip
    with pytest.raises(CommandError, match="contradict"):
        call_command(
            "recommendations_evaluate", "--events", str(events), "--split-at", "2024-03-01T10:18:00Z",
            "--catalogue", str(catalogue), "--no-cold",
        )  # fmt: skip


def test_the_serving_version_is_compared_on_the_same_variants_as_the_candidate():
    """With a catalogue, cold next items leave ``all``/``new`` in the comparison too."""
    from recommendations.ml.baselines import CategoryPopular
    from recommendations.ml.evaluation import run_evaluation
    from recommendations.ml.frames import catalogue_from_events

    train, test = cold_world()
    result = run_evaluation(
        train,
        test,
        models=[MostPopular()],
        preprocessor_params={"dedupe_seconds": 0, "min_seconds_per_event": 0},
        catalogue=catalogue_from_events(train, test),
        reference=CategoryPopular(),
    )
    compared = result["reference"]["variants"]
    assert {variant: data["n_cases"] for variant, data in compared.items()} == {
        variant: data["n_cases"] for variant, data in result["variants"].items()
    }


def test_each_model_named_is_let_go_once_scored_before_the_next_one_fits(monkeypatch):
    """A retrain at 10M events held every fitted baseline's tables while the learned model
    fitted. Models given by name are now fitted, scored and dropped one after another,
    with the same figures as scoring them side by side."""
    import gc
    import weakref

    from recommendations.ml import evaluation

    built, alive_at_fit = [], []

    class Tracked(MostPopular):
        def __init__(self) -> None:
            super().__init__()
            built.append(weakref.ref(self))

        def fit_preprocessed(self, train, preprocessor):
            gc.collect()
            alive_at_fit.append(sum(ref() is not None for ref in built))
            return super().fit_preprocessed(train, preprocessor)

    class TrackedToo(Tracked):
        pass

    monkeypatch.setitem(evaluation.BASELINES, "tracked", Tracked)
    monkeypatch.setitem(evaluation.BASELINES, "tracked_too", TrackedToo)
    train, test = cold_world()
    params = {"dedupe_seconds": 0, "min_seconds_per_event": 0}
    one_by_one = evaluation.run_evaluation(
        train,
        test,
        models=["tracked", "tracked_too", "session_recency"],
        preprocessor_params=params,
        per_case=True,
    )
    assert alive_at_fit == [2, 1]  # both built, then the first is gone when the second fits
    prepared = evaluation.prepare_evaluation(train, test, preprocessor_params=params)
    side_by_side = evaluation.evaluate(
        {"tracked": MostPopular().fit_preprocessed(prepared.train, prepared.preprocessor)},
        prepared.built.cases,
        item_popularity=prepared.preprocessor.item_popularity_,
        n_items=prepared.preprocessor.n_items_,
    )
    for variant, data in side_by_side.items():
        expected = {**data["models"]["tracked"], "train_seconds": None}
        for name in ("tracked", "tracked_too"):
            assert {**one_by_one["variants"][variant]["models"][name], "train_seconds": None} == expected
    assert set(one_by_one["variants"]["all"]["reciprocal_ranks"]) == {
        "tracked",
        "tracked_too",
        "session_recency",
    }
