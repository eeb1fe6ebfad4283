"""The event store: one append-only row per thing a shopper did.

Everything the app learns is read from ``Event``. Rows are written in bulk by a recorder
(capture/store.py) and never updated, except to attach an anonymous visitor's rows to the
account they signed in to (``VisitorLink``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class EventType(models.TextChoices):
    VIEW = "view", "product view"
    CATEGORY_VIEW = "category_view", "category view"
    SEARCH = "search", "search"
    CART = "cart", "add to cart"
    PURCHASE = "purchase", "purchase"
    CLICK = "click", "recommendation click"
    IMPRESSION = "impression", "recommendation impression"


#: Events that must name an item; a search names a query, a category view a category.
ITEM_EVENTS = frozenset({EventType.VIEW, EventType.CART, EventType.PURCHASE, EventType.CLICK})


class EventQuerySet(models.QuerySet):
    def trusted(self) -> EventQuerySet:
        """What may rank items for other shoppers or train a model: without the events of
        flagged shoppers (``FlaggedShopper``) and of anonymous shoppers first seen less than
        ``VIGILANCE["SETTLE_SECONDS"]`` ago (a fresh cookie jar or device costs nothing; one an
        hour old costs an hour). Their events stay stored and shape their own lists at once."""
        from .conf import app_settings

        flagged = FlaggedShopper.objects.filter(cleared_at__isnull=True)
        events = self.exclude(session_key__in=flagged.exclude(session_key="").values("session_key")).exclude(
            user_id__in=flagged.filter(user_id__isnull=False).values("user_id")
        )
        settle = app_settings.VIGILANCE.get("SETTLE_SECONDS")
        if settle:
            since = timezone.now() - timedelta(seconds=settle)
            recent = Event.objects.filter(timestamp__gte=since, user__isnull=True).exclude(session_key="")
            fresh = (
                Event.objects.filter(session_key__in=recent.values("session_key"))
                .values("session_key")
                .annotate(first=models.Min("timestamp"))
                .filter(first__gte=since)
                .values("session_key")
            )
            events = events.exclude(user__isnull=True, session_key__in=fresh)
        return events


class Event(models.Model):
    """Something a shopper did, for a signed-in user or an anonymous visitor.

    ``session_key`` is the app's own visitor id (a signed cookie, so it survives the key
    rotation at login), a device id from the mobile API, or the session id of an imported log. ``external_user_id`` holds a user id from an imported log that is not an
    account of this shop.
    """

    timestamp = models.DateTimeField(default=timezone.now)
    event_type = models.CharField(max_length=16, choices=EventType.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="recommendation_events",
    )
    session_key = models.CharField(max_length=64, blank=True, default="")
    external_user_id = models.CharField(max_length=64, blank=True, default="")
    item_id = models.CharField(max_length=64, blank=True, default="")
    category_id = models.CharField(max_length=128, blank=True, default="")
    query = models.CharField(max_length=255, blank=True, default="")
    result_count = models.PositiveIntegerField(null=True, blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    quantity = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(
        max_length=32, blank=True, default="", help_text="web, signal, api, import:FORMAT"
    )
    scenario = models.CharField(
        max_length=32, blank=True, default="", help_text="Recommendation list of an impression or click."
    )
    model_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="Model version that made the list (impressions and clicks)."
    )
    experiment_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="Experiment whose arm made the list (impressions and clicks)."
    )
    arm = models.CharField(max_length=32, blank=True, default="", help_text="That experiment's arm.")
    list_id = models.CharField(
        max_length=32,
        blank=True,
        default="",
        help_text="Id of one shown list: its impression and the clicks on it share it.",
    )
    position = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Click: the 0-based place of the clicked item in its list."
    )
    shown = models.JSONField(
        null=True,
        blank=True,
        help_text='Impression: {"items": [ids in order], "p": [probability each was chosen for its place]}.',
    )
    client_event_id = models.CharField(
        max_length=64,
        unique=True,
        null=True,
        blank=True,
        help_text="Idempotence key: an event with a known id is never stored twice.",
    )

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ("-timestamp", "-id")
        indexes = [
            models.Index(fields=["user", "-timestamp"], name="rec_event_user_latest"),
            models.Index(fields=["session_key", "-timestamp"], name="rec_event_session_latest"),
            models.Index(fields=["item_id", "event_type", "-timestamp"], name="rec_event_item_type"),
            models.Index(fields=["event_type", "-timestamp"], name="rec_event_type_latest"),
            models.Index(fields=["-timestamp"], name="rec_event_latest"),
            # Only the few rows of experiments: the outcomes task reads them, other writes pay nothing.
            models.Index(
                fields=["experiment_id", "timestamp"],
                name="rec_event_experiment",
                condition=models.Q(experiment_id__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        target = self.item_id or self.category_id or self.query
        return f"{self.get_event_type_display()} {target} at {self.timestamp:%Y-%m-%d %H:%M:%S}"


class VisitorLink(models.Model):
    """An anonymous visitor id that signed in as a user.

    Rows written after the login (a queued Celery batch, for example) are attached to the
    user through this link, so the merge does not depend on the order of writes.
    """

    session_key = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recommendation_visitors"
    )
    linked_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"visitor {self.session_key[:8]}… → user {self.user_id}"


class QuarantinedEvent(models.Model):
    """An event the database refused to store, kept aside so the events behind it are stored.

    Capture validates every field, so this stays empty unless a shop's own code (an adapter,
    a recorder) produces something the columns cannot hold; the admin shows what and why.
    """

    created_at = models.DateTimeField(default=timezone.now)
    error = models.CharField(max_length=500)
    payload = models.JSONField(help_text="The event as capture built it (EventRecord.to_json).")

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.payload.get('event_type', '?')} refused: {self.error[:60]}"


class FlaggedShopper(models.Model):
    """A shopper whose events came faster, or from a busier network, than people do.

    Their events are stored and shape their own lists, but are left out of everything that
    ranks items for other shoppers and out of training (``Event.objects.trusted()``) until
    staff clear the flag in the admin. Written by ``capture/vigilance.py``.
    """

    class Reason(models.TextChoices):
        BURST = "burst", "more events a minute than a person makes"
        NETWORK_SHOPPERS = "network_shoppers", "one of too many new shoppers from one network"
        NETWORK_EVENTS = "network_events", "its network sent more events a minute than people do"

    shopper = models.CharField(max_length=80, unique=True, help_text="u:<user id> or s:<visitor or device>")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    session_key = models.CharField(max_length=64, blank=True, default="")
    reason = models.CharField(max_length=32, choices=Reason.choices)
    detail = models.CharField(max_length=200, blank=True, default="")
    flagged_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Cleared by staff: their events count again, and they are not flagged again.",
    )

    class Meta:
        ordering = ("-flagged_at",)

    def __str__(self) -> str:
        return f"{self.shopper[:24]} flagged: {self.get_reason_display()}"


class ErasureMark(models.Model):
    """That a shopper was just erased: every process checks it before trusting its own cache.

    A process whose cache is not shared (Django's default per-process cache) cannot hear of
    an erasure run elsewhere; it reads these marks instead (``serving/history.py``). Only a
    hash of the shopper's key is kept, and only for an hour (what the caches hold at most).
    """

    digest = models.CharField(max_length=64, unique=True)
    erased_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"erasure at {self.erased_at:%Y-%m-%d %H:%M:%S}"


class ModelVersion(models.Model):
    """One trained model: how it was made, how it scored on later data, where its files are.

    At most one version is ``active`` (the one serving). A version is ``training`` while a
    worker builds it; ``running`` is a database-enforced lock (unique when true), so two
    retrain requests cannot train at the same time.
    """

    class Status(models.TextChoices):
        TRAINING = "training", "training"
        READY = "ready", "ready"
        ACTIVE = "active", "active"
        FAILED = "failed", "failed"
        RETIRED = "retired", "retired"

    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRAINING)
    running = models.BooleanField(null=True, default=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life of the training.")
    progress = models.JSONField(default=dict, blank=True, help_text="Stage, epoch, losses while training.")
    params = models.JSONField(default=dict, blank=True)
    data_start = models.DateTimeField(null=True, blank=True)
    data_end = models.DateTimeField(null=True, blank=True)
    holdout_start = models.DateTimeField(null=True, blank=True)
    event_count = models.PositiveIntegerField(default=0)
    n_items = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(
        default=dict, blank=True, help_text="Holdout evaluation of the model and baselines."
    )
    history = models.JSONField(default=list, blank=True, help_text="Loss and validation loss per epoch.")
    train_seconds = models.FloatField(null=True, blank=True)
    artifact_path = models.CharField(max_length=255, blank=True, default="")
    artifact_size = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    promotion_note = models.TextField(blank=True, default="", help_text="Why it was or was not activated.")
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["running"], condition=models.Q(running=True), name="rec_one_training_at_a_time"
            ),
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="active"), name="rec_one_active_version"
            ),
        ]

    def __str__(self) -> str:
        return f"model v{self.pk} ({self.status})"

    def _scores(self, name: str) -> dict[str, float]:
        """Model name -> value of the holdout metric ``variant:metric`` (``new:mrr@20``)."""
        variant, _, metric = name.partition(":")
        try:
            models = self.metrics["variants"][variant]["models"]
        except (KeyError, TypeError):
            return {}
        return {
            model: float(values[metric]) for model, values in models.items() if values.get(metric) is not None
        }

    def metric(self, name: str) -> float | None:
        """A holdout metric of this version's own model, as ``variant:metric`` (``new:mrr@20``)."""
        return self._scores(name).get((self.metrics or {}).get("model", ""))

    def comparison(self, name: str) -> dict[str, Any] | None:
        """This model and the version active when it trained, on the same holdout cases.

        ``{"version", "n_cases", "candidate", "active"}`` for the metric ``variant:metric``,
        or None when the active version was not scored (none was active, or its files
        could not be read).
        """
        reference = (self.metrics or {}).get("reference") or {}
        variant, _, metric = name.partition(":")
        try:
            data = reference["variants"][variant]
            models = data["models"]
        except (KeyError, TypeError):
            return None
        own = models.get((self.metrics or {}).get("model", ""), {})
        theirs = models.get(reference.get("model", ""), {})
        return {
            "version": reference.get("version"),
            "n_cases": int(data.get("n_cases") or 0),
            "candidate": own.get(metric),
            "active": theirs.get(metric),
        }

    def best_baseline_metric(self, name: str) -> float | None:
        """The best value of that metric among the baselines evaluated beside the model."""
        own = (self.metrics or {}).get("model", "")
        others = [value for model, value in self._scores(name).items() if model != own]
        return max(others) if others else None


class SearchQuery(models.Model):
    """One normalized search query, as the suggestion index uses it (rebuilt from the events).

    ``score`` is the time-decayed number of searches times their success rate (a search is
    a success when the same visit then clicked, carted or bought). A query whose latest
    search found nothing is never suggested; ``zero_results`` counts those searches for the
    admin's "searches that found nothing".
    """

    key = models.CharField(max_length=255, unique=True, help_text="Normalized text.")
    text = models.CharField(max_length=255, help_text="The most frequent way shoppers typed it.")
    source = models.CharField(max_length=16, default="log", help_text="log or catalogue")
    score = models.FloatField(default=0.0)
    searches = models.PositiveIntegerField(
        default=0, help_text="Searches, each visit's repeats counted once."
    )
    shoppers = models.PositiveIntegerField(
        default=0, help_text="Distinct visitors or devices that searched it."
    )
    successes = models.PositiveIntegerField(default=0)
    zero_results = models.PositiveIntegerField(default=0)
    found_nothing = models.BooleanField(default=False, help_text="Its latest search found nothing.")
    last_searched = models.DateTimeField(null=True, blank=True)
    categories = models.JSONField(default=dict, blank=True, help_text="Category -> share of outcomes.")
    related = models.JSONField(
        default=list, blank=True, help_text="Queries searched next in the same visits."
    )

    class Meta:
        ordering = ("-score", "key")
        verbose_name_plural = "search queries"
        indexes = [models.Index(fields=["-zero_results"], name="rec_query_zero_results")]

    def __str__(self) -> str:
        return self.text

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.searches if self.searches else None


class BlockedQuery(models.Model):
    """A query the shop never wants suggested (set from the admin; kept across rebuilds)."""

    key = models.CharField(max_length=255, unique=True, help_text="Normalized text.")
    text = models.CharField(max_length=255)
    blocked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("key",)
        verbose_name_plural = "blocked queries"

    def __str__(self) -> str:
        return self.text


class SearchWithoutResults(SearchQuery):
    """The queries whose searches found nothing, most frequent first: the shop owner's to-do list."""

    class Meta:
        proxy = True
        ordering = ("-zero_results", "key")
        verbose_name = "search that found nothing"
        verbose_name_plural = "searches that found nothing"


class Experiment(models.Model):
    """An A/B test: shoppers split between arms (model versions or fallbacks) on some lists.

    A shopper's arm is a hash of their assignment unit and ``salt`` (serving/experiments.py):
    no table of assignments, the same arm on every page, the API and after signing in.
    Outcomes are computed from the event table by a Celery task (lifecycle/outcomes.py) and
    kept as one cumulative snapshot per day (``ExperimentResult``).
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        RUNNING = "running", "running"
        STOPPED = "stopped", "stopped"

    #: The lists an experiment may change: the ones a model makes.
    SCENARIOS = ("for_you", "similar")

    class Metric(models.TextChoices):
        CTR = "ctr", "click-through rate (clicks per shown list)"
        CART = "cart_rate", "add-to-cart rate (carts after a click, per shown list)"
        PURCHASE = "purchase_rate", "purchase rate (purchases after a click, per shown list)"
        REVENUE = "revenue_per_mille", "revenue per thousand shown lists"

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    scenarios = models.JSONField(default=list, help_text='Lists it applies to, e.g. ["for_you", "similar"].')
    salt = models.CharField(
        max_length=32, default="", blank=True, help_text="Mixed into the hash that assigns arms (set once)."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    primary_metric = models.CharField(max_length=32, choices=Metric.choices, default=Metric.CTR)
    minimum_detectable_effect = models.FloatField(
        default=0.10,
        help_text="Smallest relative change worth finding (0.10: 10 % of the control's rate); sizes the test.",
    )
    alpha = models.FloatField(default=0.05, help_text="Chance of a false alarm the test allows.")
    power = models.FloatField(default=0.8, help_text="Chance of finding an effect of the minimum size.")
    attribution_hours = models.PositiveIntegerField(
        default=24,
        help_text="A cart or purchase counts for a list when it follows a click on it within this time.",
    )
    auto_promote = models.BooleanField(
        default=False,
        help_text="Stop when an arm with a model version wins, and make that version the active one.",
    )
    stop_for_harm = models.BooleanField(
        default=True, help_text="Stop, serving the control to everyone, when an arm is shown to do harm."
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    verdict = models.TextField(blank=True, default="", help_text="The latest reading of the test, in words.")
    stop_reason = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return self.name

    @property
    def control(self) -> Arm | None:
        return next((arm for arm in self.arms.all() if arm.is_control), None)


class Arm(models.Model):
    """One side of an experiment: what its shoppers are served, and their share of traffic."""

    class Strategy(models.TextChoices):
        VERSION = "version", "a model version"
        ACTIVE = "active", "whichever version is active"
        FALLBACKS = "fallbacks", "no model: trending and popular"

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    name = models.CharField(max_length=32, help_text="Short, e.g. A or B (a letter, digit, - or _).")
    is_control = models.BooleanField(default=False)
    share = models.PositiveSmallIntegerField(
        default=50, help_text="Percent of shoppers (the arms add up to 100)."
    )
    strategy = models.CharField(max_length=16, choices=Strategy.choices, default=Strategy.VERSION)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="arms"
    )

    class Meta:
        ordering = ("experiment", "-is_control", "name")
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="rec_arm_name_once"),
        ]

    def __str__(self) -> str:
        return f"{self.name}{' (control)' if self.is_control else ''}"

    @property
    def serves(self) -> str:
        if self.strategy == self.Strategy.VERSION and self.model_version_id:
            return f"version {self.model_version_id}"
        return self.get_strategy_display()


class ExperimentResult(models.Model):
    """An experiment's figures as of one day: cumulative since its start, one row per day.

    ``arms`` holds, per arm, the shoppers, lists shown, clicks, carts, purchases and revenue
    and the per-shopper sums the statistics need (``ml.experiment_stats``); ``analysis`` the
    test's reading that day (intervals, always-valid p-values, sample ratio check).
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="results")
    day = models.DateField()
    computed_at = models.DateTimeField(default=timezone.now)
    arms = models.JSONField(default=dict)
    analysis = models.JSONField(default=dict)

    class Meta:
        ordering = ("experiment", "day")
        constraints = [models.UniqueConstraint(fields=["experiment", "day"], name="rec_result_once_a_day")]

    def __str__(self) -> str:
        return f"{self.experiment} on {self.day}"
