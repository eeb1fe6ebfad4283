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
