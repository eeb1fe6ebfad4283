"""Lists about one item: similar items keep to their evidence, bought together to baskets.

Each list's evidence and fallbacks, the reasons that name them, and the attack a threshold
stops (one shopper's fake basket)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recommendations.ml.cases import TYPE_INDEX, CaseBatch
from recommendations.ml.item_to_item import anchor_cases
from recommendations.ml.related import Evidence, evidence, top_levels
from recommendations.serving import popularity, services
from recommendations.serving.together import association_scores
from tests import factories
from tests.serving_world import ITEMS, items_of, store_history

PHONES = items_of("electronics.smartphone")
KETTLES = items_of("appliances.kitchen.kettle")
SOFAS = items_of("furniture.living_room.sofa")
VIEW, CART = TYPE_INDEX["view"], TYPE_INDEX["cart"]


@pytest.mark.no_db
def test_association_scores_match_hand_computed_values():
    # 10 baskets; a in 4 of them, b in 2 (both with a), c in 5 (1 with a).
    popularity_ = {"a": 4, "b": 2, "c": 5}
    scores = association_scores([(4, {"b": 2, "c": 1})], popularity_, 10, weight=0.5, smoothing=2.0)

    def expected(n_b: int, co: int) -> float:
        p = (n_b + 1) / (10 + 3)
        return math.log(p) + 0.5 * (math.log((co + 2 * p) / (4 + 2)) - math.log(p))

    assert scores == pytest.approx({"b": expected(2, 2), "c": expected(5, 1)})
    # Both of b's baskets have a, one of c's five: as a posterior (weight 1) b wins; with
    # weight 0 popularity alone ranks, and c wins.
    tied = [(4, {"b": 2, "c": 1})]
    posterior = association_scores(tied, popularity_, 10, weight=1.0, smoothing=2.0)
    assert posterior["b"] > posterior["c"]
    alone = association_scores(tied, popularity_, 10, weight=0.0)
    assert alone["c"] > alone["b"]
    assert association_scores([], popularity_, 10, ["b"]) == {"b": pytest.approx(math.log(3 / 13))}


@pytest.mark.no_db
def test_item_to_item_cases_are_a_view_then_a_view_of_another_item_with_that_view_alone():
    items = np.array([[0, 5, 7], [0, 5, 7], [0, 5, 7], [0, 0, 7]], np.int32)
    types = np.array([[0, VIEW, VIEW], [0, VIEW, CART], [0, VIEW, VIEW], [0, 0, VIEW]], np.int8)
    cases = CaseBatch(
        items=items,
        types=types,
        times=np.ones((4, 3)),
        in_session=np.ones((4, 3), bool),
        now=np.full(4, 2.0),
        targets=np.array([9, 9, 7, 3], np.int32),  # row 2 repeats the anchor
        target_types=np.array([VIEW, VIEW, VIEW, CART], np.int8),
        weights=np.ones(4, np.float32),
        is_new=np.array([True, True, False, True]),
    )
    alone, rows = anchor_cases(cases)
    assert rows.tolist() == [0]  # row 1's anchor is a cart, row 2 the same item, row 3's target a cart
    assert alone.items.tolist() == [[0, 0, 7]] and alone.types.tolist() == [[0, 0, VIEW]]
    assert alone.targets.tolist() == [9] and alone.is_new.all()


@pytest.mark.no_db
def test_evidence_is_co_views_then_the_category_then_its_top_level():
    category = np.array([0, 1, 1, 2, 3, 0])
    top = top_levels(["", "electronics.phone", "electronics.audio", "garden.tools"], category)
    assert top.tolist() == [0, 1, 1, 1, 2, 0]  # items 1-3 are electronics
    found = evidence(1, np.arange(6), category, top, co_viewed=np.array([4]))
    assert found.tolist() == [
        Evidence.NONE,  # padding
        Evidence.SAME_CATEGORY,  # the anchor itself, never listed by callers
        Evidence.SAME_CATEGORY,
        Evidence.SAME_TOP_CATEGORY,
        Evidence.CO_VIEW,  # another department, but shoppers viewed both
        Evidence.NONE,  # no category, no co-views: never shown
    ]


def test_a_similar_list_is_shorter_rather_than_unrelated_and_names_its_evidence(served_model):
    store_history()  # every visit keeps to one category: a phone's co-views are phones
    similar = services.similar_items(PHONES[0], limit=20)
    assert similar.source.startswith("model")
    assert sorted(r.item_id for r in similar) == sorted(PHONES[1:]), "nine phones and nothing else"
    assert {r.reason for r in similar} <= {
        f"Shoppers who viewed “Smartphone {PHONES[0]}” also viewed this",
        f"Same category as “Smartphone {PHONES[0]}”",
    }
    again = services.similar_items(PHONES[0], limit=20)
    assert [(r.item_id, r.reason) for r in again] == [(r.item_id, r.reason) for r in similar]

    # Two shoppers viewed the phone and a kettle in one visit: now the kettle has evidence.
    for visit in ("both-1", "both-2"):
        for item in (PHONES[0], KETTLES[3]):
            factories.event("view", item_id=item, session_key=visit)
    popularity.clear_item(PHONES[0])
    reasons = {r.item_id: r.reason for r in services.similar_items(PHONES[0], limit=20)}
    assert reasons[KETTLES[3]] == f"Shoppers who viewed “Smartphone {PHONES[0]}” also viewed this"
    assert not set(reasons) - set(PHONES) - {KETTLES[3]}


def basket(visit: str, *lines: tuple[str, str]) -> None:
    for event_type, item in lines:
        factories.event(event_type, item_id=item, session_key=visit, category_id=ITEMS[item])


def test_bought_together_names_the_strongest_evidence_and_ignores_one_shoppers_basket(
    catalogue, recorder_settings
):
    for visit in ("p1", "p2"):  # two shoppers bought the kettle with sofa 1
        basket(visit, ("purchase", KETTLES[0]), ("purchase", SOFAS[1]))
    for visit in ("c1", "c2"):  # two carted it with sofa 2, one of them bought the kettle
        basket(visit, ("cart", KETTLES[0]), ("cart", SOFAS[2]))
    basket("c2", ("purchase", KETTLES[0]))
    for visit in ("v1", "v2"):  # two viewed the kettle and bought a phone
        basket(visit, ("view", KETTLES[0]), ("purchase", PHONES[4]))
    basket("attacker", ("purchase", KETTLES[0]), ("purchase", SOFAS[9]))  # one shopper's basket

    name = f"“Kettle {KETTLES[0]}”"
    reasons = {r.item_id: r.reason for r in services.bought_together(KETTLES[0], limit=10)}
    assert reasons == {
        SOFAS[1]: f"Often bought with {name}",
        SOFAS[2]: f"Often put in the cart with {name}",
        PHONES[4]: f"Shoppers who viewed {name} bought this",
    }, "the attacker's sofa needs a second shopper"
    assert next(iter(reasons)) == SOFAS[1]  # two co-purchases outweigh two co-carts

    recorder_settings(BOUGHT_TOGETHER_MIN_SHOPPERS=1)
    popularity.clear()
    popularity.clear_item(KETTLES[0])
    assert SOFAS[9] in [r.item_id for r in services.bought_together(KETTLES[0], limit=10)]


def test_bought_together_fills_with_best_sellers_of_the_categories_bought_with_its_category(catalogue):
    for visit in ("k1", "k2"):  # kettles go with sofas
        basket(visit, ("purchase", KETTLES[0]), ("purchase", SOFAS[1]))
    for visit in ("s1", "s2", "s3"):  # sofa 2 sells best on its own
        basket(visit, ("purchase", SOFAS[2]))
    basket("p1", ("purchase", PHONES[0]))  # phones were never bought with a kettle

    together = services.bought_together(KETTLES[5], limit=4)  # no basket has this kettle
    assert [r.item_id for r in together] == [SOFAS[2], SOFAS[1]]
    assert {r.reason for r in together} == {f"Often bought with items like “Kettle {KETTLES[5]}”"}
    assert together.source == "categories"
    assert not services.bought_together(PHONES[3], limit=4), "no evidence, no list"


def test_for_you_fills_to_its_limit_with_trending_before_the_models_noise(served_model, recorder_settings):
    from recommendations.identity import Shopper

    recorder_settings(MAX_PER_CATEGORY=None)  # three categories: the diversity cap would stop at 12
    store_history()  # every category trends; visits keep to one category
    for item in KETTLES[:3]:
        factories.event("view", item_id=item, session_key="kettle-fan")
    result = services.for_you(Shopper(visitor="kettle-fan"), limit=20)
    assert len(result) == 20, "27 items are not taken: the list is full"
    kinds = [ITEMS[r.item_id] for r in result]
    assert kinds[:7] == ["appliances.kitchen.kettle"] * 7  # the model's picks first
    others = [r.reason for r in result if ITEMS[r.item_id] != "appliances.kitchen.kettle"]
    # Another category's items have no chance by the model: trending ones fill, said as such.
    assert others and all(reason in {"Trending now", "Popular in the shop"} for reason in others)
