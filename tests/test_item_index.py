"""A large catalogue's item index: a request scored on the index's candidates gets every term
of the exact scores on them, and the same normalizer where the sample covers the catalogue."""

from __future__ import annotations

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("keras", reason="the ml extra is not installed")
pytest.importorskip("faiss", reason="the large extra is not installed")

from recommendations.ml import item_index, tower  # noqa: E402
from recommendations.ml.cases import evaluation_cases  # noqa: E402
from recommendations.ml.tower import NumpyTower  # noqa: E402
from recommendations.ml.training import NextItemRecommender  # noqa: E402
from tests.test_model import SMALL, categories_only, sessions_frame  # noqa: E402

pytestmark = pytest.mark.no_db

N_ITEMS, N_CATEGORIES = 400, 8


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A model with every term (priors, repeat mixture, category match), its index and cases."""
    category = np.concatenate([[0], np.arange(N_ITEMS) % N_CATEGORIES + 1]).astype(np.int32)
    members = [np.flatnonzero(category == c) for c in range(1, N_CATEGORIES + 1)]
    rng = np.random.default_rng(5)
    frame = sessions_frame([list(rng.choice(members[s % N_CATEGORIES], 6)) for s in range(900)])
    params = {**SMALL, "epochs": 1, "scalar_epochs": 2, "category_match": True}
    model = NextItemRecommender(**params).fit(frame, N_ITEMS, item_features=categories_only(category))
    weights = model.export_weights()
    path = tmp_path_factory.mktemp("index") / item_index.FILE
    item_index.build(weights["item_embedding"], weights["item_bias"], path)
    cases = evaluation_cases(frame.iloc[:4000], frame.iloc[4000:]).cases.take(slice(0, 60))
    return model, weights, path, cases


def towers(fitted, mixture: bool = True) -> tuple[NumpyTower, NumpyTower]:
    """(exact, indexed) towers of the same weights, with new products and the freshness term."""
    _, weights, path, _ = fitted
    weights = {**weights, "mixture": np.asarray(int(mixture))}
    pair = NumpyTower(weights), NumpyTower(weights, index=item_index.ItemIndex(path, N_ITEMS))
    for each in pair:
        each.freshness = 0.3
        each.fresh_items = np.array([5, 17, 250])
        each.fresh_added = np.array([1.7e9, np.nan, 1.71e9])
    return pair


def requests(fitted):
    """Each case as one request's inputs, with its moment."""
    model, _, _, cases = fitted
    inputs = model._inputs(cases)
    for row in range(len(cases)):
        yield {name: value[row : row + 1] for name, value in inputs.items()}, cases.now[row : row + 1]


def candidate_and_exact(exact, indexed, one, now):
    forward = exact.forward(one)
    terms = exact.history_terms(one, forward[1])
    dense, normalizer = exact.scores_and_normalizer(one, forward, terms, now=now)
    columns, logits, log_normalizer = indexed.candidate_scores(one, forward, terms, now)
    return dense[0], float(normalizer[0]), columns, logits, log_normalizer


@pytest.mark.parametrize("mixture", [True, False])
def test_probing_every_list_gives_the_exact_scores_of_every_item(fitted, mixture, monkeypatch):
    monkeypatch.setattr(item_index, "CANDIDATES", N_ITEMS)
    exact, indexed = towers(fitted, mixture)
    indexed.index.index.nprobe = indexed.index.index.nlist
    for one, now in requests(fitted):
        dense, normalizer, columns, logits, log_normalizer = candidate_and_exact(exact, indexed, one, now)
        np.testing.assert_array_equal(columns, np.arange(1, N_ITEMS + 1))
        np.testing.assert_allclose(logits, dense[1:], rtol=1e-5, atol=1e-5)
        assert log_normalizer == pytest.approx(normalizer, abs=1e-5)


def test_few_candidates_are_scored_exactly_and_the_sample_makes_the_normalizer(fitted, monkeypatch):
    """A few of the index's candidates (the rest of the catalogue outside them): each is
    scored as the exact path scores it, the softmax mass outside them comes from the sample
    (here the whole catalogue: the normalizer is exact), and the exact best item is among
    them nearly always."""
    monkeypatch.setattr(item_index, "CANDIDATES", 16)
    monkeypatch.setattr(tower, "CATEGORY_CANDIDATES", 0)
    exact, indexed = towers(fitted)
    found = []
    for one, now in requests(fitted):
        dense, normalizer, columns, logits, log_normalizer = candidate_and_exact(exact, indexed, one, now)
        assert len(columns) < N_ITEMS / 3
        np.testing.assert_allclose(logits, dense[columns], rtol=1e-5, atol=1e-5)
        assert log_normalizer == pytest.approx(normalizer, abs=1e-4)
        found.append(int(np.argmax(dense)) in set(columns.tolist()))
    assert np.mean(found) >= 0.9


def test_a_sample_of_the_catalogue_estimates_the_mass_outside_the_candidates(fitted, monkeypatch):
    monkeypatch.setattr(item_index, "CANDIDATES", 16)
    monkeypatch.setattr(item_index, "SAMPLE", 80)  # a fifth of the catalogue
    monkeypatch.setattr(tower, "CATEGORY_CANDIDATES", 0)
    exact, indexed = towers(fitted, mixture=False)
    errors = [
        candidate_and_exact(exact, indexed, one, now)[4] - candidate_and_exact(exact, indexed, one, now)[1]
        for one, now in requests(fitted)
    ]
    # Within 10 % of the softmax's denominator, and not biased to one side.
    assert np.median(np.abs(errors)) < 0.1 and abs(np.mean(errors)) < 0.05
