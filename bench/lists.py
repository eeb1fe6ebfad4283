"""Lists suite: "similar items" and "bought together", each against what a shop would otherwise use.

1. Similar items, item to item, on the later part of both logs (the learning suite's splits
   and catalogues, ``learning.DATASETS``): given an item a shopper viewed, the next
   different item they viewed (``item_to_item.anchor_cases``: each history cut to that one view).
   Ours is ``item_to_item.SimilarItems``: the for-you model (``NextItemRecommender``, defaults)
   asked about the one item, keeping only candidates with evidence (co-viewed, same
   category or top-level category), which is what a similar list shows. Beside it: the
   same model without the evidence filter, co-views alone (``baselines.ItemKNN``: session
   co-occurrence, counted once per session), the ``implicit`` library's BM25 item-kNN and
   same-category popularity (``baselines.CategoryPopular``). MRR@20 and HR@20 on cases whose
   next item had training events (new products as next items in their own row); target:
   ours ≥ 1.10 x the best of co-views, BM25 and same-category popularity.
2. Bought together, basket completion on Groceries (9,835 real baskets, no timestamps: the
   file's order is taken as time): the last 20 % of baskets are the test, each with two or
   more items loses one item drawn at random (seeded), and the rest of the basket asks for
   it; HR@10 and MRR@10 over the items not in the basket. Ours is
   ``serving.together.association_scores`` (what the shop's list ranks with), its two
   constants chosen on a dev split of the earlier baskets (the last 20 % of them), shown in
   a table here. Beside it: association rules by lift (pairs with support ≥ 0.006 and
   confidence ≥ 0.25, the textbook setting for this data; each consequent scored by its best
   rule's lift, so only fired rules are listed), the same rules with popularity filling the
   rest of the list, confidence (the sum of P(b | a)), and popularity. Target: HR@10 ≥ 1.10 x
   lift rules.

3. In the demo shop: its REES46 slice loaded into the bench database (``shop_load_demo``, the
   newest event moved to now) and a version trained as ``make demo`` does; then, through
   ``services``, the similar list (10 items) of the 50 products viewed by the most distinct
   shoppers, and the bought-together list (6 items) of every product ever bought. Targets:
   ≥ 90 % of the similar items shown share the product's top-level category or carry
   co-view evidence in their reason; a bought-together list on ≥ 50 % of the pages of
   products ever bought, with the demo's settings (``BOUGHT_TOGETHER_MIN_SHOPPERS`` 1 there:
   no pair in the slice was bought together by two shoppers) and, for information, with the
   default (2).

``--quick``: the model trains one epoch per stage, one log only.
"""

from __future__ import annotations

import csv
from typing import Any

from bench import common, learning
from bench.report import Part, Section, Table, decimals, ratio_text, strong, verdict

K = 20
TARGET = 1.10
OURS = "similar_items"
#: The references of the similar-items target, and what each is called in the tables.
REFERENCES = {"co_views": "co-views (item_knn)", "implicit_bm25_knn": "BM25 item-kNN (implicit)",
              "category_popular": "same-category popularity"}  # fmt: skip
UNFILTERED = "mlp_attention (no evidence filter)"
#: The two orders of a similar list compared on the dev splits (the shop uses the model's).
ORDERS = {False: "the model's order", True: "the item's category first, then the model's order"}

GROCERIES = learning.DATA / "groceries" / "groceries.csv"
BASKET_K = 10
TEST_SHARE = 0.2
#: (weight, smoothing) pairs tried on the dev split for ``association_scores``.
GRID = [(w, a) for w in (0.3, 0.5, 0.7, 1.0) for a in (2.0, 10.0, 30.0)]
RULE_SUPPORT, RULE_CONFIDENCE = 0.006, 0.25


# --- 1. similar items ------------------------------------------------------------------------


def measure_similar(dataset: learning.Dataset, quick: bool, dev: bool = False) -> dict[str, Any]:
    import numpy as np

    from bench.peers import PEERS
    from recommendations.ml.baselines import CategoryPopular, ItemKNN
    from recommendations.ml.cases import evaluation_cases
    from recommendations.ml.evaluation import evaluate
    from recommendations.ml.frames import catalogue_from_events, merge_catalogues, split_at
    from recommendations.ml.item_to_item import SimilarItems, anchor_cases
    from recommendations.ml.preprocessing import Preprocessor
    from recommendations.ml.training import NextItemRecommender

    frame = common.read_events(dataset.path, dataset.format)
    train, test = split_at(frame, dataset.split)
    if dev:  # the training side alone, split again as the selection suite does
        from bench.selection import DEV_QUANTILE

        train, test = split_at(train, train["timestamp"].quantile(DEV_QUANTILE))
        known = learning.read_catalogue(dataset, until=dataset.split)
    else:
        known = learning.read_catalogue(dataset)
    catalogue = merge_catalogues(catalogue_from_events(train, test), known)
    preprocessor = Preprocessor().fit(train, catalogue=catalogue)
    train_t, test_t = preprocessor.transform(train), preprocessor.transform(test)
    built = evaluation_cases(train_t, test_t, max_history=50)
    cases, rows = anchor_cases(built.cases)
    common.progress(f"{dataset.label}: {len(cases):,} item-to-item cases of {len(built.cases):,}")
    model = NextItemRecommender(**({"epochs": 1, "scalar_epochs": 1} if quick else {}))
    model.fit_preprocessed(train_t, preprocessor)
    models: dict[str, Any] = {
        OURS: SimilarItems(model).fit_preprocessed(train_t, preprocessor),
        UNFILTERED: model,
        "co_views": ItemKNN(),
        "implicit_bm25_knn": PEERS["implicit_bm25_knn"](),
        "category_popular": CategoryPopular(),
    }
    if dev:
        for first in (False, True):
            models[ORDERS[first]] = SimilarItems(model, same_category_first=first).fit_preprocessed(
                train_t, preprocessor
            )
    for name in ("co_views", "implicit_bm25_knn", "category_popular"):
        models[name].fit_preprocessed(train_t, preprocessor)
    cold_items = np.asarray(preprocessor.item_popularity_) == 0
    cold_items[0] = False
    variants = evaluate(
        models,
        cases,
        k=K,
        item_popularity=preprocessor.item_popularity_,
        n_items=int(preprocessor.n_items_),
        per_case=True,
        is_cold=built.is_cold[rows],
        cold_items=cold_items,
        item_added=preprocessor.item_added_,
    )
    return {"dataset": dataset, "variants": variants, "n_cases": len(cases)}


def similar_part(run: dict[str, Any]) -> tuple[Part, bool]:
    """One log: the item-to-item table and the target's verdict (on next items with events)."""
    dataset, variants = run["dataset"], run["variants"]
    mrr, hr = f"mrr@{K}", f"hr@{K}"
    blocks: list[Any] = []
    met = True
    for variant, label in (
        ("new", "next items with training events"),
        ("cold", "new products as next items"),
    ):
        data = variants.get(variant)
        if not data or not data["n_cases"]:
            continue
        models = data["models"]
        best = max(REFERENCES, key=lambda name: models[name][mrr] or 0.0)
        ranks = data.get("reciprocal_ranks", {})
        interval = learning.ratio_interval(ranks.get(OURS, []), ranks.get(best, []))
        rows = []
        for name in (OURS, UNFILTERED, *REFERENCES):
            figures = models[name]
            shown = strong(name) if name == OURS else REFERENCES.get(name, name)
            rows.append(
                [
                    shown,
                    decimals(figures[hr]),
                    decimals(figures[mrr]),
                    ratio_text(learning.ratio(figures[mrr], models[best][mrr])),
                ]
            )
        ratio_mrr = learning.ratio(models[OURS][mrr], models[best][mrr])
        ratio_hr = learning.ratio(models[OURS][hr], max(models[name][hr] or 0.0 for name in REFERENCES))
        blocks.append(f"{label.capitalize()} ({data['n_cases']:,} cases):")
        blocks.append(Table(["model", f"HR@{K}", f"MRR@{K}", f"MRR vs best reference ({best})"], rows))
        if variant == "new":
            ok = ratio_mrr is not None and ratio_mrr >= TARGET
            met = met and ok
            blocks.append(
                f"Ours / best reference: MRR@{K} {strong(ratio_text(ratio_mrr))} "
                f"(95% paired bootstrap interval {learning.interval_text(interval)}), HR@{K} "
                f"{ratio_text(ratio_hr)}; target ≥ {TARGET:.2f} on MRR@{K}: {verdict(ok)}."
            )
    return Part(f"Similar items: {dataset.label}", blocks), met


def order_part(runs: list[dict[str, Any]]) -> Part:
    """How a similar list is ordered, chosen on the dev splits of both logs' training sides."""
    mrr, hr = f"mrr@{K}", f"hr@{K}"
    rows = []
    for run in runs:
        models = run["variants"]["new"]["models"]
        for first, label in ORDERS.items():
            shown = label if first else strong(label)
            rows.append(
                [run["dataset"].label, shown, decimals(models[label][hr]), decimals(models[label][mrr])]
            )
        rows.append(
            [run["dataset"].label, "same-category popularity (reference)"]
            + [decimals(models["category_popular"][metric]) for metric in (hr, mrr)]
        )
    return Part(
        "Similar items: the order, chosen on the dev splits",
        [
            "Each log's training side split again at the selection suite's quantile; next items "
            "with training events. Bold: the order the shop uses; putting the item's category first "
            "(as same-category popularity does) changes little, since the model's category match "
            "already ranks it first.",
            Table(["log", "order", f"HR@{K}", f"MRR@{K}"], rows),
        ],
    )


# --- 2. bought together -------------------------------------------------------------------------


def read_baskets() -> list[list[str]]:
    with open(GROCERIES, newline="") as handle:
        return [sorted(set(row)) for row in csv.reader(handle) if row]


def completion_cases(baskets: list[list[str]], seed: int = 0) -> list[tuple[list[str], str]]:
    """Each basket of two or more items loses one, drawn at random: (the rest, the hidden item)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    cases = []
    for basket in baskets:
        if len(basket) >= 2:
            hidden = basket[int(rng.integers(len(basket)))]
            cases.append(([item for item in basket if item != hidden], hidden))
    return cases


class BasketCounts:
    """Pair and item counts of training baskets (each basket once per item)."""

    def __init__(self, baskets: list[list[str]]) -> None:
        from collections import Counter, defaultdict

        self.total = len(baskets)
        self.popularity: Counter = Counter()
        self.pairs: dict[str, Counter] = defaultdict(Counter)
        for basket in baskets:
            self.popularity.update(basket)
            for a in basket:
                for b in basket:
                    if a != b:
                        self.pairs[a][b] += 1
        self.items = sorted(self.popularity)


def completion_metrics(cases: list[tuple[list[str], str]], counts: BasketCounts, score) -> dict[str, float]:
    """HR@10 and MRR@10 of ``score(basket) -> {item: score}`` (items in the basket never listed;
    ties by name, so every method is deterministic)."""
    hits = reciprocal = 0.0
    for basket, hidden in cases:
        scores = score(basket)
        present = set(basket)
        ranked = sorted(
            (item for item, value in scores.items() if item not in present and value > float("-inf")),
            key=lambda item: (-scores[item], item),
        )[:BASKET_K]
        if hidden in ranked:
            hits += 1
            reciprocal += 1.0 / (ranked.index(hidden) + 1)
    return {"hr": hits / len(cases), "mrr": reciprocal / len(cases)}


def basket_methods(counts: BasketCounts, weight: float, smoothing: float) -> dict[str, Any]:
    """Each method as ``score(basket) -> {item: score}``."""
    from recommendations.serving.together import association_scores

    total, popularity, pairs = counts.total, counts.popularity, counts.pairs
    share = {item: n / total for item, n in popularity.items()}

    def rule(a: str, b: str) -> float | None:
        """The lift of {a} => {b} when the rule passes support and confidence, else None."""
        both = pairs[a].get(b, 0)
        if both < RULE_SUPPORT * total or both / popularity[a] < RULE_CONFIDENCE:
            return None
        return both / total / (share[a] * share[b])

    def lift_rules(basket: list[str]) -> dict[str, float]:
        best: dict[str, float] = {}
        for a in basket:
            for b in pairs.get(a, {}):
                lift = rule(a, b)
                if lift is not None:
                    best[b] = max(best.get(b, 0.0), lift)
        return best

    def lift_rules_filled(basket: list[str]) -> dict[str, float]:
        fired = lift_rules(basket)
        return {item: fired.get(item, 0.0) * 1e6 + share[item] for item in counts.items}

    def confidence(basket: list[str]) -> dict[str, float]:
        scores = {item: 1e-6 * share[item] for item in counts.items}
        for a in basket:
            for b, n in pairs.get(a, {}).items():
                scores[b] += n / popularity[a]
        return scores

    def ours(basket: list[str]) -> dict[str, float]:
        anchors = [(popularity.get(a, 0), pairs.get(a, {})) for a in basket]
        return association_scores(
            anchors, popularity, total, counts.items, weight=weight, smoothing=smoothing
        )

    return {
        "ours": ours,
        "lift_rules": lift_rules,
        "lift_rules_filled": lift_rules_filled,
        "confidence": confidence,
        "popular": lambda basket: dict(share),
    }


def measure_baskets(quick: bool) -> dict[str, Any]:
    from recommendations.serving.together import ASSOCIATION_WEIGHT, SMOOTHING

    baskets = read_baskets()
    cut = int(len(baskets) * (1 - TEST_SHARE))
    train, test = baskets[:cut], baskets[cut:]
    dev_cut = int(len(train) * (1 - TEST_SHARE))
    fit, dev = train[:dev_cut], train[dev_cut:]
    grid = GRID[:2] if quick else GRID
    dev_counts, dev_cases = BasketCounts(fit), completion_cases(dev)
    common.progress(f"Groceries: {len(fit):,} fit / {len(dev):,} dev baskets, {len(grid)} settings")
    dev_rows = [
        (w, a, completion_metrics(dev_cases, dev_counts, basket_methods(dev_counts, w, a)["ours"]))
        for w, a in grid
    ]
    counts, cases = BasketCounts(train), completion_cases(test)
    common.progress(f"Groceries: {len(train):,} training baskets, {len(cases):,} test cases")
    methods = basket_methods(counts, ASSOCIATION_WEIGHT, SMOOTHING)
    test_rows = {name: completion_metrics(cases, counts, score) for name, score in methods.items()}
    return {
        "dev": dev_rows,
        "test": test_rows,
        "n_train": len(train),
        "n_cases": len(cases),
        "n_dev_cases": len(dev_cases),
        "chosen": (ASSOCIATION_WEIGHT, SMOOTHING),
    }


BASKET_LABELS = {
    "ours": "ours: `association_scores`",
    "lift_rules": "association rules by lift (fired rules only)",
    "lift_rules_filled": "association rules by lift, popularity filling the list",
    "confidence": "confidence (sum of P(b | a))",
    "popular": "popularity",
}


def basket_part(run: dict[str, Any]) -> tuple[Part, bool]:
    test = run["test"]
    rows = [
        [
            strong(BASKET_LABELS[name]) if name == "ours" else BASKET_LABELS[name],
            decimals(figures["hr"]),
            decimals(figures["mrr"]),
            ratio_text(learning.ratio(test["ours"]["hr"], figures["hr"])),
        ]
        for name, figures in test.items()
    ]
    vs_rules = learning.ratio(test["ours"]["hr"], test["lift_rules"]["hr"])
    vs_filled = learning.ratio(test["ours"]["hr"], test["lift_rules_filled"]["hr"])
    ok = vs_rules is not None and vs_rules >= TARGET
    weight, smoothing = run["chosen"]
    dev = Table(
        ["weight w", "smoothing s", f"dev HR@{BASKET_K}", f"dev MRR@{BASKET_K}"],
        [
            [
                strong(f"{w:g}") if (w, a) == (weight, smoothing) else f"{w:g}",
                f"{a:g}",
                decimals(m["hr"]),
                decimals(m["mrr"]),
            ]
            for w, a, m in run["dev"]
        ],
    )
    blocks = [
        f"{run['n_train']:,} training baskets; {run['n_cases']:,} test cases (later baskets of two or "
        f"more items, one item hidden).",
        Table(["method", f"HR@{BASKET_K}", f"MRR@{BASKET_K}", f"ours / it (HR@{BASKET_K})"], rows),
        f"Target: HR@{BASKET_K} ≥ {TARGET:.2f} x association rules by lift: {verdict(ok)} "
        f"({ratio_text(vs_rules)}); against the rules with popularity filling the list (a stronger "
        f"baseline than the rules alone): {ratio_text(vs_filled)}.",
        f"The constants, chosen on the dev split ({run['n_dev_cases']:,} cases from the last 20 % of "
        f"the training baskets; bold: the shipped `ASSOCIATION_WEIGHT` and `SMOOTHING`):",
        dev,
    ]
    return Part("Bought together: Groceries basket completion", blocks), ok


# --- 3. the demo shop -------------------------------------------------------------------------

DEMO_SIMILAR_TARGET = 0.90
DEMO_TOGETHER_TARGET = 0.50
CO_VIEW_REASON = "Shoppers who viewed"


def measure_demo(quick: bool) -> dict[str, Any]:
    from django.core.management import call_command
    from django.db.models import Count, F, Max
    from django.test import override_settings
    from django.utils import timezone

    from recommendations.conf import app_settings
    from recommendations.lifecycle import registry
    from recommendations.models import Event, FlaggedShopper, ModelVersion
    from recommendations.serving import loader, popularity, services
    from shop.models import Product

    common.progress("loading the demo slice into the bench database")
    Event.objects.all().delete()
    FlaggedShopper.objects.all().delete()
    ModelVersion.objects.all().delete()
    call_command("shop_load_demo", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    newest = Event.objects.aggregate(newest=Max("timestamp"))["newest"]
    Event.objects.update(timestamp=F("timestamp") + (timezone.now() - newest))
    popularity.clear()
    version, _ = registry.request_training({**app_settings.MODEL, **({"epochs": 1} if quick else {})})
    version = registry.train_version(version.pk)
    loader.reset()  # serve the version just trained
    common.progress(f"demo version {version.pk}: {version.status}")
    products = {str(p.pk): p for p in Product.objects.select_related("category")}
    viewed = (
        Event.objects.filter(event_type="view", item_id__in=list(products))
        .values("item_id")
        .annotate(n=Count("session_key", distinct=True))
        .order_by("-n", "item_id")
        .values_list("item_id", flat=True)[:50]
    )
    shown = related = 0
    for item in viewed:
        top = products[item].category.slug.split(".")[0]
        for entry in services.similar_items(item, limit=10):
            shown += 1
            other = products[entry.item_id].category.slug.split(".")[0]
            related += other == top or entry.reason.startswith(CO_VIEW_REASON)
    bought = sorted(
        set(Event.objects.filter(event_type="purchase").values_list("item_id", flat=True)) & set(products)
    )
    with_list = {}
    for least in (app_settings.BOUGHT_TOGETHER_MIN_SHOPPERS, 2):
        recommendations = {**app_settings_dict(), "BOUGHT_TOGETHER_MIN_SHOPPERS": least}
        with override_settings(RECOMMENDATIONS=recommendations):
            popularity.clear()
            for item in bought:
                popularity.clear_item(item)
            with_list[least] = sum(bool(services.bought_together(item, limit=6)) for item in bought)
    return {
        "version": version,
        "similar_products": len(viewed),
        "similar_shown": shown,
        "similar_related": related,
        "bought": len(bought),
        "with_list": with_list,
        "setting": app_settings.BOUGHT_TOGETHER_MIN_SHOPPERS,
    }


def app_settings_dict() -> dict[str, Any]:
    from django.conf import settings

    return dict(getattr(settings, "RECOMMENDATIONS", {}))


def demo_part(run: dict[str, Any]) -> tuple[Part, bool]:
    share = run["similar_related"] / run["similar_shown"] if run["similar_shown"] else 0.0
    similar_ok = share >= DEMO_SIMILAR_TARGET
    setting = run["setting"]
    shown = run["with_list"][setting]
    together = shown / run["bought"] if run["bought"] else 0.0
    together_ok = together >= DEMO_TOGETHER_TARGET
    default = run["with_list"][2]
    blocks = [
        f"Version {run['version'].pk} ({run['version'].status}) trained on the demo slice.",
        Table(
            ["list", "what was counted", "share", "target", "verdict"],
            [
                [
                    "similar (10 items)",
                    f"{run['similar_related']:,} of {run['similar_shown']:,} items shown for the "
                    f"{run['similar_products']} most viewed products share its top-level category or "
                    "name co-views",
                    strong(f"{share:.1%}"),
                    f"≥ {DEMO_SIMILAR_TARGET:.0%}",
                    verdict(similar_ok),
                ],
                [
                    f"bought together (6 items), demo settings (min shoppers {setting})",
                    f"{shown:,} of {run['bought']:,} pages of products ever bought show the list",
                    strong(f"{together:.1%}"),
                    f"≥ {DEMO_TOGETHER_TARGET:.0%}",
                    verdict(together_ok),
                ],
                [
                    "bought together, the default (min shoppers 2)",
                    f"{default:,} of {run['bought']:,} pages",
                    f"{default / max(run['bought'], 1):.1%}",
                    "-",
                    "for information",
                ],
            ],
        ),
    ]
    return Part("In the demo shop", blocks), similar_ok and together_ok


def run(quick: bool) -> Section:
    common.setup_django()
    datasets = learning.DATASETS[:1] if quick else learning.DATASETS
    orders = order_part([measure_similar(dataset, quick, dev=True) for dataset in datasets])
    similar = [similar_part(measure_similar(dataset, quick)) for dataset in datasets]
    baskets = basket_part(measure_baskets(quick))
    demo = demo_part(measure_demo(quick))
    met = [ok for _, ok in similar]
    summary = (
        f"Similar items: target met on {sum(met)} of {len(met)} logs. "
        f"Bought together (Groceries): {verdict(baskets[1])}. In the demo shop: {verdict(demo[1])}."
    )
    method = (
        "item to item on the later part of each log (the learning suite's splits), and basket "
        "completion on the later Groceries baskets; constants chosen on dev splits of the earlier "
        "part only. Details: docstring of `bench/lists.py`."
    )
    return common.section(
        "Lists: similar items and bought together",
        method,
        [summary, orders, *(part for part, _ in similar), baskets[0], demo[0]],
        quick=quick,
    )
