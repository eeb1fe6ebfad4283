"""Model versions: train from stored events, promote only when better, lock, fail safely,
retrain through a real Celery worker, and the admin's retrain button."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from recommendations import artifacts
from recommendations.lifecycle import registry
from recommendations.models import Event, ModelVersion
from tests import factories
from tests.conftest import wait_for

pytest.importorskip("keras", reason="the ml extra is not installed")

Status = ModelVersion.Status
FAST_MODEL = {
    "epochs": 2,
    "scalar_epochs": 1,
    "embedding_dim": 16,
    "hidden_units": [32],
    "attention_units": 8,
    "batch_size": 64,
    "min_steps_per_epoch": 5,
    "n_neighbours": 10,
}


def planted_events(
    n_sessions: int = 120,
    n_items: int = 30,
    *,
    step: int = 1,
    start=None,
    minutes_apart: float = 30,
    prefix: str = "session",
    item_prefix: str = "",
) -> None:
    """Sessions where item i is followed by item i+step, spread over the last few days."""
    start = start or timezone.now() - timedelta(days=3)
    rows = []
    for s in range(n_sessions):
        first = s % (n_items - 4 * step) + 1
        for j in range(4):
            item = first + j * step
            rows.append(
                Event(
                    event_type="view",
                    item_id=f"{item_prefix}{item}",
                    session_key=f"{prefix}-{s}",
                    category_id=f"cat-{item % 3}",
                    timestamp=start + timedelta(minutes=minutes_apart * s + j),
                )
            )
    Event.objects.bulk_create(rows)


@pytest.fixture
def learning(settings, tmp_path, recorder_settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    recorder_settings(MODEL=FAST_MODEL, KEEP_VERSIONS=3, HOLDOUT_FRACTION=0.2)


@pytest.mark.django_db
def test_train_version_produces_an_active_version_with_files_and_metrics(learning):
    planted_events()
    version, created = registry.request_training()
    assert created and version.status == Status.TRAINING
    version = registry.train_version(version.pk)
    assert version.status == Status.ACTIVE, version.error
    assert version.running is None
    assert set(version.metrics["variants"]) == {"all", "new"}
    models = version.metrics["variants"]["all"]["models"]
    assert {"mlp_attention", "popular", "recent_popular", "session_recency", "item_knn", "ease"} <= set(
        models
    )
    assert version.metric("new:mrr@20") is not None
    assert len(version.history) >= 1 and "val_loss" in version.history[0]
    assert version.event_count == 480 and version.n_items == 29  # the shipped refit knows every item
    assert version.data_start < version.holdout_start < version.data_end
    bundle = artifacts.load_bundle(version.artifact_path, with_keras=True)
    assert bundle.vocabulary["preprocessor"]["item_ids"]
    assert bundle.weights["item_embedding"].shape == (version.n_items + 1, 16)
    assert {record["stage"] for record in version.metrics["stages"]} == {1, 2}
    assert bundle.keras_model is not None
    assert "Activated" in version.promotion_note
    assert not bundle.files  # 29 items: no item index


@pytest.mark.django_db
def test_a_catalogue_over_approximate_above_ships_its_item_index(learning, recorder_settings):
    pytest.importorskip("faiss", reason="the large extra is not installed")
    from recommendations.ml import item_index
    from recommendations.serving import loader

    planted_events()
    recorder_settings(APPROXIMATE_ABOVE=20)
    version = registry.train_version(registry.request_training()[0].pk)
    assert version.status == Status.ACTIVE, version.error
    bundle = artifacts.load_bundle(version.artifact_path)
    assert set(bundle.files) == {item_index.FILE}
    loader.reset()
    served = loader.active_model()
    assert served.version_id == version.pk and served.tower.index.index.ntotal == version.n_items


@pytest.mark.django_db
def test_the_holdout_is_scored_on_a_bounded_sample_of_shoppers(learning, recorder_settings):
    """A big log's evaluation costs what a small one's does: at most HOLDOUT_MAX_SHOPPERS."""
    planted_events()
    recorder_settings(MODEL=FAST_MODEL, HOLDOUT_FRACTION=0.2, HOLDOUT_MAX_SHOPPERS=3)
    version = registry.train_version(registry.request_training()[0].pk)
    assert version.status == Status.ACTIVE, version.error
    assert 1 <= version.metrics["n_sessions"] <= 3


def later_events(**kwargs) -> None:
    """More sessions in the last 12 hours: the next holdout, after what the active version saw."""
    planted_events(start=timezone.now() - timedelta(hours=12), minutes_apart=5, prefix="later", **kwargs)


@pytest.mark.django_db
def test_a_worse_version_stays_ready_and_says_why_on_the_same_cases(learning):
    planted_events()
    first = registry.train_version(registry.request_training()[0].pk)
    assert first.status == Status.ACTIVE
    later_events()
    # No training at all (no stages, no priors): popularity only, worse on the same cases.
    crippled = {**FAST_MODEL, "epochs": 0, "scalar_epochs": 0, "n_neighbours": 0, "repeat": False}
    second = registry.train_version(registry.request_training(params=crippled)[0].pk)
    assert second.status == Status.READY, second.promotion_note
    found = second.comparison("new:mrr@20")
    assert found["version"] == first.pk and found["n_cases"] >= 30
    assert found["candidate"] < found["active"]
    assert "Kept ready" in second.promotion_note and f"v{first.pk}" in second.promotion_note
    assert f"same {found['n_cases']} holdout cases" in second.promotion_note
    assert registry.active_version().pk == first.pk
    registry.activate(second)  # a manual activation (or rollback) still works
    assert registry.active_version().pk == second.pk
    first.refresh_from_db()
    assert first.status == Status.RETIRED
    registry.activate(first)  # roll back
    assert registry.active_version().pk == first.pk


@pytest.mark.django_db
def test_promotion_scores_both_versions_on_the_same_holdout_cases(learning):
    """A better candidate is promoted even when the active version's old figure was higher."""
    planted_events(step=2)  # the old shop: item i is followed by item i+2
    first = registry.train_version(registry.request_training()[0].pk)
    assert first.status == Status.ACTIVE
    # Its own (easier, older) holdout said 2.0: a comparison of figures would keep it forever.
    ModelVersion.objects.filter(pk=first.pk).update(
        metrics={**first.metrics, "variants": {"new": {"models": {"mlp_attention": {"mrr@20": 2.0}}}}}
    )
    later_events(n_sessions=240)  # the shop now: i is followed by i+1
    second = registry.train_version(registry.request_training()[0].pk)
    found = second.comparison("new:mrr@20")
    assert found["version"] == first.pk and found["n_cases"] >= 30
    assert found["candidate"] > found["active"]
    assert second.status == Status.ACTIVE, second.promotion_note
    assert f"same {found['n_cases']} holdout cases" in second.promotion_note
    # The first version was never judged on events it was fitted on.
    assert second.metrics["reference"]["after"] == pytest.approx(
        timezone.datetime.fromisoformat(first.metrics["fitted_through"]).timestamp()
    )


@pytest.mark.django_db
def test_retraining_on_the_same_events_keeps_the_active_version_and_says_why(learning):
    planted_events()
    first = registry.train_version(registry.request_training()[0].pk)
    second = registry.train_version(registry.request_training()[0].pk)
    assert second.status == Status.READY
    assert "only 0 new holdout cases come after the events" in second.promotion_note
    assert registry.active_version().pk == first.pk


@pytest.mark.django_db
def test_the_shipped_model_knows_an_item_that_first_appears_in_the_holdout(learning):
    from recommendations.serving import loader

    planted_events()
    later_events(n_sessions=12, item_prefix="new-")  # items new-1 ... exist only in the holdout
    version = registry.train_version(registry.request_training()[0].pk)
    assert version.status == Status.ACTIVE, version.error
    assert version.metrics["refit"] and version.metrics["fitted_through"]
    model = loader.load_version(version)
    assert "new-1" in model.index_of and "1" in model.index_of
    assert version.n_items == model.n_items
    # The evaluated fit never saw them: the holdout is still later data for its figures.
    assert version.history[-1]["refit"] and not version.history[0].get("refit")


@pytest.mark.django_db
def test_the_refit_reads_the_same_events_again_not_those_stored_while_it_trained(learning, monkeypatch):
    """The raw events are not held while the models fit (at 10M events, 2 GB of text): the
    refit reads them again, bounded by the last event of the first read, so an event stored
    during the evaluation (here, a new item's) is not in the version that ships."""
    from recommendations.ml import evaluation
    from recommendations.serving import loader

    planted_events()
    evaluate_prepared = evaluation.evaluate_prepared

    def evaluate_while_shoppers_browse(*args, **kwargs):
        factories.event(item_id="arrived-during-training", session_key="late")
        return evaluate_prepared(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_prepared", evaluate_while_shoppers_browse)
    version = registry.train_version(registry.request_training()[0].pk)
    assert version.status == Status.ACTIVE, version.error
    assert Event.objects.filter(item_id="arrived-during-training").exists()
    model = loader.load_version(version)
    assert "arrived-during-training" not in model.index_of and "1" in model.index_of
    assert version.event_count == 480 and version.n_items == 29


@pytest.mark.django_db
def test_products_nobody_has_seen_yet_reach_the_model_and_its_cold_figures(learning):
    from recommendations.serving import loader

    electronics = factories.category("electronics.smartphone")
    for item in range(1, 30):  # the planted items are products of the shop...
        factories.product(id=item, category=electronics, name=f"Phone {item}")
    factories.product(id=900, category=electronics, name="Brand-new phone")  # ...and one nobody saw
    factories.product(id=901, category=electronics, name="Sold out", stock=0)  # not on sale: left out
    planted_events()
    version = registry.train_version(registry.request_training()[0].pk)
    assert version.status == Status.ACTIVE, version.error
    model = loader.load_version(version)
    assert "900" in model.index_of and "901" not in model.index_of
    category = model.item_features.category[model.index_of["900"]]
    assert model.category_list[category] == "electronics.smartphone"
    assert "cold" in version.metrics["variants"]  # the holdout is scored with the catalogue
    assert {"cold_price", "category_popular"} <= set(version.metrics["variants"]["cold"]["models"])


@pytest.mark.django_db
def test_a_rejected_stage_is_logged_recorded_and_shown(learning, admin_client, caplog):
    planted_events()
    # A learning rate this large makes stage 2 (embeddings and MLP) worse on validation.
    params = {**FAST_MODEL, "learning_rate": 5.0, "epochs": 2, "scalar_epochs": 2}
    with caplog.at_level("WARNING", logger="recommendations.ml.training"):
        version = registry.train_version(registry.request_training(params=params)[0].pk)
    assert version.status == Status.ACTIVE, version.error
    stages = {record["stage"]: record for record in version.metrics["stages"]}
    assert stages[1]["kept"] and not stages[2]["kept"], stages
    assert version.metrics["learned_mlp"] is False
    assert "Stage 2 (embeddings and MLP) rejected" in caplog.text
    # The refit that ships repeats the choice: no stage-2 epochs.
    assert all(row["stage"] == 1 for row in version.history if row.get("refit"))
    page = admin_client.get(reverse("admin:recommendations_modelversion_change", args=[version.pk]))
    assert b"rejected: it did not improve validation loss" in page.content
    assert b"MLP and embeddings are untrained" in page.content
    assert b"best; rejected" in page.content  # marked on the loss chart


@pytest.mark.django_db
def test_a_failing_training_leaves_the_active_version_serving(learning, monkeypatch):
    planted_events()
    active = registry.train_version(registry.request_training()[0].pk)
    assert active.status == Status.ACTIVE

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("recommendations.artifacts.save_bundle", broken)
    failed = registry.train_version(registry.request_training()[0].pk)
    assert failed.status == Status.FAILED and "disk full" in failed.error
    assert failed.running is None  # the lock is released
    assert registry.active_version().pk == active.pk


@pytest.mark.django_db
def test_too_few_events_fail_with_a_clear_message(learning):
    factories.event()
    version = registry.train_version(registry.request_training()[0].pk)
    assert version.status == Status.FAILED and "only 1 events" in version.error


@pytest.mark.django_db
def test_two_requests_train_once_and_a_stale_lock_is_released(learning, recorder_settings):
    first, created = registry.request_training()
    again, created_again = registry.request_training()
    assert created and not created_again and again.pk == first.pk
    assert ModelVersion.objects.count() == 1
    recorder_settings(TRAINING_TIMEOUT=60)
    ModelVersion.objects.filter(pk=first.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    fresh, created = registry.request_training()
    assert created and fresh.pk != first.pk
    first.refresh_from_db()
    assert first.status == Status.FAILED and "No sign of life" in first.error


@pytest.mark.django_db
def test_training_the_same_version_twice_is_harmless(learning):
    planted_events()
    version = registry.train_version(registry.request_training()[0].pk)
    again = registry.train_version(version.pk)
    assert again.status == version.status and again.artifact_path == version.artifact_path


@pytest.mark.django_db
def test_old_versions_are_deleted_with_their_files(learning):
    storage = artifacts.get_storage()
    folders = []
    for i in range(5):
        version = ModelVersion.objects.create(status=Status.READY, running=None)
        folder, _ = artifacts.save_bundle(
            version.pk, artifacts.Bundle(weights={"w": __import__("numpy").ones(2)}, vocabulary={"i": i})
        )
        ModelVersion.objects.filter(pk=version.pk).update(artifact_path=folder)
        folders.append(folder)
    assert registry.delete_old_versions() == 2
    assert ModelVersion.objects.count() == 3
    assert not storage.exists(f"{folders[0]}/manifest.json")
    assert storage.exists(f"{folders[-1]}/manifest.json")


@pytest.mark.django_db
def test_corrupt_or_incomplete_files_are_refused(learning):
    import numpy as np

    storage = artifacts.get_storage()
    folder, _ = artifacts.save_bundle(1, artifacts.Bundle(weights={"w": np.ones(3)}, vocabulary={"a": 1}))
    assert artifacts.load_bundle(folder).vocabulary == {"a": 1}
    storage.delete(f"{folder}/vocabulary.json")
    storage.save(
        f"{folder}/vocabulary.json",
        __import__("django.core.files.base", fromlist=["ContentFile"]).ContentFile(b'{"a": 2}'),
    )
    with pytest.raises(artifacts.ArtifactError, match="checksum"):
        artifacts.load_bundle(folder)
    storage.delete(f"{folder}/manifest.json")
    with pytest.raises(artifacts.ArtifactError, match="manifest"):
        artifacts.load_bundle(folder)


@pytest.mark.django_db
def test_train_command(learning, capsys):
    from django.core.management import CommandError, call_command

    planted_events()
    call_command("recommendations_train", "--epochs", "1")
    captured = capsys.readouterr()
    out = captured.out
    assert "Training version" in out and "is active" in out
    # One line per epoch, naming its stage, and the refit that ships announced as such.
    epochs = [line for line in out.splitlines() if re.search(r"epoch \d+: loss", line)]
    assert epochs and all(line.strip().startswith("stage ") for line in epochs)
    assert len(epochs) == len(set(epochs)) and "epoch" not in captured.err
    assert "Refitting on every event" in out and "this is the fit that ships" in out
    with pytest.raises(CommandError, match="at least 1"):
        call_command("recommendations_train", "--epochs", "0")
    call_command("recommendations_train", "--if-none-active")
    assert "nothing to do" in capsys.readouterr().out
    assert ModelVersion.objects.count() == 1


# --- Celery and the admin -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_retrain_through_a_real_celery_worker(celery_worker, learning, recorder_settings):
    """The admin's button queues the task; a real worker on Redis trains and activates."""
    recorder_settings(CELERY_QUEUE=celery_worker["queue"])
    planted_events()
    staff = factories.user("boss", is_staff=True, is_superuser=True)
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    page = client.get(reverse("admin:recommendations_modelversion_changelist"))
    token = page.context["csrf_token"]
    response = client.post(
        reverse("admin:recommendations_modelversion_retrain"), {"csrfmiddlewaretoken": str(token)}
    )
    assert response.status_code == 302
    version = ModelVersion.objects.get()
    done = wait_for(
        lambda: ModelVersion.objects.filter(pk=version.pk, running=None).exists(), timeout=240, interval=1
    )
    version.refresh_from_db()
    assert done, version.progress
    assert version.status == Status.ACTIVE, version.error


@pytest.mark.django_db
def test_retrain_button_needs_staff_and_csrf(client, django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    monkeypatch.setattr("recommendations.tasks.send", lambda task, pk: queued.append(pk))
    url = reverse("admin:recommendations_modelversion_retrain")

    client.force_login(factories.user("shopper"))
    assert client.post(url).status_code == 302 and not ModelVersion.objects.exists()  # to the admin login

    staff = factories.user("staff", is_staff=True, is_superuser=True)
    csrf_client = __import__("django.test", fromlist=["Client"]).Client(enforce_csrf_checks=True)
    csrf_client.force_login(staff)
    assert csrf_client.post(url).status_code == 403  # no CSRF token
    assert csrf_client.get(url).status_code == 405  # POST only
    assert not ModelVersion.objects.exists()

    client.force_login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, follow=True)
    version = ModelVersion.objects.get()
    assert queued == [version.pk]
    assert b"was queued" in response.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, follow=True)
    assert b"already training" in response.content and ModelVersion.objects.count() == 1


@pytest.mark.django_db
def test_version_page_shows_charts_and_activate_action(learning, admin_client):
    planted_events()
    version = registry.train_version(registry.request_training()[0].pk)
    page = admin_client.get(reverse("admin:recommendations_modelversion_change", args=[version.pk]))
    assert page.status_code == 200
    assert (
        b"<svg" in page.content and b"Loss per epoch" in page.content and b"Holdout metrics" in page.content
    )
    listing = admin_client.get(reverse("admin:recommendations_modelversion_changelist"))
    assert b"Retrain now" in listing.content and b"new:mrr@20" in listing.content
