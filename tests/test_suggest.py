"""Search suggestions: normalization, decay, success, zero-result queries, the typo fallback,
personalization, related searches, bad input, the API, and the demo's search box."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from recommendations.models import SearchQuery, SearchWithoutResults
from recommendations.suggest import loader, services
from recommendations.suggest.index import Entry, SuggestionIndex
from recommendations.suggest.stats import rebuild
from recommendations.suggest.text import normalize
from shop.adapters import ShopCatalogueAdapter
from tests import factories


@pytest.fixture(autouse=True)
def fresh_index():
    loader.reset()
    yield
    loader.reset()


def search(query, *, session, at=None, results=5, then=None, category="", user=None):
    """A search event, and optionally what the visit did next (an item event)."""
    at = at or timezone.now() - timedelta(hours=1)
    factories.event(
        "search", item_id="", query=query, session_key=session, timestamp=at, result_count=results, user=user
    )
    if then:
        factories.event(
            then,
            item_id="7",
            session_key=session,
            timestamp=at + timedelta(seconds=30),
            category_id=category,
            user=user,
        )


def texts(suggestions) -> list[str]:
    return [s.text for s in suggestions]


def test_normalization():
    assert normalize("  Café   CHAIRS! ") == "cafe chairs"
    assert normalize('Smart-TV 55"') == "smart tv 55"
    assert normalize("Über_Sofa") == "uber sofa"
    assert normalize("\t") == ""


@pytest.mark.django_db
def test_counts_decay_with_time_and_success_lifts_a_query(recorder_settings):
    recorder_settings(SUGGEST={"HALF_LIFE_DAYS": 7.0}, CATALOGUE_ADAPTER="tests.test_suggest.NoCatalogue")
    now = timezone.now()
    for i in range(4):
        search("old lamp", session=f"a{i}", at=now - timedelta(days=28), then="view")
        search("new lamp", session=f"b{i}", at=now - timedelta(hours=1), then="view")
    for i in range(4):
        search("lamp shade", session=f"c{i}", at=now - timedelta(hours=1))  # nobody clicked anything
    factories.event("view", item_id="1", timestamp=now)
    rebuild()
    rows = {row.key: row for row in SearchQuery.objects.all()}
    assert rows["new lamp"].score == pytest.approx(16 * rows["old lamp"].score, rel=0.05)  # 4 half-lives
    assert rows["new lamp"].successes == 4 and rows["lamp shade"].successes == 0
    assert rows["new lamp"].score > rows["lamp shade"].score
    # "lamp" starts "lamp shade" but is a later word of the others (half weight); decay and
    # success still put the recent, successful "new lamp" first and the old one last.
    assert texts(services.suggest(None, "lamp")) == ["new lamp", "lamp shade", "old lamp"]


class NoCatalogue(ShopCatalogueAdapter):
    """The shop's adapter, without catalogue names (so only the search log is suggested)."""

    def suggestion_terms(self):
        return []


@pytest.mark.django_db
def test_queries_that_found_nothing_are_not_suggested_but_listed(recorder_settings, admin_client):
    recorder_settings(CATALOGUE_ADAPTER="tests.test_suggest.NoCatalogue")
    for i in range(5):
        search("unicorn lamp", session=f"u{i}", results=0)
    for i in range(2):
        search("unicorn rug", session=f"r{i}", results=0)
    search("unicorn", session="ok", results=3, then="view")
    rebuild()
    assert texts(services.suggest(None, "uni")) == ["unicorn"]
    assert list(
        SearchWithoutResults.objects.filter(zero_results__gt=0).values_list("text", "zero_results")
    ) == [
        ("unicorn lamp", 5),
        ("unicorn rug", 2),
    ]
    page = admin_client.get(reverse("admin:recommendations_searchwithoutresults_changelist")).content.decode()
    assert page.index("unicorn lamp") < page.index("unicorn rug")


def test_the_typo_fallback_does_bounded_work_whatever_the_index_holds(monkeypatch):
    """The attack: 100 searches of 250 random CJK characters each, then a 100-character query
    that matches nothing, cost 6 s a call (every character ever seen was tried everywhere)."""
    import random

    from recommendations.suggest import index as index_module

    rng = random.Random(3)
    cjk = [chr(code) for code in range(0x4E00, 0x9FFF)]
    junk = ["".join(rng.choice(cjk) for _ in range(250)) for _ in range(100)]
    built = SuggestionIndex(Entry(normalize(t), t, 1.0) for t in [*junk, "office chair", "chair cushion"])
    calls = []
    real = index_module.bisect_left
    monkeypatch.setattr(index_module, "bisect_left", lambda *a: calls.append(1) or real(*a))
    for query in (
        junk[0][:60] + "x" + junk[0][61:100],
        "".join(rng.choice(cjk) for _ in range(100)),
        "q" * 100,
    ):
        calls.clear()
        built.lookup(query, 10)
        # the break point (a binary search), the budget, and the ranked variants
        assert len(calls) <= 2 * 8 + index_module.MAX_TYPO_PROBES + 2 * index_module.MAX_TYPO_MATCHES
    assert [m.entry.text for m in built.lookup("chiar")] == ["chair cushion", "office chair"]
    assert built.lookup(junk[0][:60] + "x" + junk[0][61:100])[0].entry.text == junk[0]  # a typo far in


@pytest.mark.django_db
def test_one_typo_still_finds_the_query(recorder_settings):
    recorder_settings(CATALOGUE_ADAPTER="tests.test_suggest.NoCatalogue")
    search("office chair", session="s1", then="view")
    search("chair cushion", session="s2", then="view")
    rebuild()
    found = services.suggest(None, "chiar")
    assert set(texts(found)) == {"chair cushion", "office chair"}
    assert all(s.corrected and s.reason == "did you mean" for s in found)
    assert services.suggest(None, "zzzzzz") == []


def test_suggestions_read_as_the_catalogue_writes_them(db):
    notebooks = factories.category("computers.notebook", "Notebook")
    factories.product(name="HP Notebook H-7135", brand="HP", category=notebooks)
    search("hp notebook", session="s1", then="view")  # typed in lower case
    search("notebook", session="s2", then="view")
    rebuild()
    assert texts(services.suggest(None, "hp no"))[0] == "HP Notebook"  # not "hp notebook", not "Hp Notebook"
    assert "Notebook" in texts(services.suggest(None, "noteb"))


@pytest.mark.django_db
def test_related_searches(recorder_settings):
    recorder_settings(CATALOGUE_ADAPTER="tests.test_suggest.NoCatalogue")
    for i in range(3):
        at = timezone.now() - timedelta(hours=2)
        search("sofa", session=f"v{i}", at=at)
        search("sofa cushions", session=f"v{i}", at=at + timedelta(minutes=2), then="view")
    rebuild()
    assert texts(services.related("Sofa")) == ["sofa cushions"]
    assert services.related("nothing like it") == []


def test_the_index_alone():
    index = SuggestionIndex(
        [
            Entry("tablet", "Tablet", 2.0),
            Entry("kitchen table", "Kitchen table", 3.0),
            Entry("tab", "tab", 1.0),
        ]
    )
    # A match at the start counts fully, one inside (a later word) half.
    assert [m.entry.text for m in index.lookup("tab")] == ["Tablet", "Kitchen table", "tab"]
    assert [m.entry.text for m in index.lookup("kitch")] == ["Kitchen table"]
    assert index.lookup("") == [] and index.lookup("   ") == []


@pytest.mark.django_db
def test_personalization_follows_what_the_shopper_browsed(browser, recorder_settings):
    recorder_settings(CATALOGUE_ADAPTER="tests.test_suggest.NoCatalogue")
    for i in range(6):
        search("tablet", session=f"t{i}", then="view", category="electronics.tablet")
    for i in range(4):
        search("table", session=f"k{i}", then="view", category="furniture.kitchen.table")
    rebuild()
    tables = factories.category("furniture.kitchen.table", "Table")
    phones = factories.category("electronics.tablet", "Tablet")
    table_fan, tablet_fan = browser, type(browser)(HTTP_USER_AGENT=browser.defaults["HTTP_USER_AGENT"])
    for _ in range(3):
        table_fan.get(reverse("shop:product", kwargs={"pk": factories.product(category=tables).pk}))
        tablet_fan.get(reverse("shop:product", kwargs={"pk": factories.product(category=phones).pk}))
    url = reverse("recommendations-api:suggest")
    anonymous = [s["text"] for s in browser.__class__().get(url, {"q": "ta"}).json()["suggestions"]]
    for_table_fan = table_fan.get(url, {"q": "ta"}).json()["suggestions"]
    for_tablet_fan = [s["text"] for s in tablet_fan.get(url, {"q": "ta"}).json()["suggestions"]]
    assert anonymous == ["tablet", "table"]  # popularity alone
    assert [s["text"] for s in for_table_fan] == ["table", "tablet"]
    assert for_table_fan[0]["reason"] == "matches what you browse"
    assert for_tablet_fan == ["tablet", "table"]


@pytest.mark.django_db
def test_a_shoppers_own_earlier_search_comes_first(browser, recorder_settings):
    recorder_settings(CATALOGUE_ADAPTER="tests.test_suggest.NoCatalogue")
    for i in range(5):
        search("garden chair", session=f"g{i}", then="view")
    search("garden hose", session="h", then="view")
    rebuild()
    browser.get(reverse("shop:search"), {"q": "garden hose"})
    suggestions = browser.get(reverse("recommendations-api:suggest"), {"q": "gar"}).json()["suggestions"]
    assert suggestions[0]["text"] == "garden hose"
    assert suggestions[0]["reason"] == "your earlier search"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "message"),
    [({}, "required"), ({"q": ""}, "q"), ({"q": "   "}, "q"), ({"q": "x" * 101}, "100"), ({"q": "ab\x00c"}, "q"),
     ({"q": "ab", "limit": "0"}, "limit"), ({"q": "ab", "limit": "100"}, "limit")],
)  # fmt: skip
def test_bad_input_is_a_400_with_a_message(client, params, message):
    for name in ("suggest", "related-searches"):
        response = client.get(reverse(f"recommendations-api:{name}"), params)
        assert response.status_code == 400, response.content
        assert message in str(response.json())


def test_the_service_refuses_bad_text_too():
    for bad in ("", "  ", "x" * 101, "a\x07b", None, 42):
        with pytest.raises(ValueError, match="q"):
            services.clean_query(bad)


@pytest.mark.django_db
def test_searches_schedule_one_rebuild(browser, monkeypatch):
    sent = []
    from recommendations.suggest import scheduling

    monkeypatch.setattr(scheduling, "send", lambda task, *args, **options: sent.append((task.name, options)))
    cache.delete(scheduling.PENDING_KEY)
    browser.get(reverse("shop:search"), {"q": "kettle"})
    browser.get(reverse("shop:search"), {"q": "kettles"})
    assert sent == [("recommendations.rebuild_suggestions", {"countdown": 60, "retry": False})]


@pytest.mark.django_db
def test_a_rebuild_reaches_a_running_process(recorder_settings):
    recorder_settings(CATALOGUE_ADAPTER="tests.test_suggest.NoCatalogue", SUGGEST={"CHECK_INTERVAL": 0.001})
    rebuild()
    assert services.suggest(None, "mug") == []
    search("mug", session="m", then="view")
    rebuild()
    assert texts(services.suggest(None, "mug")) == ["mug"]


@pytest.mark.django_db
def test_the_demo_search_box_has_the_autocomplete_and_picks_are_recorded(browser):
    page = browser.get(reverse("shop:home")).content.decode()
    assert 'data-suggest-url="/api/search/suggest/"' in page
    assert "recommendations/autocomplete.js" in page
    from django.contrib.staticfiles import finders

    assert finders.find("recommendations/autocomplete.js")
    browser.get(reverse("shop:search"), {"q": "kettle", "suggested": "1"})
    from recommendations.models import Event

    assert Event.objects.get(event_type="search").scenario == "suggestion"


def test_search_results_follow_the_shoppers_model(served_model, browser):
    from tests.serving_world import items_of

    sofas = items_of("furniture.living_room.sofa")
    before = browser.get(reverse("shop:search"), {"q": "5"}).context["paginator"].object_list
    assert str(before[0].pk).startswith("50")  # every name has a 5: text order, then id
    for item in sofas[:3]:
        browser.get(reverse("shop:product", kwargs={"pk": item}))
    after = browser.get(reverse("shop:search"), {"q": "5"}).context["paginator"].object_list
    assert str(after[0].pk).startswith("52")  # sofas first for a shopper who looks at sofas
    assert sorted(p.pk for p in after) == sorted(p.pk for p in before)
