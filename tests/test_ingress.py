"""One ingress: a page view, a click and an API batch obey the same rules, and the stages
that listen to capture hear of events through its signal, not through an import."""

from __future__ import annotations

import uuid
import warnings

import pytest
from django.core.management import call_command
from django.urls import reverse

from recommendations.models import Event
from recommendations.signals import events_recorded
from tests import factories
from tests.conftest import APP_UA, BROWSER_UA, app_client, device_id

pytestmark = pytest.mark.django_db

CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
REFUSED = {
    "crawler": {"HTTP_USER_AGENT": CRAWLER},
    "no-user-agent": {"HTTP_USER_AGENT": ""},
    "dnt": {"HTTP_DNT": "1"},
    "gpc": {"HTTP_SEC_GPC": "1"},
    "prefetch": {"HTTP_SEC_PURPOSE": "prefetch"},
}


def page_view(client, product, headers) -> None:
    response = client.get(
        reverse("shop:product", kwargs={"pk": product.pk}), **{"HTTP_USER_AGENT": BROWSER_UA, **headers}
    )
    assert response.status_code == 200


def api_batch(client, product, headers) -> None:
    payload = {"events": [{"event": "view", "item_id": str(product.pk), "client_event_id": uuid.uuid4().hex}]}
    response = client.post(
        "/api/v1/events/",
        payload,
        format="json",
        HTTP_X_DEVICE_ID=device_id("rules-0001"),
        **{"HTTP_USER_AGENT": APP_UA, **headers},
    )
    assert response.status_code == 202
    assert response.json() == {"accepted": 0, "tracked": False} or not headers


WAYS_IN = {"page": (page_view, "browser"), "api": (api_batch, "api")}


@pytest.fixture
def api():
    return app_client()


@pytest.mark.parametrize("rule", list(REFUSED))
@pytest.mark.parametrize("way", list(WAYS_IN))
def test_page_and_api_events_are_refused_by_the_same_rules(request, way, rule):
    send, client_fixture = WAYS_IN[way]
    product = factories.product()
    send(request.getfixturevalue(client_fixture), product, REFUSED[rule])
    assert not Event.objects.exists()


@pytest.mark.parametrize("way", list(WAYS_IN))
def test_page_and_api_events_pass_the_same_rules(request, way):
    send, client_fixture = WAYS_IN[way]
    send(request.getfixturevalue(client_fixture), factories.product(), {})
    assert Event.objects.count() == 1


def refuse_all(request) -> bool:
    return False


@pytest.mark.parametrize("way", list(WAYS_IN))
def test_the_consent_check_and_staff_rule_apply_to_every_way_in(request, recorder_settings, way):
    send, client_fixture = WAYS_IN[way]
    client = request.getfixturevalue(client_fixture)
    recorder_settings(CONSENT_CHECK="tests.test_ingress.refuse_all")
    send(client, factories.product(), {"HTTP_X_TEST": "consent"})
    assert not Event.objects.exists()
    recorder_settings(CONSENT_CHECK=None, TRACK_STAFF=False)
    client.force_login(factories.user("staff-member", is_staff=True))
    send(client, factories.product(), {"HTTP_X_TEST": "staff"})
    assert not Event.objects.exists()


def test_a_click_from_a_crawler_is_not_recorded(browser):
    from recommendations.capture.clicks import click_url

    product = factories.product()
    url = click_url(str(product.pk), "for_you", None, "/")
    assert browser.get(url, HTTP_USER_AGENT=CRAWLER).status_code == 302
    assert not Event.objects.exists()
    assert browser.get(url).status_code == 302
    assert list(Event.objects.values_list("event_type", flat=True)) == ["click"]


def test_accepted_events_are_announced_once_per_batch(browser):
    heard = []

    def listener(sender, records, **kwargs):
        heard.append([(r.event_type, r.item_id) for r in records])

    events_recorded.connect(listener, dispatch_uid="test-listener")
    try:
        product = factories.product()
        page_view(browser, product, {})
        page_view(browser, product, {"HTTP_DNT": "1"})  # refused: nothing announced
    finally:
        events_recorded.disconnect(dispatch_uid="test-listener")
    assert heard == [[("view", str(product.pk))]]


def test_a_failing_listener_never_loses_the_event(browser, caplog):
    def broken(sender, records, **kwargs):
        raise RuntimeError("a listener is broken")

    events_recorded.connect(broken, dispatch_uid="test-broken")
    try:
        page_view(browser, factories.product(), {})
    finally:
        events_recorded.disconnect(dispatch_uid="test-broken")
    assert Event.objects.count() == 1
    assert any("a listener is broken" in record.getMessage() for record in caplog.records)


def test_old_import_paths_still_work_with_a_deprecation_warning(recorder_settings):
    import importlib
    import sys

    from recommendations.capture import middleware, recorders

    for old, new, name in (
        ("recommendations.middleware", middleware, "EventMiddleware"),
        ("recommendations.recorders", recorders, "DatabaseRecorder"),
    ):
        sys.modules.pop(old, None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(old)
        assert getattr(module, name) is getattr(new, name)
        assert any(issubclass(w.category, DeprecationWarning) and "moved" in str(w.message) for w in caught)
    recorder_settings(RECORDER="recommendations.recorders.DatabaseRecorder")
    from recommendations.capture.recorders import get_recorder

    assert type(get_recorder()) is recorders.DatabaseRecorder
    call_command("check", fail_level="ERROR")  # the old string passes the recorder check
