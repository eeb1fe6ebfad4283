"""A returning shopper's list costs no SQL: history, purchases and erasure marks come from the
shared cache, catalogue objects from the process (serving/history.py, serving/catalogue.py);
and what is kept never outlives what it stands for (a sold-out item, an erasure, a login)."""

from __future__ import annotations

import os
import time

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from recommendations.capture.recorders import BaseRecorder
from recommendations.identity import Shopper
from recommendations.serving import catalogue, history, services
from tests import factories
from tests.conftest import app_client, device_id
from tests.serving_world import items_of

PHONES = items_of("electronics.smartphone")
FOR_YOU = "/api/v1/recommendations/for-you/"
EVENTS = "/api/v1/events/"


@pytest.fixture
def shared_cache(settings):
    """Django's cache in Redis, as web servers that share it run (db 12 of the local Redis)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "recommendations.cache.RedisCache",
            "LOCATION": os.environ.get("RECOMMENDATIONS_TEST_CACHE", "redis://127.0.0.1:6379/12"),
            "KEY_PREFIX": f"hot-path-{os.getpid()}",
        }
    }
    cache.clear()
    catalogue.reset()
    assert history.history_cached()
    yield
    cache.clear()
    catalogue.reset()


@pytest.fixture
def handed_over(monkeypatch):
    """The events the request hands to the recorder (what the recorder does with them, a Celery
    publish or a batch, is the recorders' own concern and tested there)."""
    records = []
    monkeypatch.setattr(BaseRecorder, "record", lambda self, batch: records.extend(batch))
    return records


def device_client(name: str):
    client = app_client()
    client.credentials(HTTP_X_DEVICE_ID=device_id(name))
    return client


def test_a_returning_shoppers_for_you_runs_no_sql(served_model, shared_cache, handed_over, recorder_settings):
    recorder_settings(RESPONSE_CACHE_SECONDS=0)  # every request computes its list
    client = device_client("hot-path-1")
    views = [{"event": "view", "item_id": item, "client_event_id": f"hot-{item}"} for item in PHONES[:3]]
    assert client.post(EVENTS, {"events": views}, format="json").status_code == 202
    first = client.get(FOR_YOU, {"limit": 5})
    assert first.status_code == 200 and first.json()["source"].startswith("model")

    handed_over.clear()
    with CaptureQueriesContext(connection) as queries:
        again = client.get(FOR_YOU, {"limit": 5})
    assert again.status_code == 200
    assert [q["sql"][:150] for q in queries.captured_queries] == [], "\n".join(
        q["sql"][:300] for q in queries.captured_queries
    )
    assert again.json()["items"] == first.json()["items"]
    assert [r.event_type for r in handed_over] == ["impression"]  # the showing is still recorded


def test_the_cached_history_is_the_tables_plus_what_came_since(served_model, shared_cache):
    user = factories.user("hot-history")
    shopper = Shopper(user_id=user.pk)
    for item in PHONES[:2]:
        factories.event("view", item_id=item, user=user)
    factories.event("purchase", item_id=PHONES[3], user=user)
    assert [e.item_id for e in history.recent_events(shopper)] == [*PHONES[:2], PHONES[3]]

    factories.event("view", item_id=PHONES[4], user=user)  # stored without passing capture: not seen yet
    from recommendations.capture.ingress import track

    track(None, "view", PHONES[5], user=user)  # through capture: joins the kept history at once
    with CaptureQueriesContext(connection) as queries:
        found = history.activity(shopper)
    assert queries.captured_queries == []
    assert [e.item_id for e in found.recent] == [*PHONES[:2], PHONES[3], PHONES[5]]
    assert found.purchased == {PHONES[3]}

    cache.delete(history.BASE_PREFIX + shopper.key)  # expired: the table again, everything in it
    assert [e.item_id for e in history.recent_events(shopper)][-2:] == [PHONES[4], PHONES[5]]


def test_an_erasure_elsewhere_is_never_undone_by_a_kept_history(served_model, shared_cache):
    from recommendations.capture.privacy import forget_user

    user = factories.user("hot-erased")
    shopper = Shopper(user_id=user.pk)
    factories.event("view", item_id=PHONES[0], user=user)
    assert history.recent_events(shopper)
    kept = cache.get(history.BASE_PREFIX + shopper.key)
    forget_user(user)
    # A process that read the base before the erasure writes it back after it (a race):
    cache.set(history.BASE_PREFIX + shopper.key, kept)
    assert history.recent_events(shopper) == []
    assert history.erased_at(shopper) > 0  # read from the shared cache, part of the generation


def test_a_login_drops_the_kept_history_of_the_user(served_model, shared_cache, browser):
    user = factories.user("hot-login", "pw-hot-login-1")
    shopper = Shopper(user_id=user.pk)
    assert history.recent_events(shopper) == []  # kept: nothing yet
    assert cache.get(history.BASE_PREFIX + shopper.key) is not None
    browser.get(reverse("shop:product", kwargs={"pk": PHONES[0]}))  # anonymous, then the login joins it
    browser.post(reverse("login"), {"username": "hot-login", "password": "pw-hot-login-1"})
    assert cache.get(history.BASE_PREFIX + shopper.key) is None
    assert [e.item_id for e in history.recent_events(Shopper(user_id=user.pk))] == [PHONES[0]]


def test_a_sold_out_item_leaves_every_list_within_a_second(served_model, shared_cache, monkeypatch):
    from shop.models import Product

    user = factories.user("hot-stock")
    shopper = Shopper(user_id=user.pk)
    for item in PHONES[:3]:
        factories.event("view", item_id=item, user=user)
    shown = [r.item_id for r in services.for_you(shopper, 6)]
    assert shown
    sold_out = Product.objects.get(pk=shown[0])
    sold_out.stock = 0
    sold_out.save()  # post_save: the change log every process reads
    assert shown[0] not in [r.item_id for r in services.for_you(shopper, 6)]

    # Another process sold the next one out: this process heard nothing itself, and finds the
    # change in the shared log (what catalogue_changed() wrote there) within CHECK_SECONDS.
    other = next(r.item_id for r in services.for_you(shopper, 6))
    assert other in catalogue.live_items.entries
    Product.objects.filter(pk=other).update(stock=0)  # a bulk update: no signal here either
    head = cache.incr(catalogue.CHANGES_HEAD)
    cache.set(catalogue.CHANGE_PREFIX + str(head), [other])
    monkeypatch.setattr(catalogue.changes, "checked", time.monotonic() + 3600)  # within the second
    assert other in [r.item_id for r in services.for_you(shopper, 6)]  # kept
    monkeypatch.setattr(catalogue.changes, "checked", 0.0)  # the second has passed
    assert other not in [r.item_id for r in services.for_you(shopper, 6)]


def test_without_a_shared_cache_the_table_stays_the_truth(served_model):
    assert not history.history_cached()  # the tests' LocMemCache is one process's
    user = factories.user("hot-local")
    factories.event("view", item_id=PHONES[0], user=user)
    with CaptureQueriesContext(connection) as queries:
        history.recent_events(Shopper(user_id=user.pk))
    assert len(queries.captured_queries) >= 1


def test_what_a_list_shows_of_an_item_is_kept_with_it_and_follows_its_changes(
    served_model, shared_cache, monkeypatch
):
    """A list shows each item's name, link and price without building them again (the link
    is a reverse() of the shop's URL pattern), and a change of the item reaches the next list."""
    from decimal import Decimal

    from django.utils import translation

    from recommendations.adapters import get_adapter
    from shop.models import Product

    user = factories.user("hot-display")
    shopper = Shopper(user_id=user.pk)
    for item in PHONES[:3]:
        factories.event("view", item_id=item, user=user)
    adapter = type(get_adapter())
    built, display = [], adapter.display
    monkeypatch.setattr(
        adapter, "display", lambda self, item: built.append(self.item_id(item)) or display(self, item)
    )
    first = list(services.for_you(shopper, 6))
    assert sorted(built) == sorted(r.item_id for r in first)
    built.clear()
    again = services.for_you(shopper, 6)
    assert built == [] and [r.display for r in again] == [r.display for r in first]

    changed = Product.objects.get(pk=first[0].item_id)
    changed.price = Decimal("123.45")
    changed.save()  # post_save: dropped with the kept item
    shown = {r.item_id: r.display for r in services.for_you(shopper, 6)}
    assert shown[str(changed.pk)]["price"] == "123.45" and built == [str(changed.pk)]

    built.clear()
    with translation.override("fr"):  # a link may depend on the language: its own displays
        services.for_you(shopper, 6)
    assert sorted(built) == sorted(shown)


def test_the_redis_backend_keeps_one_client_and_works_as_djangos(shared_cache):
    from django.core.cache import caches

    backend = caches["default"]
    assert type(backend).__module__ == "recommendations.cache"
    assert backend._cache.get_client() is backend._cache.get_client()  # made once, not per call
    backend.set("kept-client", {"a": [1, 2]})
    assert backend.get_many(["kept-client", "nothing"]) == {"kept-client": {"a": [1, 2]}}
    assert backend.add("counter", 1) and backend.incr("counter") == 2
