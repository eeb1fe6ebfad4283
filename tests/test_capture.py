"""Event capture from real requests: middleware, signals, track(), privacy rules, fail-open."""

from __future__ import annotations

import logging
import re

import pytest
from django.core.signals import request_finished
from django.db import close_old_connections, connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from recommendations import track
from recommendations.models import Event, VisitorLink
from tests import factories
from tests.conftest import BROWSER_UA, visitor_of

pytestmark = pytest.mark.django_db


def close(response) -> None:
    """Close a response the way a WSGI server does, keeping the test's database connection."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def without_csrf(content: bytes) -> bytes:
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", content)


def events(**filters) -> list[Event]:
    return list(Event.objects.filter(**filters).order_by("timestamp", "id"))


def test_product_page_records_a_view_for_an_anonymous_visitor(browser):
    product = factories.product()
    response = browser.get(reverse("shop:product", kwargs={"pk": product.pk}))
    assert response.status_code == 200
    [event] = events()
    assert (event.event_type, event.item_id, event.user_id, event.source) == (
        "view",
        str(product.pk),
        None,
        "web",
    )
    assert event.session_key == visitor_of(browser)
    assert event.client_event_id


def test_category_page_records_a_category_view(browser):
    category = factories.category("electronics.audio.headphone", "Headphone")
    browser.get(reverse("shop:category", kwargs={"slug": category.slug}))
    [event] = events()
    assert (event.event_type, event.category_id, event.item_id) == ("category_view", category.slug, "")


def test_search_records_query_and_result_count(browser):
    factories.product(name="Samsung Galaxy phone")
    factories.product(name="Samsung TV")
    factories.product(name="Lenovo laptop")
    browser.get(reverse("shop:search"), {"q": "  Samsung  "})
    browser.get(reverse("shop:search"), {"q": "zebra"})
    first, second = events()
    assert (first.event_type, first.query, first.result_count) == ("search", "Samsung", 2)
    assert (second.query, second.result_count) == ("zebra", 0)


def test_empty_search_records_nothing(browser):
    browser.get(reverse("shop:search"), {"q": "   "})
    assert not Event.objects.exists()


def test_cart_addition_and_purchase_come_from_shop_signals(browser, django_capture_on_commit_callbacks):
    product = factories.product(price="25.50", stock=5)
    browser.post(reverse("shop:cart_add", kwargs={"pk": product.pk}), {"quantity": 2})
    with django_capture_on_commit_callbacks(execute=True):  # the shop sends order_placed on commit
        response = browser.post(reverse("shop:checkout"), {"email": "shopper@example.com"})
    assert response.status_code == 302
    cart = events(event_type="cart")
    purchase = events(event_type="purchase")
    assert [(e.item_id, e.quantity, str(e.price), e.source) for e in cart] == [
        (str(product.pk), 2, "25.50", "signal")
    ]
    assert [(e.item_id, e.quantity, str(e.price)) for e in purchase] == [(str(product.pk), 2, "25.50")]
    assert purchase[0].category_id == product.category.slug  # from the shop's catalogue adapter
    assert purchase[0].client_event_id.startswith("purchase:")
    assert {e.session_key for e in cart + purchase} == {visitor_of(browser)}


def test_track_records_clicks_and_impressions(rf, django_user_model):
    from django.contrib.sessions.backends.db import SessionStore

    user = django_user_model.objects.create_user("bob", password="x")
    request = rf.get("/", HTTP_USER_AGENT=BROWSER_UA)
    request.session, request.user = SessionStore(), user
    assert track(request, "impression", "42")
    assert track(request, "click", "42", category="phones")
    assert [(e.event_type, e.user_id, e.category_id) for e in events()] == [
        ("impression", user.pk, ""),
        ("click", user.pk, "phones"),
    ]


def test_signed_in_shopper_events_carry_the_user(browser):
    user = factories.user()
    browser.force_login(user)
    product = factories.product()
    browser.get(reverse("shop:product", kwargs={"pk": product.pk}))
    assert [e.user_id for e in events()] == [user.pk]


def test_anonymous_history_is_merged_into_the_user_on_login(browser):
    user = factories.user("carol", "pw-carol-123")
    product = factories.product()
    other = factories.product()
    browser.get(reverse("shop:product", kwargs={"pk": product.pk}))
    browser.get(reverse("shop:search"), {"q": "phone"})
    visitor = visitor_of(browser)
    assert events(user__isnull=True, session_key=visitor)

    response = browser.post(reverse("login"), {"username": "carol", "password": "pw-carol-123"})
    assert response.status_code == 302
    browser.get(reverse("shop:product", kwargs={"pk": other.pk}))

    assert VisitorLink.objects.get(session_key=visitor).user == user
    # The second product page shows a "recently viewed" carousel: its impression is the user's too.
    assert {e.user_id for e in events()} == {user.pk}
    assert [(e.event_type, e.user_id) for e in events() if e.event_type != "impression"] == [
        ("view", user.pk),
        ("search", user.pk),
        ("view", user.pk),
    ]
    assert visitor_of(browser) == visitor  # the login kept the visitor id


def test_a_logout_starts_a_new_visitor(browser):
    """A shared computer: who browses after the logout is not the account that left."""
    factories.user("dave", "pw-dave-123")
    product = factories.product()
    browser.get(reverse("shop:product", kwargs={"pk": product.pk}))
    before = visitor_of(browser)
    browser.post(reverse("login"), {"username": "dave", "password": "pw-dave-123"})
    browser.post(reverse("logout"))
    browser.get(reverse("shop:product", kwargs={"pk": product.pk}))
    after = visitor_of(browser)
    assert after != before
    assert events(session_key=after, user__isnull=True)  # anonymous, not the account's


def test_a_made_up_visitor_cookie_is_not_anyones_id(browser):
    from recommendations.identity import VISITOR_COOKIE

    product = factories.product()
    browser.cookies[VISITOR_COOKIE] = "0123456789abcdef0123456789abcdef"  # unsigned: made up
    browser.get(reverse("shop:product", kwargs={"pk": product.pk}))
    assert visitor_of(browser) != "0123456789abcdef0123456789abcdef"
    assert events()[0].session_key == visitor_of(browser)


def test_events_of_a_linked_visitor_written_later_belong_to_the_user(rf):
    """A queued batch written after the login still ends up with the user."""
    from recommendations.capture.ingress import build_record
    from recommendations.capture.store import write_events

    user = factories.user()
    VisitorLink.objects.create(session_key="v" * 32, user=user)
    write_events([build_record("view", item="7", session_key="v" * 32)])
    assert Event.objects.get().user == user


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_USER_AGENT": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
        {"HTTP_USER_AGENT": "python-requests/2.31"},
        {"HTTP_USER_AGENT": ""},
        {"HTTP_USER_AGENT": BROWSER_UA, "HTTP_SEC_PURPOSE": "prefetch;prerender"},
        {"HTTP_USER_AGENT": BROWSER_UA, "HTTP_PURPOSE": "prefetch"},
        {"HTTP_USER_AGENT": BROWSER_UA, "HTTP_DNT": "1"},
        {"HTTP_USER_AGENT": BROWSER_UA, "HTTP_SEC_GPC": "1"},
    ],
    ids=["googlebot", "script", "no-user-agent", "sec-purpose-prefetch", "purpose-prefetch", "dnt", "gpc"],
)
def test_requests_that_must_not_be_tracked_are_ignored(client, headers):
    product = factories.product()
    response = client.get(reverse("shop:product", kwargs={"pk": product.pk}), **headers)
    assert response.status_code == 200
    response = client.post(reverse("shop:cart_add", kwargs={"pk": product.pk}), {"quantity": 1}, **headers)
    assert response.status_code == 302
    assert not Event.objects.exists()


def test_dnt_can_be_ignored_by_setting(browser, recorder_settings):
    recorder_settings(HONOR_DNT=False)
    product = factories.product()
    browser.get(reverse("shop:product", kwargs={"pk": product.pk}), HTTP_DNT="1")
    assert Event.objects.count() == 1


def no_consent_cookie(request) -> bool:
    return request.COOKIES.get("analytics") == "yes"


def test_consent_callable_decides(browser, recorder_settings):
    recorder_settings(CONSENT_CHECK="tests.test_capture.no_consent_cookie")
    product = factories.product()
    url = reverse("shop:product", kwargs={"pk": product.pk})
    browser.get(url)
    assert not Event.objects.exists()
    browser.cookies["analytics"] = "yes"
    browser.get(url)
    assert Event.objects.count() == 1


def test_staff_can_be_left_out(browser, recorder_settings):
    recorder_settings(TRACK_STAFF=False)
    browser.force_login(factories.user(is_staff=True))
    browser.get(reverse("shop:product", kwargs={"pk": factories.product().pk}))
    assert not Event.objects.exists()


def test_missing_pages_and_posts_are_not_views(browser):
    assert browser.get(reverse("shop:product", kwargs={"pk": 999999})).status_code == 404
    inactive = factories.product(is_active=False)
    assert browser.get(reverse("shop:product", kwargs={"pk": inactive.pk})).status_code == 404
    assert not Event.objects.exists()


def test_an_exception_in_tracking_leaves_the_page_intact(browser, monkeypatch, caplog):
    product = factories.product()
    url = reverse("shop:product", kwargs={"pk": product.pk})
    expected = browser.get(url).content
    Event.objects.all().delete()

    def broken(*args, **kwargs):
        raise RuntimeError("recommender is broken")

    monkeypatch.setattr("recommendations.capture.ingress.build_record", broken)
    monkeypatch.setattr("recommendations.capture.recorders.store_events", broken)
    monkeypatch.setattr("recommendations.capture.ingress.is_trackable", broken)
    monkeypatch.setattr("recommendations.capture.middleware.is_trackable", broken)
    with caplog.at_level(logging.ERROR, logger="recommendations"):
        response = browser.get(url)
        cart = browser.post(reverse("shop:cart_add", kwargs={"pk": product.pk}), {"quantity": 1})
    assert response.status_code == 200
    assert without_csrf(response.content) == without_csrf(expected)
    assert cart.status_code == 302
    assert not Event.objects.exists()
    assert any("unchanged" in r.getMessage() or "unaffected" in r.getMessage() for r in caplog.records)


def test_a_failing_recorder_does_not_break_the_page(browser, monkeypatch, caplog):
    def broken(records):
        raise ConnectionError("database down")

    monkeypatch.setattr(
        "recommendations.capture.recorders.DatabaseRecorder.record", lambda self, records: broken(records)
    )
    product = factories.product()
    with caplog.at_level(logging.ERROR, logger="recommendations"):
        response = browser.get(reverse("shop:product", kwargs={"pk": product.pk}))
    assert response.status_code == 200
    assert "Could not record 1 buffered events" in caplog.text


def test_a_request_writes_its_events_in_one_insert(browser):
    product = factories.product()
    url = reverse("shop:cart_add", kwargs={"pk": product.pk})
    browser.get(reverse("shop:product", kwargs={"pk": product.pk}))  # create the session first
    with CaptureQueriesContext(connection) as queries:
        browser.post(url, {"quantity": 1})
    inserts = [q["sql"] for q in queries.captured_queries if 'INTO "recommendations_event"' in q["sql"]]
    assert len(inserts) == 1


def test_events_are_written_after_the_response_is_built(browser):
    """The buffer is written when the response is closed, i.e. after the page was sent."""
    product = factories.product()
    from django.test import RequestFactory

    from recommendations.capture.middleware import EventMiddleware

    written_before_close = []

    def view(request):
        from django.http import HttpResponse

        track(request, "view", product)
        return HttpResponse("ok")

    request = RequestFactory().get("/", HTTP_USER_AGENT=BROWSER_UA)
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore

    request.session, request.user = SessionStore(), AnonymousUser()
    response = EventMiddleware(view)(request)
    written_before_close.append(Event.objects.count())
    close(response)
    assert written_before_close == [0]
    assert Event.objects.count() == 1


def test_per_request_event_cap(rf, recorder_settings, caplog):
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore

    from recommendations.capture.middleware import EventMiddleware

    recorder_settings(MAX_EVENTS_PER_REQUEST=3)

    def view(request):
        from django.http import HttpResponse

        for i in range(10):
            track(request, "impression", str(i))
        return HttpResponse("ok")

    request = rf.get("/", HTTP_USER_AGENT=BROWSER_UA)
    request.session, request.user = SessionStore(), AnonymousUser()
    close(EventMiddleware(view)(request))
    assert Event.objects.count() == 3
    assert "Dropped 7 events over the per-request limit of 3" in caplog.text


def test_track_rejects_bad_events_without_raising(rf, caplog):
    request = rf.get("/", HTTP_USER_AGENT=BROWSER_UA)
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore

    request.session, request.user = SessionStore(), AnonymousUser()
    assert track(request, "teleport", "1") is False
    assert track(request, "view") is False  # a view needs an item
    assert track(request, "search", query=" ") is False
    assert track(request, "cart", "1", price="abc") is False
    assert not Event.objects.exists()
    assert "unknown event type 'teleport'" in caplog.text


def test_track_without_request_uses_the_given_user():
    user = factories.user()
    assert track(None, "purchase", "9", user=user, quantity=1, price="3.5")
    event = Event.objects.get()
    assert (event.user, event.price, event.session_key) == (user, 3.5, "")
