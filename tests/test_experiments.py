"""A/B tests: sticky arms, arms on every impression and click, outcomes, stopping rules, admin."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from recommendations.identity import Shopper
from recommendations.lifecycle import experiments, outcomes
from recommendations.models import Arm, Event, Experiment, ExperimentResult, ModelVersion
from recommendations.serving import experiments as arms_of
from recommendations.serving import exploration, services
from recommendations.serving.rules import Recommendation
from tests import factories
from tests.conftest import BROWSER_UA, app_client

FOR_YOU = reverse("recommendations-api:for-you")


@pytest.fixture
def shop(catalogue):
    """The serving world's products and browsing history: trending fills every list."""
    from tests.serving_world import store_history

    store_history()
    return catalogue


def experiment(*arms, scenarios=("for_you",), start=True, **fields) -> Experiment:
    """An experiment with arms given as (name, share, strategy[, version]); the first is the control."""
    made = Experiment.objects.create(
        name=fields.pop("name", f"test {uuid.uuid4().hex[:6]}"), scenarios=list(scenarios), **fields
    )
    for index, (name, share, strategy, *version) in enumerate(
        arms or (("A", 50, "active"), ("B", 50, "fallbacks"))
    ):
        Arm.objects.create(
            experiment=made,
            name=name,
            share=share,
            strategy=strategy,
            is_control=index == 0,
            model_version=version[0] if version else None,
        )
    if not start:
        return made
    experiments.start(made)
    # Started a day ago: the events the tests log (two hours ago, by default) fall inside it.
    Experiment.objects.filter(pk=made.pk).update(started_at=timezone.now() - timedelta(days=1))
    made.refresh_from_db()
    return made


def impressions(**filters):
    return Event.objects.filter(event_type="impression", **filters).order_by("id")


def test_traffic_shares_hold_on_ten_thousand_shoppers(db):
    plan = arms_of.load_plans()  # none running
    assert plan == []
    running = experiment(("A", 20, "active"), ("B", 30, "fallbacks"), ("C", 50, "fallbacks"))
    (found,) = arms_of.load_plans()
    assert found.id == running.pk
    counts = {"A": 0, "B": 0, "C": 0}
    for _ in range(10_000):
        counts[found.arm_for(f"s:{uuid.uuid4().hex}").name] += 1
    # Within four standard deviations of each share (binomial: sqrt(p (1 - p) / n)).
    for name, share in (("A", 0.2), ("B", 0.3), ("C", 0.5)):
        assert abs(counts[name] / 10_000 - share) < 4 * (share * (1 - share) / 10_000) ** 0.5, counts


def test_a_shopper_keeps_their_arm_across_pages_the_api_and_login(shop, browser):
    running = experiment()
    user = factories.user("dora", "pw-dora-123")
    browser.get(reverse("shop:product", kwargs={"pk": 5001}))
    browser.get(reverse("shop:home"))
    browser.get(reverse("shop:home"))
    web = {e.arm for e in impressions(scenario="for_you")}
    assert len(web) == 1 and web <= {"A", "B"}
    (arm,) = web
    # The same browser calling the API (session cookie) gets the same arm, and says so.
    assert browser.get(FOR_YOU).json()["arm"] == arm
    assert browser.post(reverse("login"), {"username": "dora", "password": "pw-dora-123"}).status_code == 302
    browser.get(reverse("shop:home"))
    assert impressions(scenario="for_you").last().user_id == user.pk
    assert impressions(scenario="for_you").last().arm == arm
    # The app, signed in with a token: the same arm again.
    app = app_client()
    app.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    body = app.get(FOR_YOU).json()
    assert (body["experiment_id"], body["arm"]) == (running.pk, arm)
    # Many visitors: both arms are used (the hash is not constant).
    seen = set()
    for _ in range(40):
        other = Client(HTTP_USER_AGENT=BROWSER_UA)
        other.get(reverse("shop:product", kwargs={"pk": 5002}))
        seen.add(other.get(FOR_YOU).json()["arm"])
    assert seen == {"A", "B"}


def test_impressions_and_clicks_carry_the_arm_the_list_and_the_place(shop, browser):
    running = experiment()
    browser.get(reverse("shop:product", kwargs={"pk": 5001}))
    page = browser.get(reverse("shop:home")).content.decode()
    shown = impressions(scenario="for_you").last()
    assert shown.experiment_id == running.pk and shown.arm in ("A", "B") and len(shown.list_id) >= 8
    assert shown.shown["p"] == [1.0] * len(shown.shown["items"])  # no exploration configured
    links = [part.split('"')[0] for part in page.split('href="/recommendations/click/')[1:]]
    assert links, "the home page shows a for-you carousel"
    browser.get("/recommendations/click/" + links[1])
    click = Event.objects.get(event_type="click")
    assert (click.experiment_id, click.arm, click.list_id, click.position) == (
        running.pk,
        shown.arm,
        shown.list_id,
        1,
    )
    assert click.item_id == shown.shown["items"][1]


def test_a_stopped_experiment_serves_the_control_to_everyone(shop, browser):
    running = experiment(("A", 50, "active"), ("B", 50, "fallbacks"))
    shopper = Shopper(visitor="v" * 32)
    assert services.for_you(shopper).experiment_id == running.pk
    experiments.stop(running)
    arms_of.reset()
    served = services.for_you(shopper)
    assert (served.experiment_id, served.arm) == (None, "")
    with pytest.raises(experiments.ExperimentError):
        experiments.stop(running)


def test_an_arm_serves_its_own_version(served_model, browser):
    other = ModelVersion.objects.create(
        status=ModelVersion.Status.READY,
        running=None,
        artifact_path=served_model.artifact_path,
        artifact_size=served_model.artifact_size,
    )
    experiment(("A", 50, "fallbacks"), ("B", 50, "version", other))
    found = {}
    for index in range(30):
        shopper = Shopper(visitor=f"{index:032x}")
        factories.event("view", session_key=shopper.visitor, item_id="5001")
        result = services.for_you(shopper)
        found[result.arm] = result.model_version
    assert found == {"A": None, "B": other.pk}  # fallbacks make no model list


def test_starting_checks_what_would_make_the_result_meaningless(db):
    lopsided = experiment(("A", 50, "active"), ("B", 40, "fallbacks"), start=False)
    with pytest.raises(experiments.ExperimentError, match="add up to 90"):
        experiments.start(lopsided)
    versionless = experiment(("A", 50, "active"), ("B", 50, "version"), start=False)
    with pytest.raises(experiments.ExperimentError, match="names none"):
        experiments.start(versionless)
    experiment()
    clash = experiment(start=False)
    with pytest.raises(experiments.ExperimentError, match="already runs on for_you"):
        experiments.start(clash)
    wrong = experiment(scenarios=("trending",), start=False)
    assert any("for_you, similar" in p for p in experiments.problems(wrong))


def log(running, arm, shopper, *, clicks=(), at=None, items=("5001", "5002", "5003")):
    """One shown list of ``arm`` to ``shopper`` (a visitor id), and clicks on places."""
    at = at or timezone.now() - timedelta(hours=2)
    list_id = uuid.uuid4().hex[:16]
    factories.event(
        "impression",
        session_key=shopper,
        experiment_id=running.pk,
        arm=arm,
        list_id=list_id,
        scenario="for_you",
        shown={"items": list(items), "p": [1.0] * len(items)},
        timestamp=at,
    )
    for place in clicks:
        factories.event(
            "click",
            session_key=shopper,
            item_id=items[place],
            list_id=list_id,
            position=place,
            timestamp=at + timedelta(minutes=1),
        )
    return list_id


def test_outcomes_count_only_the_shoppers_own_clicks_and_what_followed_them(catalogue):
    running = experiment()
    at = timezone.now() - timedelta(hours=3)
    shown = log(running, "B", "shopper-1", clicks=(0, 0, 2), at=at)  # a place clicked twice counts once
    # Another visitor replays the list's id: not the shopper who saw it, so not counted.
    factories.event("click", session_key="attacker", item_id="5002", list_id=shown, position=1, timestamp=at)
    factories.event("cart", session_key="shopper-1", item_id="5003", timestamp=at + timedelta(minutes=5))
    factories.event(
        "purchase",
        session_key="shopper-1",
        item_id="5003",
        price=Decimal("20.00"),
        quantity=2,
        timestamp=at + timedelta(minutes=9),
    )
    factories.event(
        "purchase",
        session_key="shopper-1",
        item_id="5001",
        price=Decimal("99.00"),
        timestamp=at - timedelta(minutes=9),
    )
    log(running, "A", "shopper-2", at=at)
    figures = outcomes.measure(running)
    assert figures["B"] | {"sums": None} == {
        "shoppers": 1, "lists": 1, "clicks": 2, "carts": 1, "purchases": 1, "revenue": 40.0, "sums": None,
    }  # fmt: skip
    assert (figures["A"]["lists"], figures["A"]["clicks"]) == (1, 0)


def test_a_broken_split_is_flagged_and_not_read_as_a_result(catalogue):
    running = experiment(stop_for_harm=True)
    for index in range(300):
        log(running, "A", f"a-{index}", clicks=(0,) if index % 5 == 0 else ())
    for index in range(200):
        log(running, "B", f"b-{index}")  # B loses shoppers: and has no clicks at all
    result = experiments.update(running)
    assert result.analysis["sample_ratio"]["mismatch"] is True
    running.refresh_from_db()
    assert running.verdict.startswith("The split is broken")
    assert running.status == Experiment.Status.RUNNING  # not stopped "for harm" on a broken split


def test_harm_stops_the_experiment_and_a_winner_is_promoted_when_asked(served_model, catalogue):
    harmful = experiment(stop_for_harm=True)
    for index in range(400):
        log(harmful, "A", f"a-{index}", clicks=(0,) if index % 2 == 0 else ())
        log(harmful, "B", f"b-{index}", clicks=(0,) if index % 20 == 0 else ())
    experiments.update(harmful)
    harmful.refresh_from_db()
    assert harmful.status == Experiment.Status.STOPPED and "harm" in harmful.stop_reason
    assert harmful.verdict.startswith("B is worse than A by 45.00 points of click-through rate")

    candidate = ModelVersion.objects.create(
        status=ModelVersion.Status.READY, running=None, artifact_path=served_model.artifact_path
    )
    promoting = experiment(("A", 50, "active"), ("B", 50, "version", candidate), auto_promote=True)
    for index in range(400):
        log(promoting, "A", f"c-{index}", clicks=(0,) if index % 20 == 0 else ())
        log(promoting, "B", f"d-{index}", clicks=(0,) if index % 2 == 0 else ())
    experiments.update(promoting)
    promoting.refresh_from_db()
    candidate.refresh_from_db()
    assert promoting.status == Experiment.Status.STOPPED
    assert candidate.status == ModelVersion.Status.ACTIVE and "experiment" in candidate.promotion_note
    assert ExperimentResult.objects.filter(experiment=promoting).count() == 1


def test_no_difference_reads_as_no_difference_with_a_plan(catalogue):
    running = experiment(minimum_detectable_effect=0.1)
    rng = random.Random(3)
    for index in range(200):
        log(running, "A" if index % 2 else "B", f"s-{index}", clicks=(0,) if rng.random() < 0.2 else ())
    experiments.update(running)
    running.refresh_from_db()
    assert running.verdict.startswith("No difference found yet between B and A in click-through rate")
    assert "The plan for a change of 10 % needs" in running.verdict
    assert running.status == Experiment.Status.RUNNING


def test_exploration_logs_the_chance_of_every_shown_item(shop, browser, recorder_settings):
    recorder_settings(
        EXPLORATION={"SHARE": 0.5, "POOL": 4, "SCENARIOS": ["for_you"]}, PIN_ITEMS={"for_you": ["5010"]}
    )
    browser.get(reverse("shop:product", kwargs={"pk": 5001}))
    for _ in range(12):
        browser.get(reverse("shop:home"))
    logged = list(impressions(scenario="for_you"))
    assert logged
    for shown in logged:
        items, chances = shown.shown["items"], shown.shown["p"]
        assert items[0] == "5010" and chances[0] == 1.0  # a pinned place is never explored
        pool = len(items) - 1 + 4
        for chance in chances[1:]:
            assert chance == pytest.approx(0.5 + 0.5 / pool) or chance == pytest.approx(0.5 / pool)
    assert any(c < 0.5 for shown in logged for c in shown.shown["p"]), "some lists were explored"


def test_explore_keeps_fixed_places_and_its_chances_are_the_frequencies():
    ranked = [Recommendation("pin", 0.0, "", fixed=True)] + [
        Recommendation(f"i{k}", 1.0, "") for k in range(5)
    ]
    rng = random.Random(1)
    counts: dict[tuple[int, str], int] = {}
    chances: dict[tuple[int, str], float] = {}
    for _ in range(20_000):
        shown, p = exploration.explore(ranked, 3, 0.3, rng)
        assert shown[0].item_id == "pin" and p[0] == 1.0
        for place, (rec, chance) in enumerate(zip(shown, p, strict=True)):
            counts[(place, rec.item_id)] = counts.get((place, rec.item_id), 0) + 1
            chances[(place, rec.item_id)] = chance
    for key, count in counts.items():
        assert count / 20_000 == pytest.approx(chances[key], abs=0.01), key


def test_experiment_admin_is_for_staff_and_its_buttons_need_post_and_csrf(catalogue):
    draft = experiment(start=False)
    staff = factories.user("eve", "pw-eve-123", is_staff=True, is_superuser=True)
    shopper = factories.user("fay", "pw-fay-123")
    page = reverse("admin:recommendations_experiment_change", args=[draft.pk])
    start = reverse("admin:recommendations_experiment_start", args=[draft.pk])
    outsider = Client()
    outsider.force_login(shopper)
    assert outsider.get(page).status_code == 302  # to the admin login
    assert outsider.post(start).status_code == 302
    draft.refresh_from_db()
    assert draft.status == Experiment.Status.DRAFT

    admin = Client(enforce_csrf_checks=True)
    admin.force_login(staff)
    body = admin.get(page)
    assert body.status_code == 200 and b"Start" in body.content and b"Not started" in body.content
    assert admin.get(start).status_code == 405
    assert admin.post(start).status_code == 403  # no CSRF token
    token = (
        body.cookies["csrftoken"].value if "csrftoken" in body.cookies else admin.cookies["csrftoken"].value
    )
    assert admin.post(start, {"csrfmiddlewaretoken": token}).status_code == 302
    draft.refresh_from_db()
    assert draft.status == Experiment.Status.RUNNING
    log(draft, "A", "someone", clicks=(0,))
    compute = reverse("admin:recommendations_experiment_compute", args=[draft.pk])
    assert admin.post(compute, {"csrfmiddlewaretoken": token}).status_code == 302
    shown = admin.get(page).content.decode()
    assert "Figures per arm" in shown and "Stop" in shown and "click-through" in shown
    assert admin.get(reverse("admin:recommendations_experiment_changelist")).status_code == 200
    assert admin.get(reverse("admin:recommendations_experiment_add")).status_code == 200


def test_a_version_is_estimated_on_logged_traffic_and_promoted_only_when_better(
    served_model, recorder_settings, monkeypatch
):
    from recommendations.lifecycle import registry
    from recommendations.serving import exploration
    from recommendations.serving.off_policy import estimate_version
    from tests.conftest import device_id
    from tests.serving_world import items_of, store_history

    store_history()
    recorder_settings(EXPLORATION={"SHARE": 0.3, "POOL": 6, "SCENARIOS": ["for_you"]})
    # The draws are seeded: 40 lists make an interval that misses the truth now and then (its
    # coverage is measured over many runs by `python -m bench experiments`), and a test repeats.
    monkeypatch.setattr(exploration, "_random", random.Random(11))
    rng = random.Random(5)
    phones = items_of("electronics.smartphone")
    for index in range(40):
        app = app_client(HTTP_X_DEVICE_ID=device_id(f"ope-{index}"))
        viewed = rng.sample(phones, 2)
        views = [
            {"event": "view", "item_id": item, "client_event_id": f"v-{index}-{item}"} for item in viewed
        ]
        assert (
            app.post(reverse("recommendations-api:events"), {"events": views}, format="json").status_code
            == 202
        )
        body = app.get(FOR_YOU, {"limit": 4}).json()
        place = next((k for k, item in enumerate(body["items"]) if item["item_id"] in phones), None)
        if place is not None and rng.random() < 0.6:  # shoppers click phones after phones
            click = {
                "event": "click",
                "item_id": body["items"][place]["item_id"],
                "list_id": body["list_id"],
                "position": place,
                "client_event_id": f"click-{index:04d}",
            }
            assert (
                app.post(
                    reverse("recommendations-api:events"), {"events": [click]}, format="json"
                ).status_code
                == 202
            )
    shown = impressions(scenario="for_you")
    assert shown.count() == 40 and all(e.source == "api" for e in shown)
    found = estimate_version(served_model)
    assert found["lists"] >= 30 and found["matched"] > 0
    assert found["logged"] > 0
    # The version that served, estimated on its own traffic: the truth is what was logged.
    for name in ("ips", "snips", "dr"):
        assert found[name]["low"] <= found["logged"] <= found[name]["high"], (name, found)
    served_model.refresh_from_db()
    assert served_model.metrics["off_policy"]["lists"] == found["lists"]
    promoted, note = registry.promote_on_traffic(served_model)
    assert not promoted and note.startswith("Not promoted on logged traffic")
