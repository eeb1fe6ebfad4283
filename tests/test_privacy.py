"""Privacy: erasure on request (command and admin action), retention, no IP addresses stored,
no shopper ids in model files, and rate limits on the endpoints clients call in bursts."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from recommendations.capture.privacy import forget_user, purge_expired_events
from recommendations.identity import Shopper
from recommendations.models import Event, VisitorLink
from recommendations.serving.history import OVERLAY_PREFIX, recent_events
from tests import factories
from tests.conftest import app_client, device_id


def shop_as(browser, user, products):
    """Browse anonymously, sign in (the visit is linked), browse more."""
    browser.get(reverse("shop:product", kwargs={"pk": products[0].pk}))
    browser.post(reverse("login"), {"username": user.username, "password": "pw-erin-123"})
    browser.get(reverse("shop:product", kwargs={"pk": products[1].pk}))


@pytest.mark.django_db
def test_forget_user_erases_events_links_and_cached_history(browser):
    erin, other = factories.user("erin", "pw-erin-123"), factories.user("otto", "pw-otto-123")
    products = [factories.product() for _ in range(2)]
    shop_as(browser, erin, products)
    factories.event("view", item_id="9", user=other)
    visitor = VisitorLink.objects.get(user=erin).session_key
    assert recent_events(Shopper(user_id=erin.pk)) and cache.get(OVERLAY_PREFIX + f"u:{erin.pk}")

    call_command("recommendations_forget_user", "erin")

    assert not Event.objects.filter(user=erin).exists()
    assert not Event.objects.filter(session_key=visitor).exists()
    assert not VisitorLink.objects.filter(user=erin).exists()
    assert cache.get(OVERLAY_PREFIX + f"u:{erin.pk}") is None
    assert recent_events(Shopper(user_id=erin.pk)) == []
    assert Event.objects.filter(user=other).count() == 1  # nobody else's data
    with pytest.raises(CommandError, match="No user"):
        call_command("recommendations_forget_user", "nobody")


@pytest.mark.django_db
def test_forgotten_users_get_no_personal_api_lists_from_the_cache():
    user = factories.user("fay", "pw-fay-123")
    client = app_client()
    client.force_authenticate(user)
    factories.product(id=41)
    batch = {"events": [{"event": "view", "item_id": "41", "client_event_id": uuid.uuid4().hex}]}
    assert client.post("/api/v1/events/", batch, format="json").status_code == 202
    assert client.get("/api/v1/recommendations/recently-viewed/").json()["items"]
    forget_user(user)
    assert client.get("/api/v1/recommendations/recently-viewed/").json()["items"] == []


@pytest.mark.django_db
def test_the_admin_action_needs_delete_permission_and_erases(browser, admin_client, client):
    erin = factories.user("erin", "pw-erin-123")
    products = [factories.product() for _ in range(2)]
    shop_as(browser, erin, products)
    anonymous = factories.event("view", item_id="5", session_key="someone-else")
    url = reverse("admin:recommendations_event_changelist")
    ids = list(Event.objects.values_list("pk", flat=True))

    viewer = factories.user("viewer", "pw-viewer-123", is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_event"))
    client.force_login(viewer)
    response = client.post(url, {"action": "forget_shoppers", "_selected_action": ids})
    assert Event.objects.count() == len(ids)  # mere viewers cannot erase
    assert "forget_shoppers" not in client.get(url).content.decode()

    admin_client.post(url, {"action": "forget_shoppers", "_selected_action": ids})
    assert not Event.objects.exists()
    assert not Event.objects.filter(pk=anonymous.pk).exists()
    assert response.status_code in (200, 302)


@pytest.mark.django_db
def test_retention_deletes_only_old_events(recorder_settings):
    now = timezone.now()
    old = factories.event("view", timestamp=now - timedelta(days=40))
    recent = factories.event("view", timestamp=now - timedelta(days=5))
    assert purge_expired_events() == 0  # RETENTION_DAYS None: keep everything
    recorder_settings(RETENTION_DAYS=30)
    assert purge_expired_events() == 1
    assert list(Event.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not Event.objects.filter(pk=old.pk).exists()


@pytest.mark.django_db
def test_retention_deletes_in_batches_until_none_is_left(recorder_settings, django_assert_max_num_queries):
    now = timezone.now()
    for days in range(31, 38):
        factories.event("view", timestamp=now - timedelta(days=days))
    recent = factories.event("view", timestamp=now - timedelta(days=5))
    recorder_settings(RETENTION_DAYS=30)
    # 3 + 3 + 1 events: each window is a look-up of where it ends and one DELETE.
    with django_assert_max_num_queries(6) as queries:
        assert purge_expired_events(batch_size=3) == 7
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3 and all("IN (SELECT" not in sql for sql in deletes)
    assert list(Event.objects.values_list("pk", flat=True)) == [recent.pk]


@pytest.mark.django_db
def test_retention_deletes_more_events_at_one_instant_than_a_batch(recorder_settings):
    now = timezone.now()
    imported = now - timedelta(days=40)  # an import stamped every row with one time
    for _ in range(5):
        factories.event("view", timestamp=imported)
    factories.event("view", timestamp=imported - timedelta(seconds=1))
    factories.event("view", timestamp=imported + timedelta(seconds=1))
    recent = factories.event("view", timestamp=now - timedelta(days=5))
    recorder_settings(RETENTION_DAYS=30)
    assert purge_expired_events(batch_size=2) == 7
    assert list(Event.objects.values_list("pk", flat=True)) == [recent.pk]


@pytest.mark.django_db
def test_no_ip_address_is_stored(browser):
    product = factories.product()
    browser.get(reverse("shop:product", kwargs={"pk": product.pk}), REMOTE_ADDR="203.0.113.77")
    app_client(REMOTE_ADDR="203.0.113.77").post(
        "/api/v1/events/",
        {"events": [{"event": "view", "item_id": str(product.pk), "client_event_id": uuid.uuid4().hex}]},
        format="json",
        HTTP_X_DEVICE_ID=device_id("abcdef12"),
    )
    stored = json.dumps(list(Event.objects.values()), default=str)
    assert Event.objects.count() == 2 and "203.0.113.77" not in stored
    assert not any("ip" in field.name.split("_") for field in Event._meta.fields)


@pytest.mark.django_db
def test_model_files_hold_no_shopper_ids(served_model):
    from recommendations import artifacts
    from tests.serving_world import session_rows

    storage = artifacts.get_storage()
    names = storage.listdir(served_model.artifact_path)[1]
    content = b"".join(storage.open(f"{served_model.artifact_path}/{name}").read() for name in names)
    visits = {row["session"] for row in session_rows()}
    assert not any(visit.encode() in content for visit in visits)


@pytest.mark.django_db
def test_event_batches_and_suggestions_are_rate_limited(recorder_settings):
    recorder_settings(API_THROTTLE_RATES={"events": "3/minute", "suggest": "2/minute"})
    client = app_client(HTTP_X_DEVICE_ID=device_id("ratelimit"))
    answers = [
        client.post(
            "/api/v1/events/",
            {"events": [{"event": "search", "query": "x", "client_event_id": uuid.uuid4().hex}]},
            format="json",
        ).status_code
        for _ in range(4)
    ]
    assert answers == [202, 202, 202, 429]
    other_device = app_client(HTTP_X_DEVICE_ID=device_id("another1"))
    assert (
        other_device.post("/api/v1/events/", {"events": []}, format="json").status_code == 400
    )  # counted apart
    suggest = [client.get("/api/search/suggest/", {"q": "ab"}) for _ in range(3)]
    assert [r.status_code for r in suggest] == [200, 200, 429]
    assert "throttled" in suggest[-1].json()["detail"] and suggest[-1]["Retry-After"]
