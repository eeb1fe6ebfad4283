"""The demo in a real browser: Playwright driving Debian's Chromium against a live test server.

Screenshots of every page visited are kept in ``var/screenshots/`` (git ignores ``var/``).
Chromium is Debian's (``apt-get install chromium``, done by ``.ci/run``); Playwright never
downloads a browser here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.urls import reverse

from recommendations.models import ModelVersion
from tests import factories
from tests.serving_world import ITEMS, items_of, store_history

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's Chromium is not installed (apt-get install chromium)", allow_module_level=True)

SHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
SOFAS = items_of("furniture.living_room.sofa")
PHONES = items_of("electronics.smartphone")

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def chromium():
    SHOTS.mkdir(parents=True, exist_ok=True)
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are
    # still plain synchronous code (Django's documented switch for this case).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(chromium, live_server):
    context = chromium.new_context(
        user_agent=UA, viewport={"width": 1280, "height": 900}, base_url=live_server.url
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def view_products(page, items, name: str) -> None:
    for n, item in enumerate(items):
        page.goto(reverse("shop:product", kwargs={"pk": item}))
        shot(page, f"{name}-product-{n + 1}")


def for_you_categories(page) -> list[str]:
    carousel = page.locator('[data-scenario="for_you"]')
    carousel.wait_for()
    return [ITEMS[href.strip("/").split("/")[-1]] for href in _product_targets(page)]


def _product_targets(page) -> list[str]:
    """The product each for-you card leads to (links go through the signed click URL)."""
    names = page.locator('[data-scenario="for_you"] .product-name').all_inner_texts()
    return [f"/product/{name.split()[-1]}/" for name in names]


def test_the_home_carousel_follows_the_category_just_browsed(page, served_model):
    store_history()
    view_products(page, SOFAS[:3], "browse-sofas")
    page.goto(reverse("shop:home"))
    shot(page, "home-after-sofas")
    categories = for_you_categories(page)
    assert categories[0] == "furniture.living_room.sofa"
    assert "Because you viewed" in page.locator('[data-scenario="for_you"] .reason').first.inner_text()


def test_typing_in_the_search_box_and_picking_with_the_keyboard(page, served_model):
    from recommendations.suggest.stats import rebuild

    for n in range(4):
        factories.event("search", item_id="", query="sofa cushions", session_key=f"s{n}", result_count=3)
        factories.event(
            "view", item_id=SOFAS[0], session_key=f"s{n}", category_id="furniture.living_room.sofa"
        )
    rebuild()
    page.goto(reverse("shop:home"))
    box = page.locator("#site-search")
    box.click()
    box.type("so", delay=60)
    page.locator("#site-search-suggestions li").first.wait_for()
    shot(page, "suggestions-open")
    options = page.locator("#site-search-suggestions li").all_inner_texts()
    assert "sofa cushions" in options[0]
    box.press("ArrowDown")
    assert page.locator("#site-search-suggestions li").first.get_attribute("aria-selected") == "true"
    box.press("Enter")
    page.wait_for_url("**/search/?q=sofa+cushions&suggested=1")
    shot(page, "suggestion-picked")
    from recommendations.models import Event
    from tests.conftest import wait_for

    picked = Event.objects.filter(event_type="search", scenario="suggestion", query="sofa cushions")
    assert wait_for(picked.exists, timeout=10)  # written once the response has been sent


def test_staff_retrain_now_adds_a_model_version(page, catalogue, monkeypatch):
    from recommendations import tasks

    queued = []
    monkeypatch.setattr(tasks, "send", lambda task, *args, **kw: queued.append((task.name, args)))
    factories.user("boss", "pw-boss-123", is_staff=True, is_superuser=True)
    page.goto(reverse("admin:login"))
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw-boss-123")
    page.click("input[type=submit]")
    page.goto(reverse("admin:recommendations_modelversion_changelist"))
    shot(page, "admin-versions-before")
    assert ModelVersion.objects.count() == 0
    page.get_by_role("button", name="Retrain now").click()
    page.wait_for_load_state()
    shot(page, "admin-versions-after-retrain")
    version = ModelVersion.objects.get()
    assert queued == [("recommendations.retrain", (version.pk,))]
    assert "was queued" in page.content() and f"model v{version.pk}" in page.content()


def test_an_anonymous_shopper_signs_in_and_keeps_their_recommendations(page, served_model):
    store_history()
    factories.user("gina", "pw-gina-123")
    view_products(page, PHONES[:3], "anonymous-phones")
    page.goto(reverse("shop:home"))
    before = for_you_categories(page)
    page.goto(reverse("login"))
    page.fill("#id_username", "gina")
    page.fill("#id_password", "pw-gina-123")
    page.locator("main form button[type=submit], main form input[type=submit]").first.click()
    page.wait_for_load_state()
    page.goto(reverse("shop:home"))
    shot(page, "home-after-sign-in")
    after = for_you_categories(page)
    assert before[0] == after[0] == "electronics.smartphone"
    assert page.locator(".username").inner_text() == "gina"


# --- every page at a laptop's and a phone's width ---------------------------------------------

WIDTHS = {"laptop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}
KETTLES = items_of("appliances.kitchen.kettle")
NOTEBOOKS = [str(6000 + n) for n in range(1, 7)]
#: True when the page is wider than the window (a sideways scroll of the whole page).
PAGE_OVERFLOWS = "document.documentElement.scrollWidth > window.innerWidth + 1"
#: Admin result tables that need their own sideways scroll to show every column.
TABLE_OVERFLOWS = """() => [...document.querySelectorAll('#changelist .results')]
    .some(box => box.scrollWidth > box.clientWidth + 1)"""


def screens_world() -> dict[str, str]:
    """Baskets, co-viewed notebooks, a staff user, an order: something on every page."""
    from decimal import Decimal

    from recommendations.models import Event

    store_history()
    notebooks = factories.category("computers.notebook", "Notebook")
    for n, item in enumerate(NOTEBOOKS):
        factories.product(id=int(item), name=f"HP Notebook N-{item}", brand="HP", category=notebooks,
                          price=Decimal("600.00") + 50 * n)  # fmt: skip
    for visit in range(4):  # notebooks are viewed together; one visit also viewed a phone
        for item in NOTEBOOKS[visit : visit + 3] + ([PHONES[0]] if visit == 0 else []):
            factories.event("view", item_id=item, session_key=f"nb-{visit}", category_id="computers.notebook")
    for visit in ("b1", "b2"):  # the kettle is bought with a sofa
        for item in (KETTLES[0], SOFAS[1]):
            factories.event("purchase", item_id=item, session_key=visit, category_id=ITEMS[item])
    factories.user("boss", "pw-boss-123", is_staff=True, is_superuser=True)
    return {
        "event": str(Event.objects.order_by("pk").first().pk),
        "experiment": str(an_experiment_with_figures()),
    }


def an_experiment_with_figures() -> int:
    """A running A/B test with two days of figures: its page shows the table, chart and verdict."""
    from datetime import timedelta

    from django.utils import timezone

    from recommendations.lifecycle import experiments
    from recommendations.models import Arm, Experiment, ExperimentResult

    experiment = Experiment.objects.create(name="Retrained model against trending", scenarios=["for_you"])
    Arm.objects.create(experiment=experiment, name="A", share=50, strategy="active", is_control=True)
    Arm.objects.create(experiment=experiment, name="B", share=50, strategy="fallbacks")
    experiments.start(experiment)
    Experiment.objects.filter(pk=experiment.pk).update(started_at=timezone.now() - timedelta(days=2))
    experiment.refresh_from_db()
    for n in range(60):
        arm, at = "AB"[n % 2], timezone.now() - timedelta(hours=n % 40 + 1)
        factories.event("impression", session_key=f"x-{n}", experiment_id=experiment.pk, arm=arm, list_id=f"list-{n:04d}",
                        scenario="for_you", shown={"items": [PHONES[0]], "p": [1.0]}, timestamp=at)  # fmt: skip
        if n % 3 == 0:
            factories.event("click", session_key=f"x-{n}", item_id=PHONES[0], list_id=f"list-{n:04d}", position=0,
                            timestamp=at + timedelta(minutes=1))  # fmt: skip
    result = experiments.update(experiment)
    ExperimentResult.objects.create(
        experiment=experiment, day=result.day - timedelta(days=1), arms=result.arms, analysis=result.analysis
    )
    return experiment.pk


def check_out(page) -> str:
    """Put a kettle in the cart and place the order as a guest: the checkout page, then the
    order page's path."""
    page.goto(reverse("shop:product", kwargs={"pk": KETTLES[2]}))
    page.get_by_role("button", name="Add to cart").click()
    page.wait_for_load_state()
    page.goto(reverse("shop:checkout"))
    page.fill("input[type=email]", "guest@example.com")
    page.get_by_role("button", name="Place order").click()
    page.wait_for_url("**/order/*/")
    return page.url.removeprefix(page.url.split("/order/")[0])


def sign_in_to_the_admin(page) -> None:
    page.goto(reverse("admin:login"))
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw-boss-123")
    page.click("input[type=submit]")
    page.wait_for_load_state()


def screens(world: dict[str, str], served_model) -> list[tuple[str, str]]:
    """(name, path) of every shop page and every admin page of the app."""
    admin = "admin:recommendations_"
    return [
        ("order", world["order"]),
        ("home", reverse("shop:home")),
        ("category", reverse("shop:category", kwargs={"slug": "computers.notebook"})),
        ("product-notebook", reverse("shop:product", kwargs={"pk": NOTEBOOKS[1]})),
        ("product-kettle", reverse("shop:product", kwargs={"pk": KETTLES[0]})),
        ("search", reverse("shop:search") + "?q=notebook"),
        ("search-nothing", reverse("shop:search") + "?q=xylophone+quantum"),
        ("cart", reverse("shop:cart")),
        ("checkout", reverse("shop:checkout")),
        ("login", reverse("login")),
        ("signup", reverse("signup")),
        ("admin-index", reverse("admin:index")),
        ("admin-events", reverse(f"{admin}event_changelist")),
        ("admin-event", reverse(f"{admin}event_change", args=[world["event"]])),
        ("admin-versions", reverse(f"{admin}modelversion_changelist")),
        (
            "admin-version",
            reverse(f"{admin}modelversion_change", args=[world.get("trained", served_model.pk)]),
        ),
        ("admin-preview", reverse(f"{admin}modelversion_preview") + "?user=boss"),
        ("admin-flagged", reverse(f"{admin}flaggedshopper_changelist")),
        ("admin-queries", reverse(f"{admin}searchquery_changelist")),
        ("admin-blocked", reverse(f"{admin}blockedquery_changelist")),
        ("admin-no-results", reverse(f"{admin}searchwithoutresults_changelist")),
        ("admin-quarantined", reverse(f"{admin}quarantinedevent_changelist")),
        ("admin-visitor-links", reverse(f"{admin}visitorlink_changelist")),
        ("admin-experiments", reverse(f"{admin}experiment_changelist")),
        ("admin-experiment", reverse(f"{admin}experiment_change", args=[world["experiment"]])),
        ("admin-experiment-new", reverse(f"{admin}experiment_add")),
    ]


@pytest.mark.parametrize("width", list(WIDTHS))
def test_every_page_fits_a_laptop_and_a_phone(chromium, live_server, served_model, recorder_settings, width):
    """No page scrolls sideways; at a laptop's width no admin table hides a column; the lists
    a shopper sees on a product page are there and related."""
    from django.db import connection

    if connection.vendor == "sqlite":
        pytest.skip("the screens are the same on SQLite: the PostgreSQL run checks them")
    world = screens_world()
    if width == "laptop":  # a version trained here: its page has the loss chart and every table
        from recommendations.lifecycle import registry
        from tests.serving_world import FAST_MODEL

        recorder_settings(MODEL=FAST_MODEL, HOLDOUT_FRACTION=0.2)
        trained = registry.train_version(registry.request_training()[0].pk)
        world["trained"] = trained.pk
    context = chromium.new_context(user_agent=UA, viewport=WIDTHS[width], base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        world["order"] = check_out(page)
        page.goto(reverse("shop:product", kwargs={"pk": KETTLES[3]}))  # a cart for the cart page
        page.get_by_role("button", name="Add to cart").click()
        sign_in_to_the_admin(page)
        wide = []
        for name, path in screens(world, served_model):
            page.goto(path)
            page.wait_for_load_state()
            shot(page, f"{width}-{name}")
            if page.evaluate(PAGE_OVERFLOWS):
                wide.append(f"{name}: the page scrolls sideways")
            if width == "laptop" and page.evaluate(TABLE_OVERFLOWS):
                wide.append(f"{name}: the table hides columns")
        assert not wide, wide

        page.goto(reverse("shop:product", kwargs={"pk": KETTLES[0]}))
        together = page.locator('[data-scenario="bought_together"]')
        assert together.is_visible() and SOFAS[1] in together.inner_text()

        page.goto(reverse("shop:product", kwargs={"pk": NOTEBOOKS[1]}))
        cards = page.locator('[data-scenario="similar"] .product-card')
        names = cards.locator(".product-name").all_inner_texts()
        reasons = cards.locator(".reason").all_inner_texts()
        assert names, "a notebook has similar items"
        for card_name, reason in zip(names, reasons, strict=True):
            assert "Notebook" in card_name or reason.startswith("Shoppers who viewed"), (card_name, reason)

        page.goto(reverse("shop:search") + "?q=xylophone+quantum")
        assert page.locator('[data-scenario="trending"] .product-card').count() > 0
    finally:
        context.close()
