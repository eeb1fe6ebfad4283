"""Recorders against the real services: bulk writes to the database, a real Celery worker on
Redis, and a dead broker that must not lose an event."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from recommendations.capture.ingress import build_record
from recommendations.capture.recorders import DatabaseRecorder, get_recorder
from recommendations.capture.store import write_events
from recommendations.models import Event
from recommendations.records import EventRecord
from tests import factories
from tests.conftest import wait_for

CELERY_RECORDER = "recommendations.capture.recorders.CeleryRecorder"


def records(n: int, **fields) -> list[EventRecord]:
    return [build_record("view", item=str(i), session_key="s1", **fields) for i in range(n)]


@pytest.mark.django_db
def test_database_recorder_writes_in_bulk_and_skips_known_ids(django_assert_max_num_queries):
    from django.db import connection

    batch = records(2500)
    rows_per_insert = min(1000, connection.ops.bulk_batch_size([f.name for f in Event._meta.fields], batch))
    inserts = -(-len(batch) // rows_per_insert)  # 3 on PostgreSQL; SQLite caps the parameters per query
    with django_assert_max_num_queries(
        inserts + 4
    ):  # + visitor locks, link lookup, BEGIN/COMMIT; none per row
        DatabaseRecorder().record(batch)
    DatabaseRecorder().record(batch[:10])  # a retried batch adds nothing
    assert Event.objects.count() == 2500


def test_event_record_round_trips_through_json():
    record = build_record(
        "purchase",
        item="5",
        user_id=3,
        price="9.90",
        quantity=2,
        timestamp=datetime(2024, 5, 1, 12, tzinfo=UTC),
    )
    assert EventRecord.from_json(record.to_json()) == record


def test_event_record_rejects_a_bad_timestamp():
    data = build_record("view", item="5").to_json() | {"timestamp": "yesterday"}
    with pytest.raises(ValueError, match="bad timestamp"):
        EventRecord.from_json(data)


@pytest.mark.django_db(transaction=True)
def test_celery_recorder_goes_through_a_real_worker(celery_worker, browser, recorder_settings):
    recorder_settings(RECORDER=CELERY_RECORDER, CELERY_QUEUE=celery_worker["queue"])
    assert type(get_recorder()).__name__ == "CeleryRecorder"
    product = factories.product()
    user = factories.user("celery-shopper", "pw-celery-123")
    browser.get(reverse("shop:product", kwargs={"pk": product.pk}))
    # A real login (force_login's request carries no cookies, so no visitor id to merge).
    browser.post(reverse("login"), {"username": "celery-shopper", "password": "pw-celery-123"})
    browser.post(reverse("shop:cart_add", kwargs={"pk": product.pk}), {"quantity": 1})
    browser.post(reverse("shop:checkout"), {"email": "a@example.com"})
    stored = wait_for(lambda: Event.objects.count() >= 3 and list(Event.objects.order_by("timestamp", "id")))
    # The anonymous view was merged into the account at login, whenever the worker wrote it.
    assert [(e.event_type, e.item_id, e.user_id) for e in stored] == [
        ("view", str(product.pk), user.pk),
        ("cart", str(product.pk), user.pk),
        ("purchase", str(product.pk), user.pk),
    ]


@pytest.mark.django_db(transaction=True)
def test_celery_task_is_idempotent(celery_worker, recorder_settings):
    recorder_settings(RECORDER=CELERY_RECORDER, CELERY_QUEUE=celery_worker["queue"])
    batch = records(50)
    get_recorder().record(batch)
    get_recorder().record(batch)  # delivered twice, as acks_late may do
    get_recorder().record(records(1, query=""))
    assert wait_for(lambda: Event.objects.count() == 51)
    assert Event.objects.count() == 51


@pytest.fixture
def dead_broker():
    """Point the Celery app at a port where nothing listens, then back at Redis."""
    from config.celery import app

    def reset_pools():
        app._pool = None
        app.amqp._producer_pool = None

    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    reset_pools()
    yield app
    app.conf.broker_url = original
    reset_pools()


@pytest.mark.django_db(transaction=True)
def test_unreachable_broker_writes_events_to_the_database(dead_broker, browser, recorder_settings, caplog):
    recorder_settings(RECORDER=CELERY_RECORDER)
    product = factories.product()
    with caplog.at_level(logging.WARNING, logger="recommendations"):
        response = browser.get(reverse("shop:product", kwargs={"pk": product.pk}))
        browser.post(reverse("shop:cart_add", kwargs={"pk": product.pk}), {"quantity": 1})
    assert response.status_code == 200
    assert sorted(Event.objects.values_list("event_type", flat=True)) == ["cart", "view"]
    assert "Event broker unreachable" in caplog.text


@pytest.mark.django_db
def test_celery_recorder_waits_for_the_transaction(recorder_settings, monkeypatch):
    """Events are sent only once the transaction that produced them commits."""
    from django.db import transaction

    recorder_settings(RECORDER=CELERY_RECORDER)
    sent = []
    monkeypatch.setattr(type(get_recorder()), "write", lambda self, recs: sent.append(len(recs)))
    with transaction.atomic():
        get_recorder().record(records(3))
        assert sent == []
    # pytest-django wraps the test in a transaction too: run what was deferred.
    from django.db import connection

    for _, callback, _ in connection.run_on_commit:
        callback()
    assert sent == [3]


@pytest.mark.django_db
def test_write_events_returns_the_number_handed_over():
    assert write_events([]) == 0
    assert write_events(records(3)) == 3


# --- Batching across requests ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_batcher_writes_many_requests_in_few_inserts(recorder_settings, browser):
    recorder_settings(FLUSH_INTERVAL=30, FLUSH_SIZE=1000)  # only an explicit flush writes
    recorder = get_recorder()
    product = factories.product()
    for _ in range(5):
        browser.get(reverse("shop:product", kwargs={"pk": product.pk}))
    assert Event.objects.count() == 0 and len(recorder.batcher.pending) == 5
    recorder.batcher.flush()
    assert Event.objects.count() == 5


@pytest.mark.django_db(transaction=True)
def test_batcher_thread_flushes_by_itself(recorder_settings):
    recorder_settings(FLUSH_INTERVAL=0.05)
    get_recorder().record(records(3))
    assert wait_for(lambda: Event.objects.count() == 3, timeout=10)


@pytest.mark.django_db(transaction=True)
def test_batcher_keeps_events_when_a_write_fails_and_retries(recorder_settings, monkeypatch):
    recorder_settings(FLUSH_INTERVAL=30)
    recorder = get_recorder()
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise ConnectionError("database restarting")
        write_events(batch)

    monkeypatch.setattr(recorder.batcher, "sink", flaky)
    recorder.record(records(4))
    recorder.batcher.flush()
    assert Event.objects.count() == 0 and len(recorder.batcher.pending) == 4  # kept
    recorder.batcher.flush()
    assert Event.objects.count() == 4 and calls == [4, 4]


def test_batcher_bounds_what_it_holds_and_counts_the_rest(caplog):
    from recommendations.capture.recorders import Batcher
    from recommendations.capture.store import dropped_events, reset_dropped_events

    reset_dropped_events()
    batcher = Batcher(lambda batch: None, interval=30, size=10, max_pending=5)
    batcher.add(records(8))
    assert len(batcher.pending) == 5 and batcher.dropped == 3
    assert "Dropped 3 events: the event buffer" in caplog.text
    batcher.add(records(1))
    assert dropped_events()["count"] == 4 and "buffer" in dropped_events()["reason"]
    reset_dropped_events()


@pytest.mark.django_db
def test_a_worker_retries_while_the_database_is_away_and_counts_a_batch_it_gives_up(
    recorder_settings, monkeypatch, caplog, admin_client
):
    """The task retries connection errors (with backoff in a real worker; at once when eager),
    then counts the batch as dropped, and the event admin says so."""
    from django.db import OperationalError

    from recommendations.capture import tasks
    from recommendations.capture.store import dropped_events, reset_dropped_events

    reset_dropped_events()
    recorder_settings(EVENT_WRITE_RETRIES=2)
    attempts = []

    def unreachable(batch):
        attempts.append(len(batch))
        raise OperationalError("connection refused")

    monkeypatch.setattr(tasks, "store_events", unreachable)
    payload = [record.to_json() for record in records(3)]
    result = tasks.record_events.apply(args=[payload])
    assert result.failed() and attempts == [3, 3, 3]  # the first try and two retries
    assert "retry 2 of 2" in caplog.text
    assert dropped_events()["count"] == 3 and "OperationalError" in dropped_events()["reason"]
    page = admin_client.get(reverse("admin:recommendations_event_changelist"))
    assert b"3 events could not be stored and were dropped" in page.content

    # Back again before the retries run out: stored, nothing more dropped.
    monkeypatch.setattr(tasks, "store_events", lambda batch: attempts.append(0) or write_events(batch))
    assert tasks.record_events.apply(args=[payload]).successful()
    assert Event.objects.count() == 3 and dropped_events()["count"] == 3
    reset_dropped_events()
    assert (
        b"could not be stored"
        not in admin_client.get(reverse("admin:recommendations_event_changelist")).content
    )
