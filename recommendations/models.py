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
