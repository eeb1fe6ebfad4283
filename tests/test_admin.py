"""The Event admin: read-only, filterable, searchable, and without a query per row."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model as django_user_model
from django.urls import reverse

from recommendations.models import Event
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(factories.user("staff", is_staff=True, is_superuser=True))
    return client


def make_events(n: int) -> None:
    User = django_user_model()
    shoppers = [User.objects.get_or_create(username=f"shopper{i}")[0] for i in range(3)]
    Event.objects.bulk_create(
        Event(
            event_type="view",
            item_id=str(i),
            user=shoppers[i % 3] if i % 2 else None,
            session_key=f"visitor{i}",
        )
        for i in range(n)
    )


def test_changelist_queries_do_not_grow_with_rows(staff_client, django_assert_max_num_queries):
    url = reverse("admin:recommendations_event_changelist")
    make_events(5)
    with django_assert_max_num_queries(12) as few:
        assert staff_client.get(url).status_code == 200
    make_events(45)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = staff_client.get(url)
    assert response.status_code == 200
    assert b"shopper1" in response.content


def test_filters_and_exact_searches(staff_client):
    factories.event("view", item_id="111", session_key="aaa")
    factories.event("search", item_id="", query="red shoes", session_key="bbb")
    url = reverse("admin:recommendations_event_changelist")
    assert staff_client.get(url, {"event_type__exact": "search"}).context["cl"].result_count == 1
    assert staff_client.get(url, {"q": "111"}).context["cl"].result_count == 1
    assert staff_client.get(url, {"q": "bbb"}).context["cl"].result_count == 1
    assert staff_client.get(url, {"q": "11"}).context["cl"].result_count == 0  # ids match exactly


def test_events_cannot_be_added_changed_or_deleted(staff_client):
    event = factories.event()
    assert staff_client.get(reverse("admin:recommendations_event_add")).status_code == 403
    detail = staff_client.get(reverse("admin:recommendations_event_change", args=[event.pk]))
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert (
        staff_client.post(reverse("admin:recommendations_event_delete", args=[event.pk])).status_code == 403
    )
    assert Event.objects.filter(pk=event.pk).exists()


def test_shoppers_cannot_open_the_admin(client):
    client.force_login(factories.user("shopper"))
    response = client.get(reverse("admin:recommendations_event_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
