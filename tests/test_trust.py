"""Attacks replayed against the one ingress: a client cannot claim the server's event keys,
move events into another period, or stall event storage with a record the database refuses.
(Issue "Trust": findings 1, 5 and part of 11.)"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from recommendations import track
from recommendations.capture.clicks import SALT
from recommendations.models import Event
from shop.models import Order
from tests import factories
from tests.conftest import app_client, device_id

pytestmark = pytest.mark.django_db
EVENTS = "/api/v1/events/"


def post(client, *events, device: str = "device-attacker-0001"):
    payload = {"events": [{"event": "view", "client_event_id": uuid.uuid4().hex, **e} for e in events]}
    return client.post(EVENTS, payload, format="json", HTTP_X_DEVICE_ID=device_id(device))


def checkout(browser, product, capture):
    browser.post(reverse("shop:cart_add", kwargs={"pk": product.pk}), {"quantity": 1})
    with capture(execute=True):  # the shop sends order_placed on commit
        assert browser.post(reverse("shop:checkout"), {"email": "shopper@example.com"}).status_code == 302
    return Order.objects.latest("pk")


def test_an_app_cannot_pre_claim_the_key_of_a_real_purchase(browser, django_capture_on_commit_callbacks):
    """The attack: purchase keys are ``purchase:<order>:<item>``; an anonymous batch sent those
    ids first, and the real purchase was then skipped as a duplicate."""
    product = factories.product(price="10.00", stock=100)
    first = checkout(browser, product, django_capture_on_commit_callbacks)
    claims = [
        {
            "event": "purchase",
            "item_id": str(product.pk),
            "client_event_id": f"purchase:{first.pk + n}:{product.pk}",
        }
        for n in range(1, 11)
    ]
    assert post(app_client(), *claims).json() == {"accepted": 10, "tracked": True}
    order = checkout(browser, product, django_capture_on_commit_callbacks)
    real = Event.objects.filter(event_type="purchase", source="signal")
    assert real.filter(client_event_id=f"purchase:{order.pk}:{product.pk}").count() == 1
    assert real.count() == 2  # both real orders, whatever the app sent
    assert not Event.objects.filter(source="api", client_event_id__startswith="purchase:").exists()


def test_client_keys_are_the_callers_own(browser):
    product = factories.product()
    same = {"item_id": str(product.pk), "client_event_id": "app-event-00000001"}
    for _ in range(2):  # a resend of the same event: stored once
        post(app_client(), same, device="device-owner-00001")
    post(app_client(), same, device="device-another-001")  # another caller, the same id: its own event
    assert Event.objects.filter(source="api").count() == 2


def test_server_code_may_not_use_the_apps_namespace():
    product = factories.product()
    assert track(None, "view", product, client_event_id="client:" + "0" * 40) is False
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("when", "accepted"),
    [
        (timedelta(days=-365 * 7), False),  # back-dated into a past holdout (2019, say)
        (timedelta(days=365 * 7900), False),  # the year 9926
        (timedelta(days=-2), False),  # older than CLIENT_MAX_EVENT_AGE_SECONDS
        (timedelta(hours=-3), True),  # an offline queue flushed later the same day
        (timedelta(seconds=120), True),  # a phone clock a little ahead: counted as now
    ],
)
def test_client_timestamps_stay_near_the_servers_clock(when, accepted):
    product = factories.product()
    sent = timezone.now() + when
    response = post(app_client(), {"item_id": str(product.pk), "timestamp": sent.isoformat()})
    if not accepted:
        assert response.status_code == 400
        assert "timestamp" in str(response.json()["events"])
        assert not Event.objects.exists()
        return
    assert response.status_code == 202
    stored = Event.objects.get().timestamp
    assert stored <= timezone.now() and abs(stored - min(sent, timezone.now())) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("item_id", "12\u202e34"),  # a right-to-left override
        ("item_id", "1' OR '1'='1"),
        ("item_id", "a\u200bb"),  # a zero-width space
        ("category_id", "phones\x07"),
        ("query", "cheap\x00pills"),
        ("scenario", "for you"),
    ],
)
def test_malformed_fields_are_refused_at_the_ingress(field, value):
    event = {"event": "search" if field == "query" else "view", "item_id": "42", field: value}
    if field == "query":
        event.pop("item_id")
    response = post(app_client(), event)
    assert response.status_code == 400, response.content
    assert not Event.objects.exists()


def test_a_record_the_database_would_refuse_never_reaches_the_recorder(browser):
    """The attack: a click link (signed with a leaked key) named model version 2**40; the
    batch that held it failed forever and every later event waited behind it."""
    product = factories.product()
    token = signing.dumps(
        {"i": str(product.pk), "s": "for_you", "v": 2**40, "t": "/"}, salt=SALT, compress=True
    )
    assert browser.get(reverse("recommendations:click", kwargs={"token": token})).status_code == 302
    assert not Event.objects.exists()  # refused at the ingress, the page unaffected
    browser.get(reverse("shop:product", kwargs={"pk": product.pk}))
    assert list(Event.objects.values_list("event_type", flat=True)) == ["view"]


def test_a_batch_with_a_record_the_database_refuses_stores_the_rest_and_quarantines_it(admin_client):
    """Past the ingress (a shop's own recorder or adapter, say), a refused record is found by
    splitting the batch, set aside and shown in the admin; the events around it are stored."""
    from recommendations.capture.recorders import DatabaseRecorder
    from recommendations.models import QuarantinedEvent
    from recommendations.records import EventRecord

    def record(item: str, **fields) -> EventRecord:
        return EventRecord(
            event_type="view", timestamp=timezone.now(), session_key="v1", item_id=item, **fields
        )

    batch = [record(str(n)) for n in range(5)] + [record("bad", model_version=2**70)] + [record("6")]
    DatabaseRecorder().write(batch)
    assert sorted(Event.objects.values_list("item_id", flat=True)) == ["0", "1", "2", "3", "4", "6"]
    [kept] = QuarantinedEvent.objects.all()
    assert kept.payload["item_id"] == "bad" and kept.payload["model_version"] == 2**70
    page = admin_client.get(reverse("admin:recommendations_event_changelist"))
    assert b"1 event was refused by the database and quarantined" in page.content
    assert admin_client.get(reverse("admin:recommendations_quarantinedevent_changelist")).status_code == 200


def views_of(*item_ids):
    return [{"item_id": str(item_id)} for item_id in item_ids]


def flood(device: str, events: list[dict]) -> None:
    """One device sending ``events`` in full batches, as fast as the API lets it."""
    client = app_client()
    for start in range(0, len(events), 100):
        assert post(client, *events[start : start + 100], device=device).status_code == 202


def test_one_device_repeating_views_cannot_make_an_item_similar():
    """The attack: 499 views of A and 1 of B from one device made B the #1 "similar" item of
    A (the 500-row window counted events, not sessions)."""
    a, b, c = factories.product(), factories.product(), factories.product()
    for n in range(3):  # three real shoppers viewed A, then C
        flood(f"device-shopper-{n:04d}", views_of(a.pk, c.pk))
    flood("device-attacker-0001", views_of(*[a.pk] * 499, b.pk))
    similar = app_client().get(f"/api/v1/recommendations/similar/{a.pk}/").json()["items"]
    assert similar[0]["item_id"] == str(c.pk)


def test_one_device_repeating_views_cannot_make_an_item_trend():
    """The attack: one device's 500 views made an item #1 trending for everyone."""
    wanted, pushed = factories.product(), factories.product()
    for n in range(3):
        flood(f"device-shopper-{n:04d}", views_of(wanted.pk))
    flood("device-attacker-0001", views_of(*[pushed.pk] * 500))
    trending = app_client().get("/api/v1/recommendations/trending/").json()["items"]
    assert [item["item_id"] for item in trending][:2] == [str(wanted.pk), str(pushed.pk)]


def test_api_errors_are_json_even_for_a_huge_body_or_an_unknown_path():
    """The attack: a 3 MB POST was answered with a 117 KB HTML debug page."""
    client = app_client()
    body = b'{"events": [' + b'{"event": "view", "item_id": "1"},' * 100_000 + b"{}]}"
    response = client.post(
        EVENTS, body, content_type="application/json", HTTP_X_DEVICE_ID=device_id("device-attacker-0001")
    )
    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")
    assert "bytes per request" in response.json()["detail"]
    missing = client.get("/api/v1/no-such-endpoint/")
    assert missing.status_code == 404 and missing.json()["detail"].startswith("No such API endpoint")


def test_a_click_link_counts_once_and_expires(browser, recorder_settings):
    """The attack: one click token opened 10 times made 10 clicks, forever."""
    from recommendations.capture.clicks import click_url

    product = factories.product()
    url = click_url(str(product.pk), "for_you", None, f"/product/{product.pk}/")
    for _ in range(10):
        assert browser.get(url).status_code == 302
    assert Event.objects.filter(event_type="click").count() == 1
    recorder_settings(CLICK_MAX_AGE_SECONDS=1)
    stale = click_url(str(product.pk), "for_you", None, "/")
    with mock.patch("django.core.signing.time.time", return_value=time.time() + 5):
        response = browser.get(stale)
    assert response.status_code == 302 and response["Location"] == "/"  # still takes the shopper there
    assert Event.objects.filter(event_type="click").count() == 1


def test_a_nul_in_a_search_is_no_server_error(browser):
    """The attack: ``/search/?q=%00`` was a 500 on PostgreSQL."""
    factories.product(name="Samsung phone")
    assert browser.get(reverse("shop:search"), {"q": "\x00"}).status_code == 200
    assert browser.get(reverse("shop:search"), {"q": "Samsung\x00"}).status_code == 200


@pytest.fixture
def default_thresholds(recorder_settings):
    """The shipped thresholds (the rest of the suite plants one search per query)."""
    from recommendations.conf import DEFAULTS
    from recommendations.suggest import loader

    recorder_settings(SUGGEST={key: DEFAULTS["SUGGEST"][key] for key in ("MIN_SEARCHES", "MIN_SHOPPERS")})
    loader.reset()
    yield
    loader.reset()


def searches(device: str, *texts: str, then_view=None) -> None:
    events = []
    for text in texts:
        events.append({"event": "search", "query": text, "result_count": 50})
        if then_view is not None:
            events.append({"event": "view", "item_id": str(then_view)})
    flood(device, events)


def suggested(prefix: str) -> list[str]:
    from recommendations.suggest import loader, services
    from recommendations.suggest.stats import rebuild

    rebuild()
    loader.reset()
    return [s.text for s in services.suggest(None, prefix)]


@pytest.mark.usefixtures("default_thresholds")
def test_one_device_cannot_make_a_suggestion_for_everyone():
    """The attacks: one API search of "cheap pills online http://spam.example" was suggested for
    "ch", "ht" and "sp"; 50 searches and 50 views put "smartphone deals at evil.example" above
    "smartphone"."""
    phone = factories.product(name="Smartphone")
    for n in range(3):  # real shoppers: five searches each over visits, counted once a visit
        for visit in range(2):
            searches(f"device-shopper-{n}-{visit:04d}", "smartphone", then_view=phone.pk)
    searches("device-attacker-0001", "cheap pills online http://spam.example")
    searches("device-attacker-0002", *["smartphone deals at evil example"] * 50, then_view=phone.pk)
    assert suggested("ch") == [] and suggested("ht") == [] and suggested("sp") == []
    assert "smartphone deals at evil example" not in suggested("sm")  # one device: one shopper
    assert suggested("sm")[0] == "Smartphone"  # as the catalogue writes it


@pytest.mark.usefixtures("default_thresholds")
@pytest.mark.parametrize(
    "text",
    [
        "microwave for jane.roe@example.com",  # an e-mail address
        "smartphone deals at evil.example",  # a domain
        "call 555 123 4567 now",  # a phone number
        "buy <script>alert(1)</script>",  # markup
        "buy cheap one two three four five six seven eight nine",  # longer than anyone types
    ],
)
def test_queries_with_personal_data_links_or_markup_are_never_suggested(text):
    for n in range(6):  # however many shoppers search it
        searches(f"device-shopper-{n:05d}", text)
    assert text not in suggested(text[:2])


def test_denylisted_words_and_blocked_queries_are_not_suggested(recorder_settings, admin_client):
    from recommendations.models import SearchQuery

    for n in range(3):
        searches(f"device-shopper-{n:05d}", "vape pen", "office chair")
    assert set(suggested("vap")) == {"vape pen"}
    recorder_settings(SUGGEST={"DENYLIST": ["vape"]})
    assert suggested("vap") == []
    chair = SearchQuery.objects.get(key="office chair")
    page = admin_client.get(reverse("admin:recommendations_searchquery_changelist")).content.decode()
    assert "no: holds a word of the denylist" in page
    response = admin_client.post(
        reverse("admin:recommendations_searchquery_changelist"),
        {"action": "block_queries", "_selected_action": [chair.pk]},
    )
    assert response.status_code == 302
    assert suggested("off") == []  # blocked, and still after the rebuild
    page = admin_client.get(reverse("admin:recommendations_searchquery_changelist")).content.decode()
    assert "no: blocked in the admin" in page


@pytest.mark.usefixtures("default_thresholds")
def test_a_related_search_needs_as_many_shoppers_as_a_suggestion():
    """The attack: 2 events made "buy followers at spam" the only related search of "smartphone"."""
    from recommendations.suggest import loader, services

    for n in range(3):
        for visit in range(2):
            searches(f"device-shopper-{n}-{visit:04d}", "smartphone", "smartphone case")
    searches("device-attacker-0001", "smartphone", "buy followers at spam")
    suggested("sm")
    loader.reset()
    assert [s.text for s in services.related("smartphone")] == ["smartphone case"]


def test_device_ids_are_issued_by_the_server_and_cannot_be_made_up():
    """The attack: ``12345678`` was accepted as a device id, so ids could be guessed."""
    product = factories.product()
    client = app_client()
    issued = client.post("/api/v1/devices/").json()["device_id"]
    event = {"events": [{"event": "view", "item_id": str(product.pk), "client_event_id": uuid.uuid4().hex}]}
    assert client.post(EVENTS, event, format="json", HTTP_X_DEVICE_ID=issued).status_code == 202
    forged = issued[:23] + ("A" if issued[23] != "A" else "B") + issued[24:]  # the signature altered
    for made_up in ("12345678", "device-abcdef12", forged):
        response = client.post(EVENTS, event, format="json", HTTP_X_DEVICE_ID=made_up)
        assert response.status_code == 400 and "device id" in response.json()["X-Device-Id"]


def test_a_signed_in_caller_cannot_read_or_extend_another_devices_history():
    """The attack: a signed-in caller sending someone else's device id saw and extended that
    device's anonymous history in their own lists."""
    from rest_framework.authtoken.models import Token

    sofa, phone = factories.product(), factories.product()
    victim = device_id("victim-phone")
    post(app_client(), {"item_id": str(sofa.pk)}, device="victim-phone")
    mallory = app_client(
        HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=factories.user('mallory')).key}"
    )
    mallory.post(EVENTS, {"events": [{"event": "view", "item_id": str(phone.pk), "client_event_id": "mallory-0001"}]},
                 format="json", HTTP_X_DEVICE_ID=victim)  # fmt: skip
    seen = mallory.get("/api/v1/recommendations/recently-viewed/", HTTP_X_DEVICE_ID=victim).json()["items"]
    assert [item["item_id"] for item in seen] == [str(phone.pk)]  # hers only
    own = (
        app_client().get("/api/v1/recommendations/recently-viewed/", HTTP_X_DEVICE_ID=victim).json()["items"]
    )
    assert [item["item_id"] for item in own] == [str(sofa.pk)]  # not extended


def test_a_device_joins_a_user_only_through_a_signed_in_link():
    from rest_framework.authtoken.models import Token

    sofa = factories.product()
    device = device_id("my-own-phone")
    post(app_client(), {"item_id": str(sofa.pk)}, device="my-own-phone")
    assert app_client().post("/api/v1/devices/link/", HTTP_X_DEVICE_ID=device).status_code in (401, 403)
    alice = factories.user("alice")
    client = app_client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    assert client.post("/api/v1/devices/link/", HTTP_X_DEVICE_ID=device).json() == {"linked_events": 1}
    seen = client.get("/api/v1/recommendations/recently-viewed/").json()["items"]
    assert [item["item_id"] for item in seen] == [str(sofa.pk)]


def test_new_device_ids_are_rate_limited_per_address(recorder_settings):
    """Finding 8: a device id in the header (or a forged X-Forwarded-For) does not give a new allowance."""
    recorder_settings(API_THROTTLE_RATES={"devices": "3/hour"})
    client = app_client(REMOTE_ADDR="198.51.100.7")
    answers = [
        client.post(
            "/api/v1/devices/", HTTP_X_DEVICE_ID=device_id(f"d{n}"), HTTP_X_FORWARDED_FOR=f"10.0.0.{n}"
        ).status_code
        for n in range(4)
    ]
    assert answers == [201, 201, 201, 429]
    assert app_client(REMOTE_ADDR="198.51.100.8").post("/api/v1/devices/").status_code == 201


def batch(n: int) -> dict:
    return {
        "events": [{"event": "search", "query": "x", "client_event_id": uuid.uuid4().hex} for _ in range(n)]
    }


def test_the_event_limit_counts_events_not_requests(recorder_settings):
    """The attack (finding 8): 120 requests a minute of 100 events each were 12,000 events."""
    recorder_settings(API_THROTTLE_RATES={"events": "250/minute"})
    client = app_client(HTTP_X_DEVICE_ID=device_id("packer"))
    answers = [client.post(EVENTS, batch(100), format="json").status_code for _ in range(3)]
    assert answers == [202, 202, 429]
    assert client.post(EVENTS, batch(50), format="json").status_code == 202  # what is left of the 250
    assert Event.objects.count() == 250


def test_new_device_ids_do_not_reset_the_limit_of_their_network(recorder_settings):
    """The attack (finding 8): a new device id per request, or a made-up X-Forwarded-For, reset the limit."""
    recorder_settings(API_THROTTLE_RATES={"events": "100/minute", "events_per_address": "150/minute"})
    answers = [
        app_client(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        .post(EVENTS, batch(50), format="json", HTTP_X_DEVICE_ID=device_id(f"fresh-{n}"))
        .status_code
        for n in range(4)
    ]
    assert answers == [202, 202, 202, 429]
    elsewhere = app_client(REMOTE_ADDR="203.0.113.10", HTTP_X_DEVICE_ID=device_id("neighbour"))
    assert elsewhere.post(EVENTS, batch(50), format="json").status_code == 202


def test_a_trusted_proxys_forwarded_address_is_the_client(recorder_settings):
    from django.test import RequestFactory

    from recommendations.network import client_address, network_key

    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.4")
    assert client_address(request) == "10.0.0.2"  # no proxy trusted: the header is the client's words
    recorder_settings(TRUSTED_PROXIES=1)
    assert client_address(request) == "198.51.100.4"  # what our proxy saw, not what the client wrote
    same_home = [
        RequestFactory().get("/", REMOTE_ADDR=f"2001:db8:1:2::{n}") for n in (1, 2)
    ]  # one /64: one household
    assert network_key(same_home[0]) == network_key(same_home[1]) != network_key(request)
    assert "198.51.100.4" not in network_key(request)


def test_an_erased_shoppers_recent_events_do_not_outlive_the_erasure_in_another_process():
    """The attack (finding 7): after ``recommendations_forget_user`` ran in another process,
    the server's own cache still served the user's recently viewed items."""
    from django.core.cache import cache

    from recommendations.capture.privacy import forget_user
    from recommendations.identity import Shopper
    from recommendations.serving.history import OVERLAY_PREFIX, OVERLAY_TRUST_SECONDS, recent_events

    user, product = factories.user("erased"), factories.product()
    assert track(None, "view", product, user=user)
    shopper = Shopper(user_id=user.pk)
    stale = cache.get(OVERLAY_PREFIX + shopper.key)  # what the server process's own cache holds
    forget_user(user)
    for row in stale["events"]:
        row[6] -= OVERLAY_TRUST_SECONDS + 1  # noted before the erasure ran elsewhere
    cache.set(OVERLAY_PREFIX + shopper.key, stale)
    assert recent_events(shopper) == []
    assert track(None, "view", product, user=user)  # a new view a moment ago still counts at once
    assert [e.item_id for e in recent_events(shopper)] == [str(product.pk)]


def test_an_erasure_in_another_process_is_seen_at_once(recorder_settings):
    """Finding 7: a process whose cache another process's erasure cannot reach served the
    erased user's recently viewed items, from its copy and from its cached API lists."""
    from django.core.cache import cache
    from rest_framework.authtoken.models import Token

    from recommendations.capture.privacy import forget_user
    from recommendations.identity import Shopper
    from recommendations.serving.history import OVERLAY_PREFIX, recent_events

    recorder_settings(RESPONSE_CACHE_SECONDS=300)
    user, product = factories.user("erased-now"), factories.product()
    client = app_client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert post(client, {"item_id": str(product.pk)}).status_code == 202
    seen = "/api/v1/recommendations/recently-viewed/"
    assert [i["item_id"] for i in client.get(seen).json()["items"]] == [str(product.pk)]  # now cached
    this_process = dict(cache._cache) if hasattr(cache, "_cache") else None
    stale = cache.get(OVERLAY_PREFIX + Shopper(user_id=user.pk).key)
    forget_user(user)  # "in another process": put back what this process's cache held
    if this_process is not None:
        cache._cache.update(this_process)
    cache.set(OVERLAY_PREFIX + Shopper(user_id=user.pk).key, stale)
    assert recent_events(Shopper(user_id=user.pk)) == []
    assert client.get(seen).json()["items"] == []
    assert post(client, {"item_id": str(product.pk)}).status_code == 202  # a new view counts at once
    assert [i["item_id"] for i in client.get(seen).json()["items"]] == [str(product.pk)]


def test_an_erasure_queues_a_suggestion_rebuild(monkeypatch):
    from django.core.cache import cache

    from recommendations.capture.privacy import forget_user
    from recommendations.suggest import scheduling

    sent = []
    monkeypatch.setattr(scheduling, "send", lambda task, **options: sent.append(task.name))
    cache.delete(scheduling.PENDING_KEY)
    forget_user(factories.user("leaving"))
    assert sent == ["recommendations.rebuild_suggestions"]


def test_a_first_page_view_writes_no_session_row(browser):
    """The attack (finding 9): the first page of each visitor wrote a session row during the
    request, so a locked database made first visits 500s. Now: a signed cookie, no write."""
    from django.contrib.sessions.models import Session
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.conftest import visitor_of

    product = factories.product()
    with CaptureQueriesContext(connection) as queries:
        assert browser.get(reverse("shop:product", kwargs={"pk": product.pk})).status_code == 200
    assert not Session.objects.exists()
    assert not [q["sql"] for q in queries if "django_session" in q["sql"]]
    assert Event.objects.get(event_type="view").session_key == visitor_of(browser)
    browser.get(reverse("shop:product", kwargs={"pk": product.pk}))
    assert set(Event.objects.filter(event_type="view").values_list("session_key", flat=True)) == {
        visitor_of(browser)
    }


def test_a_first_page_view_answers_while_the_database_refuses_writes(browser, monkeypatch):
    """The page itself needs no write: with every INSERT or UPDATE failing as a locked SQLite
    database fails ("database is locked"), a first-time visitor still gets the page."""
    from django.db import OperationalError, connection

    product = factories.product()

    def locked(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            raise OperationalError("database is locked")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(locked):
        response = browser.get(reverse("shop:product", kwargs={"pk": product.pk}))
    assert response.status_code == 200 and product.name in response.content.decode()


@pytest.fixture
def vigilant(recorder_settings):
    """The production limits on (the suite turns them off: all its clients are 127.0.0.1)."""
    from recommendations.conf import DEFAULTS

    recorder_settings(VIGILANCE={**DEFAULTS["VIGILANCE"], "SETTLE_SECONDS": None})


def test_a_burst_is_flagged_and_left_out_of_everyone_elses_lists(vigilant, admin_client):
    """The attack (finding 2): one device's burst of views moved trending. Now the burst flags
    the device: its events are stored and its own history keeps them, but trending doesn't."""
    from recommendations.models import FlaggedShopper

    wanted, pushed = factories.product(), factories.product()
    for n in range(3):
        flood(f"device-shopper-{n:04d}", views_of(wanted.pk))
    flood("device-burst-0001", views_of(*[pushed.pk] * 80))  # 80 views in a second
    flag = FlaggedShopper.objects.get()
    assert flag.reason == "burst" and flag.session_key.startswith("device:")
    assert Event.objects.filter(item_id=str(pushed.pk)).count() == 80  # still stored
    trending = app_client().get("/api/v1/recommendations/trending/").json()["items"]
    assert [item["item_id"] for item in trending] == [str(wanted.pk)]
    own = app_client(HTTP_X_DEVICE_ID=device_id("device-burst-0001"))
    assert [i["item_id"] for i in own.get("/api/v1/recommendations/recently-viewed/").json()["items"]] == [
        str(pushed.pk)
    ]

    page = admin_client.get(reverse("admin:recommendations_flaggedshopper_changelist"))
    assert page.status_code == 200 and b"more events a minute than a person makes" in page.content
    admin_client.post(
        reverse("admin:recommendations_flaggedshopper_changelist"),
        {"action": "clear_flags", "_selected_action": [flag.pk]},
    )
    flag.refresh_from_db()
    assert flag.cleared_at is not None
    from recommendations.serving import popularity

    popularity.clear()
    trending = app_client().get("/api/v1/recommendations/trending/").json()["items"]
    assert str(pushed.pk) in [item["item_id"] for item in trending]  # cleared: it counts again


def test_fresh_cookie_jars_from_one_network_are_flagged_past_the_cap(vigilant, recorder_settings):
    """The attack (finding 2): 30 fresh cookie jars, each viewing A then B (60 GETs in 2 s),
    made a chair #1 "similar" to a smartphone. From one network only the first
    NETWORK_NEW_SHOPPERS_PER_HOUR count; the rest are flagged (and a real shopper's view still counts)."""
    from django.core.cache import cache
    from django.test import Client

    from recommendations.models import FlaggedShopper
    from recommendations.serving import popularity
    from tests.conftest import BROWSER_UA

    recorder_settings(VIGILANCE={"NETWORK_NEW_SHOPPERS_PER_HOUR": 5})
    phone, chair, case = factories.product(), factories.product(), factories.product()
    for n in range(8):  # real shoppers, each from their own network, viewed the phone, then a case
        shopper = Client(HTTP_USER_AGENT=BROWSER_UA, REMOTE_ADDR=f"198.51.100.{n + 1}")
        for product in (phone, case):
            shopper.get(reverse("shop:product", kwargs={"pk": product.pk}))
    for _ in range(30):
        jar = Client(HTTP_USER_AGENT=BROWSER_UA, REMOTE_ADDR="203.0.113.66")
        for product in (phone, chair):
            jar.get(reverse("shop:product", kwargs={"pk": product.pk}))
    assert FlaggedShopper.objects.filter(reason="network_shoppers").count() == 25
    cache.clear()  # the pages computed (and cached) the phone's co-views as they went
    assert popularity.co_viewed(str(phone.pk)) == {str(case.pk): 8 / 13, str(chair.pk): 5 / 13}


def test_a_network_sending_more_events_than_people_do_is_flagged(vigilant, recorder_settings):
    from recommendations.models import FlaggedShopper

    recorder_settings(VIGILANCE={"NETWORK_EVENTS_PER_MINUTE": 150, "NETWORK_NEW_SHOPPERS_PER_HOUR": None})
    product = factories.product()
    for n in range(4):  # 4 devices of one address, 50 events each, under the per-shopper limit
        flood(f"device-net-{n:04d}", views_of(*[product.pk] * 50))
    assert list(FlaggedShopper.objects.values_list("reason", flat=True)) == ["network_events"]


def test_flagged_shoppers_do_not_train_or_judge_a_model(vigilant):
    from recommendations.models import FlaggedShopper

    shopper, flagged = (
        factories.event("view", item_id="1", session_key="real"),
        factories.event("view", item_id="2", session_key="bot"),
    )
    FlaggedShopper.objects.create(shopper="s:bot", session_key="bot", reason="burst")
    assert list(Event.objects.trusted()) == [shopper]
    assert flagged in Event.objects.all()


def test_no_single_shopper_fills_the_holdout():
    import pandas as pd

    from recommendations.ml.frames import cap_shopper_share

    rows = [("", "bot", f"{n}") for n in range(500)] + [(f"{u}", "", "x") for u in range(100)]
    frame = pd.DataFrame(rows, columns=["user", "session", "item"])
    capped = cap_shopper_share(frame, share=0.02)
    assert (capped["session"] == "bot").sum() == 20  # 2 % of 600 is 12; the floor is 20
    assert len(capped) == 120


def test_a_holdout_sample_keeps_whole_shoppers_and_is_the_same_every_time():
    import pandas as pd

    from recommendations.ml.frames import sample_shoppers

    rows = [("", f"s{n % 40}", f"{n}") for n in range(400)] + [(f"u{n % 10}", "x", "y") for n in range(50)]
    frame = pd.DataFrame(rows, columns=["user", "session", "item"])
    sample = sample_shoppers(frame, 7)
    shoppers = sample["user"].where(sample["user"] != "", sample["session"])
    assert shoppers.nunique() == 7
    assert set(sample.groupby(shoppers).size()) <= {10, 5}  # every row of each shopper chosen
    shuffled = sample_shoppers(frame.sample(frac=1, random_state=1), 7)  # the same shoppers, any order
    assert sorted(shuffled["item"]) == sorted(sample["item"])
    assert sample_shoppers(frame, None) is frame and len(sample_shoppers(frame, 100)) == len(frame)


@pytest.mark.parametrize("item_id", ["123456789012345678901234567890", "-5", "1'OR'1'='1", "999999"])
def test_events_for_items_the_catalogue_does_not_have_are_refused(item_id):
    """Finding 11: events for 30-digit ids, -5 and SQL-looking ids were accepted (and counted)."""
    real = factories.product()
    answer = post(app_client(), {"item_id": str(real.pk)}, {"item_id": item_id})
    assert answer.status_code == 400 and "no such item" in answer.json()["events"]
    assert not Event.objects.exists()  # the batch is refused whole, as for any bad event


def test_for_you_is_filled_to_its_limit_from_the_fallbacks(served_model, recorder_settings):
    """Finding 11: for-you?limit=10 returned 6 items when the model's candidates ran out."""
    from shop.models import Product
    from tests.serving_world import ITEMS

    recorder_settings(MAX_PER_CATEGORY=None, RESPONSE_CACHE_SECONDS=0)
    phones = [item for item, code in ITEMS.items() if code == "electronics.smartphone"]
    Product.objects.filter(pk__in=[int(i) for i in ITEMS if i not in phones[:6]]).update(stock=0)
    newcomers = [factories.product() for _ in range(6)]  # new to the model, popular already
    for n, product in enumerate(newcomers):
        factories.event("view", item_id=str(product.pk), session_key=f"fan-{n}")
    client = app_client(HTTP_X_DEVICE_ID=device_id("filler"))
    post(client, *views_of(phones[0]), device="filler")
    listed = client.get("/api/v1/recommendations/for-you/", {"limit": 10}).json()
    assert len(listed["items"]) == 10 and listed["source"] == "model+fallbacks"
    assert {i["item_id"] for i in listed["items"][:5]} == set(phones[1:6])  # the model's first
    assert {i["item_id"] for i in listed["items"][5:]} <= {str(p.pk) for p in newcomers}


def test_a_signed_in_app_is_never_recommended_what_it_just_viewed(served_model, recorder_settings):
    """Finding 11: a token caller was recommended the item just viewed, "Because you viewed" it."""
    from rest_framework.authtoken.models import Token

    from tests.serving_world import ITEMS

    recorder_settings(RESPONSE_CACHE_SECONDS=0)
    phone = next(item for item, code in ITEMS.items() if code == "electronics.smartphone")
    user = factories.user("token-shopper")
    client = app_client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    answer = client.post(
        EVENTS,
        {"events": [{"event": "view", "item_id": phone, "client_event_id": uuid.uuid4().hex}]},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    listed = client.get("/api/v1/recommendations/for-you/", {"limit": 20}).json()["items"]
    assert listed and phone not in [item["item_id"] for item in listed]


def test_fresh_visitors_count_for_others_only_once_settled(recorder_settings):
    """The attack (finding 2) from many addresses: fresh visitors, each from its own network,
    made an item trend in a minute. A visitor counts for others once its first event is
    SETTLE_SECONDS old; a signed-in shopper at once; its own lists see it at once."""
    from recommendations.capture.ingress import track
    from recommendations.serving import popularity

    recorder_settings(VIGILANCE={"SETTLE_SECONDS": 3600})
    old_hand, pushed = factories.product(), factories.product()
    an_hour_ago = timezone.now() - timedelta(hours=2)
    factories.event("view", item_id="1", session_key="regular", timestamp=an_hour_ago)
    factories.event("view", item_id=str(old_hand.pk), session_key="regular")
    for n in range(30):
        factories.event("view", item_id=str(pushed.pk), session_key=f"fresh-{n}")
    assert {item for item, _, _ in popularity.trending().items} == {"1", str(old_hand.pk)}
    track(None, "view", pushed, user=factories.user("member"))
    popularity.clear()
    assert str(pushed.pk) in [item for item, _, _ in popularity.trending().items]


def test_the_fallback_list_is_filled_to_its_limit_past_the_category_cap(recorder_settings):
    """Finding 11: a list of 10 came back with 7 when trending's first items shared a category
    (the cap passed over them and the rest of the candidates were never read)."""
    from recommendations.serving import services

    recorder_settings(MAX_PER_CATEGORY=4, RESPONSE_CACHE_SECONDS=0)
    long_ago = timezone.now() - timedelta(days=60)
    for n in range(45):  # trending: one category only
        factories.event("view", item_id=str(factories.product().pk), session_key=f"now-{n}")
    others = [
        factories.category("furniture.living_room.sofa", "Sofa"),
        factories.category("appliances.kettle", "Kettle"),
    ]
    for n in range(8):  # popular of old, in two other categories
        item = str(factories.product(category=others[n % 2]).pk)
        factories.event("view", item_id=item, session_key=f"then-{n}", timestamp=long_ago)
    listed = services.for_you(None, 10)
    assert len(listed) == 10 and listed.source == "trending+popular"
