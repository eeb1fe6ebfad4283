"""The learned model: it learns a planted pattern, numpy serving matches Keras, files round-trip,
training is reproducible, and the same code trains on JAX."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pytest.importorskip("keras", reason="the ml extra is not installed")

from recommendations.ml.cases import evaluation_cases  # noqa: E402
from recommendations.ml.training import NextItemRecommender  # noqa: E402

# No database here: the SQLite run (make test-sqlite) leaves these to the PostgreSQL run.
pytestmark = pytest.mark.no_db

ROOT = Path(__file__).resolve().parent.parent
SMALL = {
    "embedding_dim": 32,
    "hidden_units": (64,),
    "attention_units": 16,
    "batch_size": 128,
    "random_state": 7,
}


def planted(n_items: int = 200, n_sessions: int = 3000, length: int = 5, seed: int = 0) -> pd.DataFrame:
    """Sessions of consecutive items: whoever viewed item i views item i+1 next."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(1, n_items - length, size=n_sessions)
    session = np.repeat(np.arange(n_sessions), length)
    step = np.tile(np.arange(length), n_sessions)
    items = np.repeat(starts, length) + step
    timestamps = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(session * 120 + step * 10, unit="s")
    return pd.DataFrame(
        {
            "timestamp": timestamps,
            "user": "",
            "session": [f"s{s}" for s in session],
            "event": "view",
            "item": items.astype(str),
            "category": "",
            "price": np.nan,
            "quantity": np.nan,
            "query": "",
            "shopper": [f"s:s{s}" for s in session],
            "item_idx": items.astype(np.int32),
            "type_idx": np.int8(1),
            "weight": np.float32(1.0),
        }
    )


@pytest.fixture(scope="module")
def trained():
    frame = planted(n_sessions=1500)
    cut = frame["timestamp"].quantile(0.8)
    train, test = frame[frame["timestamp"] < cut], frame[frame["timestamp"] >= cut]
    model = NextItemRecommender(epochs=5, **SMALL).fit(train, n_items=200)
    return model, evaluation_cases(train, test).cases


def test_it_learns_a_planted_pattern(trained):
    model, cases = trained
    top10 = np.argsort(-model.score(cases), axis=1)[:, :10]
    hit_rate = (top10 == cases.targets[:, None]).any(axis=1).mean()
    assert hit_rate > 0.9, f"HR@10 = {hit_rate:.3f}"
    assert model.history_ and model.history_[-1]["loss"] < model.history_[0]["loss"]
    assert model.samples_per_second_ > 0


def test_numpy_tower_matches_the_keras_model(trained):
    model, cases = trained
    batch = cases.take(slice(0, 64))
    numpy_scores, keras_scores = model.score(batch), model.keras_scores(batch)
    assert np.isneginf(numpy_scores[:, 0]).all()
    np.testing.assert_allclose(numpy_scores[:, 1:], keras_scores[:, 1:], rtol=1e-4, atol=1e-4)


def test_content_items_match_numpy_and_score_items_without_events_by_their_content():
    from recommendations.ml.features import ItemFeatures

    frame = planted(n_items=200, n_sessions=600)
    n_items = 220  # 201..220: catalogue items without events
    category = (np.arange(n_items + 1) % 5 + 1).astype(np.int32)
    price = (np.arange(n_items + 1) % 3 + 1).astype(np.int8)
    category[0] = price[0] = 0
    features = ItemFeatures(category=category, price_bucket=price, n_categories=6, n_price_buckets=3)
    model = NextItemRecommender(epochs=2, content=True, **SMALL).fit(frame, n_items, item_features=features)
    cases = evaluation_cases(frame.iloc[:2000], frame.iloc[2000:]).cases.take(slice(0, 32))
    np.testing.assert_allclose(
        model.score(cases)[:, 1:], model.keras_scores(cases)[:, 1:], rtol=1e-4, atol=1e-4
    )
    table = model.export_weights()["item_embedding"]
    # Two cold items of the same category and price bucket (15 apart) have one vector: their content.
    np.testing.assert_allclose(table[201], table[216], atol=1e-6)
    assert not np.allclose(table[201], table[202])  # another category and price
    assert not np.allclose(table[1], table[16])  # items with events keep their own ID part


def categories_only(category: np.ndarray):
    """Item features that know each item's category (index; 0 unknown) and no prices."""
    from recommendations.ml.features import ItemFeatures

    return ItemFeatures(
        category=category,
        price_bucket=np.zeros(len(category), np.int8),
        n_categories=int(category.max()) + 1,
        n_price_buckets=1,
    )


def test_the_category_match_is_learned_and_matches_numpy_in_both_heads():
    """Sessions stay in one category (the next item is any of it): the category match learns
    to lift the whole category, and the numpy tower scores what Keras does."""

    n_items, n_categories = 120, 6
    category = np.concatenate([[0], np.arange(n_items) % n_categories + 1]).astype(np.int32)
    features = categories_only(category)
    rng = np.random.default_rng(3)
    members = [np.flatnonzero(category == c) for c in range(1, n_categories + 1)]
    frame = sessions_frame(
        [list(rng.choice(members[s % n_categories], 5, replace=False)) for s in range(600)]
    )
    params = {**SMALL, "epochs": 1, "scalar_epochs": 3, "n_neighbours": 0, "category_match": True}
    model = NextItemRecommender(**params).fit(frame, n_items, item_features=features)
    weights = model.export_weights()
    assert weights["category_type"].max() > 0.5  # a viewed item's category is lifted
    cases = evaluation_cases(frame.iloc[:2000], frame.iloc[2000:]).cases.take(slice(0, 32))
    scores = model.score(cases)
    np.testing.assert_allclose(scores[:, 1:], model.keras_scores(cases)[:, 1:], rtol=1e-4, atol=1e-4)
    same = category[1:][None, :] == category[cases.items[:, -1]][:, None]
    assert scores[:, 1:][same].mean() > scores[:, 1:][~same].mean() + 1.0
    # A request (one case) takes the tower's scalar path: the same scores, and the mixture's
    # denominator without a pass over the items is the log-sum-exp of the real items' scores.
    tower, inputs = model.tower_, model._inputs(cases)
    for row in range(len(cases)):
        one = {name: value[row : row + 1] for name, value in inputs.items()}
        alone, normalizer = tower.scores_and_normalizer(one, now=cases.now[row : row + 1])
        np.testing.assert_allclose(alone[0, 1:], scores[row, 1:], rtol=1e-5, atol=1e-5)
        real = alone[0, 1:].astype(np.float64)
        np.testing.assert_allclose(
            normalizer[0], np.log(np.exp(real - real.max()).sum()) + real.max(), atol=1e-5
        )

    sampled = NextItemRecommender(**{**params, "sampled_softmax_above": 50, "n_negatives": 32}).fit(
        frame, n_items, item_features=features
    )
    np.testing.assert_allclose(
        sampled.score(cases)[:, 1:], sampled.keras_scores(cases)[:, 1:], rtol=1e-4, atol=1e-4
    )
    assert sampled.export_weights()["category_type"].max() > 0.5


def sessions_frame(sessions: list[list[int]], start: str = "2024-01-01") -> pd.DataFrame:
    """A frame like ``planted``'s from explicit sessions of item indices (one view each)."""
    frame = planted(n_items=10, n_sessions=sum(map(len, sessions)), length=1)
    frame["timestamp"] = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(
        [s * 120 + j * 10 for s, items in enumerate(sessions) for j in range(len(items))], unit="s"
    )
    frame["session"] = [f"s{start}-{s}" for s, items in enumerate(sessions) for _ in items]
    frame["shopper"] = "s:" + frame["session"]
    frame["item_idx"] = np.array([item for items in sessions for item in items], np.int32)
    frame["item"] = frame["item_idx"].astype(str)
    return frame


def test_content_learns_a_planted_pattern_that_ids_cannot():
    """Items of category c are followed by one of category c + 1; asked after a shopper's
    items of c, the model must pick the *new* items of c + 1 (no events), by content only."""

    n_categories, warm, cold = 10, 12, 3
    n_warm = n_categories * warm
    n_items = n_warm + n_categories * cold
    category = np.zeros(n_items + 1, np.int32)
    category[1 : n_warm + 1] = np.arange(n_warm) // warm + 1
    category[n_warm + 1 :] = np.arange(n_categories * cold) // cold + 1
    features = categories_only(category)
    rng = np.random.default_rng(5)

    def of(c: int, new: bool = False) -> int:
        return (
            int(rng.integers(0, cold)) + n_warm + (c - 1) * cold + 1
            if new
            else int(rng.integers(0, warm)) + (c - 1) * warm + 1
        )

    def session(new: bool) -> list[int]:
        c = int(rng.integers(1, n_categories + 1))
        return [of(c) for _ in range(3)] + [of(c % n_categories + 1, new)]

    train = sessions_frame([session(False) for _ in range(1500)])
    test = sessions_frame([session(True) for _ in range(200)], start="2024-03-01")
    found = evaluation_cases(train, test)
    cases = found.cases.take(np.flatnonzero(found.cases.targets > n_warm))
    new_items = np.arange(n_warm + 1, n_items + 1)

    def hit_rate(model) -> float:
        scores = model.score(cases)[:, new_items]  # ranked among the new items, as `cold` is
        top10 = new_items[np.argsort(-scores, axis=1, kind="stable")[:, :10]]
        return float((top10 == cases.targets[:, None]).any(axis=1).mean())

    # Less weight decay than the default (tuned against overfitting on real logs): a clean
    # pattern, learned in a few epochs.
    params = {**SMALL, "epochs": 8, "scalar_epochs": 2, "priors": ("transitions",), "weight_decay": 0.5}
    content = NextItemRecommender(content=True, **params).fit(train, n_items, item_features=features)
    ids_only = NextItemRecommender(content=False, **params).fit(train, n_items, item_features=features)
    assert len(cases) == 200
    assert hit_rate(content) > 0.9, f"content HR@10 on new items = {hit_rate(content):.3f}"
    assert hit_rate(ids_only) < 0.6, f"ID-only HR@10 on new items = {hit_rate(ids_only):.3f}"


def test_new_arrivals_rank_first_among_new_products_by_when_they_were_listed():
    """Products without events are ordered by freshness (hours since listed), the signal
    the model cannot learn from its targets; with ``freshness=0`` they tie."""
    frame = planted(n_items=200, n_sessions=400)
    n_items = 204  # 201..204: catalogue items nobody has chosen, all of one category
    category = np.ones(n_items + 1, np.int32)
    category[0] = 0
    features = categories_only(category)
    cases = evaluation_cases(frame.iloc[:1600], frame.iloc[1600:]).cases.take(slice(0, 8))
    hour, now = 3600.0, float(cases.now.max())
    features.added = np.full(n_items + 1, now - 100 * hour)
    features.added[201:] = [now - hour, now - 30 * 24 * hour, np.nan, now - 24 * hour]

    def cold_scores(freshness: float) -> np.ndarray:
        model = NextItemRecommender(epochs=0, scalar_epochs=1, freshness=freshness, **SMALL)
        scores = model.fit(frame, n_items, item_features=features).score(cases)
        # The mixture's denominator follows the freshness term's changes (one case, as serving asks).
        one = {name: value[:1] for name, value in model._inputs(cases).items()}
        alone, normalizer = model.tower_.scores_and_normalizer(one, now=cases.now[:1])
        real = alone[0, 1:].astype(np.float64)
        np.testing.assert_allclose(
            normalizer[0], np.log(np.exp(real - real.max()).sum()) + real.max(), atol=1e-5
        )
        return scores[:, 201:]

    tied = cold_scores(0.0)
    np.testing.assert_allclose(tied, tied[:, :1].repeat(4, axis=1), atol=1e-5)
    fresh = cold_scores(1.0)
    # Listed an hour ago, a day ago, a month ago, then the one whose listing date is unknown.
    assert (np.argsort(-fresh, axis=1) == [0, 3, 1, 2]).all()
    np.testing.assert_allclose(
        fresh[:, 0] - tied[:, 0], -np.log1p((cases.now - now + hour) / hour), atol=1e-4
    )


def test_a_fit_learns_from_the_newest_cases_only_when_capped():
    from recommendations.ml.cases import training_cases

    frame = planted(n_sessions=300)
    every = training_cases(frame)
    newest = training_cases(frame, newest=100)
    assert len(every) == 1200 and len(newest) == 100
    assert newest.now.min() >= np.sort(every.now)[-100]  # the latest positions by time
    later = every.take(np.isin(every.now, newest.now))
    assert (newest.items == later.items).all()  # histories still reach into older events
    model = NextItemRecommender(epochs=1, scalar_epochs=0, max_cases=200, **SMALL).fit(frame, n_items=200)
    assert model.n_train_cases_ + model.n_validation_cases_ == 200


def test_one_request_is_featurized_as_a_batch_of_one_case():
    """Serving featurizes a request with ``featurize_one``; training with ``featurize``. The
    model must see the same numbers: every input equal, on histories shorter than, equal to
    and longer than the window, in and out of the session, priced and not, old and new."""
    from recommendations.ml.cases import CaseBatch
    from recommendations.ml.features import FeatureSpec, ItemFeatures, featurize, featurize_one

    rng = np.random.default_rng(7)
    n_items, length = 300, 8
    features = ItemFeatures(
        category=rng.integers(0, 12, n_items + 1).astype(np.int32),
        price_bucket=rng.integers(0, 6, n_items + 1).astype(np.int8),
        n_categories=12,
        n_price_buckets=5,
    )
    spec = FeatureSpec(
        history_length=length, n_age_buckets=10, top_categories=[1, 3, 4, 9], n_price_buckets=5
    )
    for case in range(300):
        n = int(rng.integers(1, length + 4))
        items = rng.integers(1, n_items + 1, n).tolist()
        types = rng.integers(1, 5, n).tolist()
        now = 1.7e9 + float(rng.integers(0, 10**6))
        times = sorted((now - rng.exponential(10.0 ** rng.integers(0, 7), n)).tolist())
        if case % 7 == 0:
            times[-1] = now + 5.0  # a clock ahead of the server's: age 0
        in_session = (rng.random(n) < 0.5).tolist()
        one = featurize_one(items, types, times, in_session, now, spec, features)
        kept = min(n, length)
        padded = {
            "items": np.zeros((1, length), np.int32),
            "types": np.zeros((1, length), np.int8),
            "times": np.zeros((1, length)),
            "in_session": np.zeros((1, length), bool),
        }
        for name, values in (
            ("items", items),
            ("types", types),
            ("times", times),
            ("in_session", in_session),
        ):
            padded[name][0, length - kept :] = values[-kept:]
        batch = CaseBatch(
            **padded,
            now=np.array([now]),
            targets=np.zeros(1, np.int32),
            target_types=np.zeros(1, np.int8),
            weights=np.ones(1, np.float32),
            is_new=np.ones(1, bool),
        )
        expected = featurize(batch, spec, features)
        for name in ("items", "types", "ages", "context"):
            assert one[name].dtype == expected[name].dtype, name
            np.testing.assert_array_equal(one[name], expected[name], err_msg=f"case {case}: {name}")


def test_item_ids_are_found_both_ways_even_when_ids_share_a_hash():
    """A served model's ids (``ml.item_ids``): index -> id and id -> index, one at a time and
    in a batch; the padding ("") and unknown ids are never an item; with a hash that puts
    every id of a length together, each is still told apart by comparing the ids."""
    from recommendations.ml.item_ids import ItemIds

    class Colliding(ItemIds):
        key = staticmethod(len)

    ids = ["", "7", "12", "ab", "12a", "x" * 40, "ünï", "靴"]
    for table in (ItemIds(ids), Colliding(ids)):
        assert (
            len(table) == len(ids) and list(table) == ids and table[2] == "12" and table[1:3] == ["7", "12"]
        )
        for index, item in enumerate(ids[1:], start=1):
            assert table.index_of[item] == index == table.index_of.get(item) and item in table.index_of
        for unknown in ("", "13", "1", "xx", 12, None):
            assert unknown not in table.index_of and table.index_of.get(unknown, 0) == 0
        with pytest.raises(KeyError):
            table.index_of["13"]
        asked = ["靴", "13", "", "7", "ab", "ba", "x" * 40]
        assert table.indices(asked).tolist() == [7, -1, 0, 1, 3, -1, 5]
        assert table.indices([]).tolist() == []


def test_prior_tables_keep_every_neighbour_and_no_empty_slot():
    """The tower keeps the priors' dense [n_priors, n_items + 1, k] tables as compressed rows:
    each (prior, item) gives back exactly its neighbours and scores in rank order, a padded
    row none, and a table where most rows are empty (EASE's, past 10,000 items) takes a
    fraction of the dense bytes."""
    from recommendations.ml.tower import PriorTable

    rng = np.random.default_rng(3)
    n_priors, size, k = 3, 500, 6
    items = np.zeros((n_priors, size, k), np.int32)
    scores = np.zeros((n_priors, size, k), np.float32)
    for prior in range(n_priors):
        for item in range(1, size):
            count = int(rng.integers(0, k + 1)) if prior != 1 or item < 50 else 0
            items[prior, item, :count] = rng.choice(np.arange(1, size), count, replace=False)
            scores[prior, item, :count] = np.sort(rng.random(count))[::-1]
    table = PriorTable(items, scores)
    asked = np.array([[0, 7, 499, 60], [3, 3, 1, 0]])
    rows = table.rows_of([0, 2], asked)  # [2 priors, 2, 4]
    owner, found, values = table.entries(rows)
    for position, (prior, item) in enumerate((p, i) for p in (0, 2) for i in asked.ravel()):
        mine = owner == position
        filled = items[prior, item] > 0
        np.testing.assert_array_equal(found[mine], items[prior, item][filled])
        np.testing.assert_array_equal(values[mine], scores[prior, item][filled])
    assert not (owner == 0).any()  # item 0, the padding, has no neighbours
    assert table.nbytes < 0.75 * (items.nbytes + scores.nbytes)
    # What a version saves is the compressed rows; read back, they answer the same.
    again = PriorTable.from_exported(table.exported())
    for got, expected in zip(again.entries(rows), table.entries(rows), strict=True):
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="offsets"):
        PriorTable.from_exported({**table.exported(), "prior_shape": np.asarray([n_priors, size - 1])})


def test_a_version_saved_with_dense_prior_tables_scores_as_it_did(trained):
    """Versions saved before the compressed priors hold the dense [n_priors, n_items + 1, k]
    tables: the tower reads those too, and scores exactly as from the compressed rows."""
    from recommendations.ml.tower import NumpyTower, PriorTable

    model, cases = trained
    weights = model.export_weights()
    table = PriorTable.from_exported(weights)
    assert len(table.items) > 0
    k = int(np.diff(table.offsets).max())
    dense_items = np.zeros((table.n_priors, table.size, k), np.int32)
    dense_scores = np.zeros((table.n_priors, table.size, k), np.float32)
    for row in range(table.n_priors * table.size):
        start, end = table.offsets[row], table.offsets[row + 1]
        prior, item = divmod(row, table.size)
        dense_items[prior, item, : end - start] = table.items[start:end]
        dense_scores[prior, item, : end - start] = table.scores[start:end]
    old = {name: value for name, value in weights.items() if name not in (*PriorTable.NAMES, "prior_shape")}
    old.update(prior_items=dense_items, prior_scores=dense_scores)
    inputs = model._inputs(cases)
    np.testing.assert_array_equal(
        NumpyTower(old).scores(inputs, now=cases.now), NumpyTower(weights).scores(inputs, now=cases.now)
    )


def test_score_returns_a_fresh_array(trained):
    model, cases = trained
    batch = cases.take(slice(0, 4))
    first = model.score(batch)
    first[:] = 0
    assert not np.array_equal(model.score(batch), first)


def test_a_saved_version_scores_cases_numbered_by_another_fit(trained):
    """Promotion scores the active version on a candidate's cases: same scores, other numbering."""
    from types import SimpleNamespace

    from recommendations.ml.exported import SavedModel, SavedRecommender

    model, cases = trained
    vocabulary = {
        "preprocessor": {"item_ids": [str(i) for i in range(1, 201)], "category_ids": []},
        "feature_spec": model.feature_spec_.to_json(),
        "item_features": model.item_features_.to_json(),
    }
    saved = SavedRecommender(SavedModel.from_bundle(model.export_weights(), vocabulary))
    # The candidate numbers the same items backwards and knows one more, "new", at index 1.
    candidate_ids = ["new", *(str(i) for i in range(200, 0, -1))]
    saved.fit_preprocessed(None, SimpleNamespace(item_ids_=np.array(candidate_ids, dtype=object)))
    to_candidate = np.zeros(201, np.int64)
    to_candidate[1:] = [candidate_ids.index(str(i)) + 1 for i in range(1, 201)]
    batch = cases.take(slice(0, 32))
    renumbered = batch.take(slice(None))
    renumbered.items = to_candidate[batch.items].astype(np.int32)
    # An item the saved version never saw, early in one history, drops out as in serving.
    renumbered.items[0, 0] = 1 if renumbered.items[0, 0] == 0 else renumbered.items[0, 0]
    scores = saved.score(renumbered)
    expected = model.score(batch)
    np.testing.assert_allclose(scores[:, to_candidate[1:]], expected[:, 1:], rtol=1e-5, atol=1e-5)
    assert np.isneginf(scores[:, 1]).all()  # "new": never recommended by the saved version
    with pytest.raises(TypeError, match="already fitted"):
        saved.fit(None, 3)


def test_keras_file_round_trips(trained, tmp_path):
    import keras

    model, cases = trained
    path = tmp_path / "model.keras"
    model.model_.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    inputs = model._inputs(cases.take(slice(0, 16)))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded.user_vector(inputs)),
        keras.ops.convert_to_numpy(model.model_.user_vector(inputs)),
        rtol=1e-5,
        atol=1e-5,
    )


def test_training_is_reproducible_with_a_seed():
    frame = planted(n_items=50, n_sessions=150)
    first = NextItemRecommender(epochs=1, **SMALL).fit(frame, 50)
    second = NextItemRecommender(epochs=1, **SMALL).fit(frame, 50)
    np.testing.assert_allclose(
        first.export_weights()["item_embedding"], second.export_weights()["item_embedding"], atol=1e-5
    )


def test_sampled_softmax_trains_above_the_threshold():
    frame = planted(n_items=300, n_sessions=600)
    model = NextItemRecommender(epochs=2, sampled_softmax_above=100, n_negatives=64, **SMALL).fit(frame, 300)
    assert model.sampled_
    assert model.history_[-1]["loss"] < model.history_[0]["loss"]


def test_catalogue_items_without_training_events_are_never_drawn_as_negatives():
    frame = planted(n_items=300, n_sessions=600)
    # Items 301..1300 exist only in the catalogue: 1,000 cold items beside the 300 with events.
    model = NextItemRecommender(epochs=1, sampled_softmax_above=100, n_negatives=64, **SMALL).fit(frame, 1300)
    probability = np.exp(np.asarray(model.model_.item_log_probability))
    assert probability[301:].sum() < 1e-6  # before: 1,000 of 1,300 smoothed counts, most of the draws
    assert probability[1:300].min() > 0  # a rare item with events is still drawn


def test_sampled_logits_are_the_full_logits_of_each_candidate_once():
    """The sampled head, column by column, against the full softmax of the same weights: each
    candidate's first column is its full logit (history terms included) minus log Q; later
    duplicates and the target drawn as a negative are masked; column 0 is the target's."""
    import keras

    frame = planted(n_items=300, n_sessions=600)
    model = NextItemRecommender(
        epochs=1,
        scalar_epochs=1,
        sampled_softmax_above=100,
        n_negatives=64,
        prior_window=3,
        mixture=False,
        **SMALL,
    ).fit(frame, 300)
    net = model.model_
    cases = evaluation_cases(frame.iloc[:2000], frame.iloc[2000:2400], max_history=20).cases.take(
        slice(0, 32)
    )
    x = model._inputs(cases)
    x["target"] = cases.targets.astype(np.int32)
    state = keras.ops.convert_to_numpy(net.seed_generator.state)
    sampled = keras.ops.convert_to_numpy(net(x))
    net.seed_generator.state.assign(state)  # the same draws again
    candidates = keras.ops.convert_to_numpy(net.candidates(keras.ops.convert_to_tensor(x["target"])))
    log_q = keras.ops.convert_to_numpy(net.log_inclusion(len(candidates)))
    net.sampled = False
    full = keras.ops.convert_to_numpy(net(x))
    net.sampled = True
    rows = np.arange(len(cases))
    np.testing.assert_allclose(
        sampled[:, 0], full[rows, x["target"]] - log_q[x["target"]], rtol=1e-4, atol=1e-4
    )
    seen = set()
    for column, item in enumerate(candidates, start=1):
        masked = sampled[:, column] < -1e8
        if item in seen:
            assert masked.all()  # a duplicate counts once
            continue
        seen.add(item)
        expected = full[:, item] - log_q[item]
        hit = x["target"] == item
        assert masked[hit].all()  # the target is no negative of its own case
        np.testing.assert_allclose(sampled[~hit, column], expected[~hit], rtol=1e-4, atol=1e-4)
    assert len(seen) < len(candidates)  # the draws did repeat items: the masking was exercised


def test_the_repeat_explore_mixture_is_a_distribution_and_ranks_the_session_first():
    """Mixture mode: outputs are log-probabilities over the catalogue (they sum to one), the
    gate is the only thing between the two parts, and in the sampled head the target's
    probability is a probability too."""
    import keras

    frame = planted(n_items=300, n_sessions=600)
    model = NextItemRecommender(epochs=1, scalar_epochs=1, **SMALL).fit(frame, 300)
    assert model.model_.mixture
    cases = evaluation_cases(frame.iloc[:2000], frame.iloc[2000:2400], max_history=20).cases.take(
        slice(0, 32)
    )
    x = model._inputs(cases)
    log_p = keras.ops.convert_to_numpy(model.model_(x))
    np.testing.assert_allclose(np.log(np.exp(log_p.astype(np.float64)).sum(axis=1)), 0.0, atol=1e-4)
    served = model.score(cases)  # the numpy tower: the same distribution
    np.testing.assert_allclose(served[:, 1:], log_p[:, 1:], rtol=1e-4, atol=1e-4)
    weights = model.tower_.weights  # a gate near 1 still ranks every item (no -inf)
    weights["mix_bias"] = weights["mix_bias"] + np.eye(1, len(weights["mix_bias"]), dtype=np.float32)[0] * 100
    assert np.isfinite(model.score(cases)[:, 1:]).all()

    sampled = NextItemRecommender(
        epochs=1, scalar_epochs=1, sampled_softmax_above=100, n_negatives=64, **SMALL
    ).fit(frame, 300)
    x = sampled._inputs(cases)
    x["target"] = cases.targets.astype(np.int32)
    pair = keras.ops.convert_to_numpy(sampled.model_(x))
    assert pair.shape == (32, 2)
    np.testing.assert_allclose(np.exp(pair.astype(np.float64)).sum(axis=1), 1.0, atol=1e-4)


JAX_SCRIPT = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, os.environ["ROOT"])
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    from tests.test_model import planted, SMALL
    from recommendations.ml.training import NextItemRecommender
    model = NextItemRecommender(epochs=1, **SMALL).fit(planted(n_items=50, n_sessions=200), 50)
    model.sampled_ = False
    print("JAX OK", len(model.history_), model.history_[0]["loss"])
    """
)


def test_each_prior_finds_the_planted_neighbour():
    from recommendations.ml.features import PRIORS, item_priors

    frame = planted(n_items=60, n_sessions=600)
    names = tuple(name for name in PRIORS if name not in ("content", "category"))  # content: next tests
    items, scores = item_priors(frame, 60, names, k=5)
    assert items.shape == scores.shape == (len(names), 61, 5)
    for name, table, score in zip(names, items, scores, strict=True):
        # Item 20 is always followed by 21 and preceded by 19: those two are its best neighbours
        # (the transitions prior only looks forward: 21, then 22).
        expected = {21, 22} if name == "transitions" else {19, 21}
        assert set(table[20, :2]) == expected, name
        assert (np.diff(score[20]) <= 0).all() and score[20, 0] > 0, name
        assert (table[0] == 0).all(), name  # padding has no neighbours
    # EASE's table is scaled so an item's best neighbour scores about 1, like the others.
    ease = scores[list(names).index("ease")]
    assert 0.5 < ease[1:, 0][ease[1:, 0] > 0].mean() < 1.5


def test_the_content_prior_offers_same_category_items_nearest_in_price_new_ones_included():
    from recommendations.ml.features import ItemFeatures, content_prior

    frame = planted(n_items=40, n_sessions=200)  # items up to 40 have events; 41..50 are catalogue only
    with_events = set(frame["item_idx"].tolist())
    category = np.array([0] + [1 + (i % 2) for i in range(1, 51)], np.int32)  # odd: 2, even: 1
    bucket = np.array([0] + [1 + (i // 5) % 10 for i in range(1, 51)], np.int8)
    features = ItemFeatures(category=category, price_bucket=bucket, n_categories=3, n_price_buckets=10)
    items, scores = content_prior(frame, 50, k=4, item_features=features)
    row = items[10]  # item 10: category 1, bucket 3
    seen, new = row[:2], row[2:]  # half the slots for items with events, half for those without
    assert all(i in with_events and category[i] == category[10] and i != 10 for i in seen)
    assert all(i not in with_events and category[i] == category[10] for i in new) and new.all()
    assert scores[10, 0] == 1.0  # another item in the same bucket: the nearest price
    assert (items[0] == 0).all()  # padding has no neighbours
    cold = items[42]  # a new item has neighbours too (it may be in a history)
    assert set(cold[cold > 0]) and all(category[i] == category[42] for i in cold[cold > 0])

    # With prices (at fit time), closeness is in log price, finer than a bucket.
    price = np.full(51, np.nan)
    price[[10, 12, 14, 16, 42, 44, 46]] = [100.0, 400.0, 104.0, 90.0, 180.0, 98.0, 20.0]
    priced = ItemFeatures(
        category=category, price_bucket=bucket, n_categories=3, n_price_buckets=10, price=price
    )
    items, scores = content_prior(frame, 50, k=6, item_features=priced)
    assert items[10, :3].tolist()[:2] == [14, 16] and items[10, 3] == 44  # 104, then 90; new: 98
    assert scores[10, 0] > scores[10, 1] > 0.5 and scores[10, 3] > scores[10, 4]
    # A brand shared with the item counts more than a little price distance.
    brand = np.zeros(51, np.int32)
    brand[[10, 16, 46]] = 7
    branded = ItemFeatures(
        category=category, price_bucket=bucket, n_categories=3, n_price_buckets=10, price=price, brand=brand
    )
    items, _ = content_prior(frame, 50, k=6, item_features=branded)
    assert items[10, :2].tolist() == [16, 14]  # without the brand: [14, 16]
    assert items[10, 3:5].tolist() == [44, 46]  # without: [44, 42]


def test_the_category_prior_offers_the_most_popular_items_of_the_category_counted_by_sessions():
    from recommendations.ml.features import ItemFeatures, category_prior

    # Item 3 is in 5 sessions, item 5 in 3, item 1 in 2; item 7 in 1 session, 40 times.
    sessions = [[3, 5], [3, 5], [3, 1], [3, 1], [3, 5], [7] * 40, [2, 4]]
    frame = planted(n_items=10, n_sessions=sum(map(len, sessions)), length=1)
    frame["session"] = [f"s{s}" for s, items in enumerate(sessions) for _ in items]
    frame["shopper"] = "s:" + frame["session"]
    frame["item_idx"] = np.array([item for items in sessions for item in items], np.int32)
    category = np.array([0, 1, 2, 1, 2, 1, 0, 1, 1], np.int32)  # odd items: category 1; item 8 is cold
    features = ItemFeatures(
        category=category, price_bucket=np.zeros(9, np.int8), n_categories=3, n_price_buckets=1
    )
    items, scores = category_prior(frame, 8, k=3, item_features=features)
    assert items[1].tolist() == [3, 5, 7]  # by sessions, not events
    np.testing.assert_allclose(scores[1], [1.0, 0.6, 0.2], rtol=1e-6)
    assert items[3].tolist() == [5, 1, 7]  # never itself
    assert items[8].tolist() == [3, 5, 1]  # an item without events gets its category's best
    assert items[2].tolist() == [4, 0, 0] and (items[6] == 0).all() and (items[0] == 0).all()


def test_priors_are_counted_without_the_validation_slice_while_the_model_learns(monkeypatch):
    import recommendations.ml.training as training

    seen = []
    counting = training.item_priors

    def spy(frame, *args, **kwargs):
        seen.append(frame["timestamp"].max())
        return counting(frame, *args, **kwargs)

    monkeypatch.setattr(training, "item_priors", spy)
    frame = planted(n_items=60, n_sessions=400)
    model = NextItemRecommender(**SMALL, epochs=1, scalar_epochs=1).fit(frame, 60)
    cut = pd.Timestamp(model.prior_cut_, unit="s", tz="UTC")
    # While learning: only events before the first validation case; at the end: all of them.
    assert seen[0] < cut <= frame["timestamp"].max() == seen[-1]
    assert len(seen) == 2


def test_unknown_priors_are_refused():
    with pytest.raises(ValueError, match="unknown priors"):
        NextItemRecommender(**SMALL, priors=("cooccurrence", "nearest")).fit(planted(), 200)


def test_one_epoch_on_the_jax_backend():
    import importlib.util

    if importlib.util.find_spec("jax") is None:
        pytest.skip('JAX is not installed here (pip install "jax[cpu]" to run this test)')
    env = {**os.environ, "KERAS_BACKEND": "jax", "ROOT": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "JAX OK 1" in result.stdout


def test_no_priors_named_trains_without_priors():
    model = NextItemRecommender(**SMALL, epochs=1, scalar_epochs=0, priors=()).fit(planted(), 200)
    assert model.model_.n_priors == 0 and model.prior_cut_ is None
