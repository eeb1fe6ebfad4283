"""Admin: the event log (read-only, fast) and model versions (retrain, activate, charts,
sample recommendations, click-through), plus a preview of any shopper's recommendations.

The log is append-only and can be large: no add/change/delete, no full COUNT(*) on every
page, exact-match searches that use the indexes, and the user joined in the same query.
"Retrain now" only queues a Celery task (POST, staff, CSRF) and returns at once.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from . import charts
from .artifacts import ArtifactError
from .capture.privacy import forget_user, forget_visitor
from .capture.store import dropped_events
from .conf import app_settings
from .experiment_admin import ExperimentAdmin
from .identity import Shopper
from .lifecycle import registry
from .models import (
    BlockedQuery,
    Event,
    Experiment,
    FlaggedShopper,
    ModelVersion,
    QuarantinedEvent,
    SearchQuery,
    SearchWithoutResults,
    VisitorLink,
)
from .serving import history, insights, loader, services
from .suggest.loader import publish as publish_suggestions
from .suggest.moderation import why_not_suggested

# --- how values read in the admin: names, units, sensible rounding ---------------------------


def item_label(item_id: str) -> str:
    """“Name” (id) of an item, or its id when the catalogue no longer has it."""
    name = services.item_names.get({item_id}).get(item_id)
    return f"{name} ({item_id})" if name else item_id


def event_label(event: history.HistoryEvent) -> str:
    """ "viewed “Name”": one of a shopper's events, in words."""
    verb = services.VERBS.get(event.event_type, event.event_type)
    name = services.item_names.get({event.item_id}).get(event.item_id, event.item_id)
    return f"{verb} “{name}”"


def shopper_names(shoppers: list[Shopper]) -> dict[str, str]:
    """Shopper key -> "alice" (signed in) or "visitor 3f9a…" (anonymous), one query for all."""
    users = get_user_model()._default_manager
    ids = [s.user_id for s in shoppers if s.user_id is not None]
    usernames = {user.pk: user.get_username() for user in users.filter(pk__in=ids)} if ids else {}
    return {
        s.key: usernames.get(s.user_id, f"user {s.user_id}")
        if s.user_id is not None
        else f"visitor {s.visitor[:8]}…"
        for s in shoppers
    }


def preview_links(shoppers: list[Shopper]) -> list[tuple[str, str]]:
    """(query string, label) of each shopper, for the preview's "latest shoppers"."""
    names = shopper_names(shoppers)
    return [
        (urlencode({"user": names[s.key]} if s.user_id is not None else {"visitor": s.visitor}), names[s.key])
        for s in shoppers
    ]


def score_text(score: float) -> str:
    """Three significant figures: a probability of 0.00004 reads 4e-05, not 0.0000."""
    return f"{score:.3g}"


def duration(seconds: float) -> str:
    """ "48 s", "3 min 5 s", "1 h 02 min"."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    # Five columns that fit a laptop's width: what happened, to what, and the rest in words.
    list_display = ("when", "event_type", "shopper", "item", "details")
    list_filter = ("event_type", ("timestamp", admin.DateFieldListFilter), "source")
    search_fields = (
        "=item_id",
        "=session_key",
        "=external_user_id",
        "=user__username",
        "=category_id",
        "query",
    )
    list_select_related = ("user",)
    show_full_result_count = False
    list_per_page = 50
    date_hierarchy = None
    ordering = ("-timestamp", "-id")

    actions = ("forget_shoppers",)

    def has_forget_permission(self, request: HttpRequest) -> bool:
        """Erasure needs the model's delete permission (superusers have it), never mere viewing."""
        return request.user.has_perm("recommendations.delete_event")

    @admin.action(
        description="Erase everything about the shoppers of the selected events (right to erasure)",
        permissions=("forget",),
    )
    def forget_shoppers(self, request: HttpRequest, queryset) -> None:
        """Signed-in shoppers are forgotten entirely; anonymous visitors lose their events."""
        users = set(queryset.exclude(user=None).values_list("user_id", flat=True))
        visitors = set(
            queryset.filter(user=None).exclude(session_key="").values_list("session_key", flat=True)
        )
        events = sum(forget_user(user_id).events for user_id in users)
        events += sum(forget_visitor(visitor).events for visitor in visitors)
        messages.success(
            request, f"Erased {events} events of {len(users)} users and {len(visitors)} anonymous visitors."
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        dropped = dropped_events()
        if dropped and request.method == "GET":
            messages.warning(
                request,
                f"{dropped['count']} events could not be stored and were dropped, between "
                f"{dropped['first']} and {dropped['last']} (last reason: {dropped['reason']}). "
                "Events are kept and retried while the database or broker is away; they are "
                "dropped only past MAX_PENDING_EVENTS or EVENT_WRITE_RETRIES.",
            )
        quarantined = QuarantinedEvent.objects.count() if request.method == "GET" else 0
        if quarantined:
            messages.warning(
                request,
                ngettext(
                    "%(n)d event was refused by the database and quarantined (the others were stored): see Quarantined events.",
                    "%(n)d events were refused by the database and quarantined (the others were stored): see Quarantined events.",
                    quarantined,
                )
                % {"n": quarantined},
            )
        return super().changelist_view(request, extra_context)

    def get_changelist_instance(self, request: HttpRequest):
        changelist = super().get_changelist_instance(request)
        # The page's item names in one query (kept a few minutes per process): no query per row.
        services.item_names.get({event.item_id for event in changelist.result_list if event.item_id})
        return changelist

    @admin.display(description="when", ordering="timestamp")
    def when(self, obj: Event) -> str:
        return timezone.localtime(obj.timestamp).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="shopper")
    def shopper(self, obj: Event) -> str:
        if obj.user_id:
            return obj.user.get_username()
        if obj.external_user_id:
            return f"imported user {obj.external_user_id}"
        return f"visitor {obj.session_key[:8]}" if obj.session_key else "-"

    @admin.display(description="item")
    def item(self, obj: Event) -> str:
        return item_label(obj.item_id) if obj.item_id else "-"

    @admin.display(description="details")
    def details(self, obj: Event) -> str:
        """What else the event says: the list of an impression or click, a search and its
        results, the category, where it came from."""
        parts = []
        if obj.scenario:
            version = f", model v{obj.model_version}" if obj.model_version else ""
            shown = f", {obj.result_count} items" if obj.result_count is not None else ""
            parts.append(f"list “{obj.scenario}”{version}{shown}")
        if obj.query:
            found = (
                f" → {obj.result_count:,} results"
                if obj.result_count is not None and not obj.scenario
                else ""
            )
            parts.append(f"“{obj.query}”{found}")
        if obj.category_id and not obj.item_id:
            parts.append(f"category {obj.category_id}")
        if obj.quantity:
            parts.append(f"quantity {obj.quantity}")
        if obj.source:
            parts.append(f"from {obj.source}")
        return "; ".join(parts) or "-"


@admin.register(VisitorLink)
class VisitorLinkAdmin(ReadOnlyAdmin):
    list_display = ("session_key", "user", "linked_at")
    list_select_related = ("user",)
    search_fields = ("=session_key", "=user__username")


@admin.register(QuarantinedEvent)
class QuarantinedEventAdmin(ReadOnlyAdmin):
    """Events the database refused (set aside so the others were stored): what, and why.

    Delete them once the cause (a shop adapter or recorder writing values the columns cannot
    hold) is fixed; the event admin says when there are any.
    """

    list_display = ("created_at", "event_type", "error")
    readonly_fields = ("created_at", "error", "payload")

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm("recommendations.delete_quarantinedevent")

    @admin.display(description="event")
    def event_type(self, obj: QuarantinedEvent) -> str:
        return str(obj.payload.get("event_type", "?"))


@admin.register(FlaggedShopper)
class FlaggedShopperAdmin(ReadOnlyAdmin):
    """Shoppers faster than people (capture/vigilance.py): their events are left out of the
    lists of others and of training. Look at their events; clear the ones that are people."""

    list_display = ("shopper_shown", "reason", "detail", "flagged_at", "cleared_at", "events")
    list_filter = ("reason", ("cleared_at", admin.EmptyFieldListFilter))
    search_fields = ("=shopper", "=session_key", "=user__username")
    readonly_fields = ("shopper", "user", "session_key", "reason", "detail", "flagged_at", "cleared_at")
    actions = ("clear_flags",)

    @admin.display(description="shopper", ordering="shopper")
    def shopper_shown(self, obj: FlaggedShopper) -> str:
        return f"user {obj.user_id}" if obj.user_id is not None else f"visitor {obj.session_key[:16]}…"

    @admin.display(description="their events")
    def events(self, obj: FlaggedShopper) -> str:
        url = reverse("admin:recommendations_event_changelist")
        query = f"user={obj.user_id}" if obj.user_id is not None else f"session_key={obj.session_key}"
        return format_html('<a href="{}?{}">events</a>', url, query)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # No form edits a flag; "change" is what clearing one needs.
        return obj is None and request.user.has_perm("recommendations.change_flaggedshopper")

    @admin.action(description="Clear: their events count again (not flagged again)", permissions=("change",))
    def clear_flags(self, request: HttpRequest, queryset) -> None:
        cleared = queryset.filter(cleared_at__isnull=True).update(cleared_at=timezone.now())
        messages.success(
            request,
            ngettext("%(n)d shopper cleared.", "%(n)d shoppers cleared.", cleared) % {"n": cleared},
        )


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    # Five short columns: the training's progress stays in view on a laptop.
    list_display = ("__str__", "created", "data", "metric_vs_best_baseline", "training")
    list_filter = ("status",)
    actions = ("activate_version", "estimate_on_traffic", "promote_on_traffic")
    change_list_template = "admin/recommendations/modelversion/change_list.html"
    readonly_fields = (
        "status", "created_at", "activated_at", "promotion_note", "comparison", "training", "stages", "loss_chart", "metrics_chart",
        "metrics_table", "data_start", "holdout_start", "data_end", "events", "items", "training_time",
        "artifact_path", "files_size", "params", "error", "sample_recommendations", "click_through", "off_policy",
    )  # fmt: skip
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "status",
                    "created_at",
                    "activated_at",
                    "promotion_note",
                    "comparison",
                    "training",
                    "error",
                )
            },
        ),
        ("Quality on later data", {"fields": ("metrics_chart", "metrics_table", "stages", "loss_chart")}),
        ("In the shop", {"fields": ("sample_recommendations", "click_through", "off_policy")}),
        ("Data", {"fields": ("data_start", "holdout_start", "data_end", "events", "items")}),
        ("Files and parameters", {"fields": ("training_time", "artifact_path", "files_size", "params")}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_urls(self) -> list:
        retrain = self.admin_site.admin_view(require_POST(self.retrain_view))
        preview = self.admin_site.admin_view(self.preview_view)
        return [
            path("retrain/", retrain, name="recommendations_modelversion_retrain"),
            path("preview/", preview, name="recommendations_modelversion_preview"),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """Any shopper's "for you" list with scores and reasons, and click-through by list."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        wanted_user = request.GET.get("user", "").strip()
        wanted_visitor = request.GET.get("visitor", "").strip()
        shopper, problem = None, ""
        if wanted_user:
            users = get_user_model()._default_manager
            field = users.model.USERNAME_FIELD
            found = users.filter(**{field: wanted_user}).first()
            if found is None and wanted_user.isdigit():
                found = users.filter(pk=int(wanted_user)).first()
            if found is None:
                problem = f"No user {wanted_user!r}."
            else:
                shopper = Shopper(user_id=found.pk)
        elif wanted_visitor:
            shopper = Shopper(visitor=wanted_visitor[:64])
        context = {
            **self.admin_site.each_context(request),
            "title": "Preview recommendations",
            "opts": self.model._meta,
            "wanted_user": wanted_user,
            "wanted_visitor": wanted_visitor,
            "problem": problem,
            "recent_shoppers": preview_links(insights.recent_shoppers(8)),
            "click_through": insights.click_through(since=timezone.now() - timedelta(days=30)),
        }
        if shopper is not None:
            context["shopper"] = shopper
            context["history"] = [event_label(e) for e in list(reversed(history.recent_events(shopper)))[:10]]
            # The call the shop's pages make (the default limit), for this shopper now.
            context["recommendations"] = services.for_you(shopper)
        return TemplateResponse(request, "admin/recommendations/modelversion/preview.html", context)

    def retrain_view(self, request: HttpRequest) -> HttpResponse:
        """Queue a retrain (staff with change permission; POST with CSRF, checked by admin_view)."""
        changelist = reverse("admin:recommendations_modelversion_changelist")
        if not self.has_change_permission(request):
            messages.error(request, "You may not retrain models.")
            return HttpResponseRedirect(changelist)
        version, created = registry.request_training()
        if not created:
            messages.warning(request, f"Version {version.pk} is already training; it was not started twice.")
            return HttpResponseRedirect(changelist)
        try:
            from . import tasks  # the celery extra: only this button needs it

            transaction.on_commit(lambda: tasks.send(tasks.retrain, version.pk))
        except ImportError as exc:  # the celery extra is missing
            version.delete()
            messages.error(request, f"Cannot queue training: {exc}")
            return HttpResponseRedirect(changelist)
        messages.success(
            request, f"Training of version {version.pk} was queued; this page shows its progress."
        )
        return HttpResponseRedirect(changelist)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "training_in_progress": ModelVersion.objects.filter(running=True).exists(),
            "promotion_metric": app_settings.PROMOTION_METRIC,
        }
        return super().changelist_view(request, extra_context)

    @admin.action(description="Activate the selected version (also to roll back)")
    def activate_version(self, request: HttpRequest, queryset) -> None:
        if queryset.count() != 1:
            messages.error(request, "Select exactly one version to activate.")
            return
        version = queryset.get()
        try:
            registry.activate(version, f"Activated by {request.user.get_username()} from the admin.")
        except ValueError as exc:
            messages.error(request, str(exc))
            return
        messages.success(request, ngettext("%d version activated.", "%d versions activated.", 1) % 1)

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: ModelVersion) -> str:
        return timezone.localtime(obj.created_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="data")
    def data(self, obj: ModelVersion) -> str:
        return f"{obj.event_count:,} events, {obj.n_items:,} items" if obj.event_count else "-"

    @admin.display(description=f"{app_settings.PROMOTION_METRIC} (best baseline)")
    def metric_vs_best_baseline(self, obj: ModelVersion) -> str:
        name = app_settings.PROMOTION_METRIC
        own, best = obj.metric(name), obj.best_baseline_metric(name)
        if own is None:
            return "-"
        return f"{own:.3f}" + (f" ({best:.3f})" if best is not None else "")

    @admin.display(description="events")
    def events(self, obj: ModelVersion) -> str:
        return f"{obj.event_count:,}"

    @admin.display(description="items")
    def items(self, obj: ModelVersion) -> str:
        """How many items the model knows, and why more than the shop sells."""
        catalogue = (obj.metrics or {}).get("catalogue_items")
        if catalogue is None or obj.n_items < catalogue:
            return f"{obj.n_items:,}"
        if obj.n_items == catalogue:
            return f"{obj.n_items:,}, the catalogue when it trained"
        return (
            f"{obj.n_items:,}: {catalogue:,} in the catalogue when it trained, and {obj.n_items - catalogue:,} "
            "known from events only (no longer on sale, or never in the catalogue; never recommended)"
        )

    @admin.display(description="training time")
    def training_time(self, obj: ModelVersion) -> str:
        return duration(obj.train_seconds) if obj.train_seconds else "-"

    @admin.display(description="size of the files")
    def files_size(self, obj: ModelVersion) -> str:
        return filesizeformat(obj.artifact_size) if obj.artifact_size else "-"

    @admin.display(description="training")
    def training(self, obj: ModelVersion) -> str:
        progress = obj.progress or {}
        if obj.status != ModelVersion.Status.TRAINING:
            return duration(obj.train_seconds) if obj.train_seconds else "-"
        if "epoch" in progress:
            val_loss = progress.get("val_loss")
            validation = "refit on every event" if progress.get("refit") else f"val {val_loss or 0:.4f}"
            return f"stage {progress.get('stage', '?')} epoch {progress.get('stage_epoch', progress['epoch'])}: loss {progress.get('loss', 0):.4f}, {validation}"
        return str(progress.get("stage", "queued"))

    @admin.display(description="loss per epoch")
    def loss_chart(self, obj: ModelVersion) -> str:
        history = obj.history or []
        evaluated = [row for row in history if not row.get("refit")]
        refit = [row for row in history if row.get("refit")]
        labels, marks = [], []
        for i, row in enumerate(history):
            stage = row.get("stage", "")
            number = row.get("stage_epoch", row.get("epoch"))
            labels.append(f"R{stage}.{number}" if row.get("refit") else f"{stage}.{number}")
            if i == 0 or (row.get("stage"), row.get("refit")) != (
                history[i - 1].get("stage"),
                history[i - 1].get("refit"),
            ):
                marks.append((i, f"refit {stage}" if row.get("refit") else f"stage {stage}"))
        for record in (obj.metrics or {}).get("stages", []):
            rows = [i for i, row in enumerate(evaluated) if row.get("stage") == record["stage"]]
            if record.get("best_epoch") and rows:
                best = rows[0] + record["best_epoch"] - 1
                marks.append((best, "best" if record["kept"] else "best; rejected"))
        pad = [None] * len(refit)
        return charts.line_chart(
            {
                "training loss": [row.get("loss") for row in evaluated] + pad,
                "validation loss": [row.get("val_loss") for row in evaluated] + pad,
                "refit on every event": [None] * len(evaluated) + [row.get("loss") for row in refit],
            },
            title=f"Loss per epoch, version {obj.pk} (stage.epoch; R: the refit that ships)",
            x_label="stage.epoch",
            x_labels=labels,
            marks=marks,
        )

    @admin.display(description="training stages")
    def stages(self, obj: ModelVersion) -> str:
        """How each stage ended: kept, or rejected with the weights from before it restored."""
        records = (obj.metrics or {}).get("stages") or []
        if not records:
            return "-"
        lines = []
        for record in records:
            if record.get("best_val_loss") is not None:
                best = f"best validation loss {record['best_val_loss']:.4f} at epoch {record['best_epoch']} of {record['epochs_run']}"
            elif not record["kept"]:
                best = f"{record['epochs_run']} epochs, validation loss diverged"
            else:
                best = f"{record['epochs_run']} epochs, no validation slice"
            verdict = (
                "kept"
                if record["kept"]
                else "rejected: it did not improve validation loss, so the weights from before it were restored"
            )
            lines.append((f"Stage {record['stage']} ({record.get('name', '')})", f"{best}; {verdict}."))
        if not (obj.metrics or {}).get("learned_mlp", True):
            lines.append(
                (
                    "So",
                    "this version's MLP and embeddings are untrained: it ranks with popularity, repeats and the item-item priors.",
                )
            )
        if (obj.metrics or {}).get("refit"):
            lines.append(
                (
                    "Shipped",
                    "refit on every event (holdout included) for the epochs chosen above; the holdout figures are those of the evaluated fit.",
                )
            )
        return format_html("<ul>{}</ul>", format_html_join("", "<li><strong>{}</strong>: {}</li>", lines))

    @admin.display(description="against the version serving then")
    def comparison(self, obj: ModelVersion) -> str:
        """Both versions' promotion metric on the same holdout cases."""
        name = app_settings.PROMOTION_METRIC
        found = obj.comparison(name)
        if not found:
            return "No version was serving (or it could not be scored) when this one was evaluated."

        def shown(value: float | None) -> str:
            return "-" if value is None else f"{value:.4f}"

        return format_html(
            "{} on the same {} holdout cases (those after the events v{} was fitted on): this version {}, v{} {}.",
            name,
            found["n_cases"],
            found["version"],
            shown(found["candidate"]),
            found["version"],
            shown(found["active"]),
        )

    @admin.display(description="metrics vs baselines")
    def metrics_chart(self, obj: ModelVersion) -> str:
        variants = (obj.metrics or {}).get("variants", {})
        k = (obj.metrics or {}).get("k", app_settings.EVALUATION_K)
        groups = {
            f"{variant}: {metric}@{k}": {
                name: values.get(f"{metric}@{k}") for name, values in data.get("models", {}).items()
            }
            for variant, data in variants.items()
            for metric in ("mrr", "hr")
        }
        return charts.bar_chart(
            groups, title="Holdout metrics (later data)", highlight=(obj.metrics or {}).get("model", "")
        )

    @admin.display(description="sample recommendations")
    def sample_recommendations(self, obj: ModelVersion) -> str:
        """What this version recommends to the shoppers active last (scores and reasons)."""
        if not obj.artifact_path:
            return "-"
        try:
            model = loader.load_version(obj)
        except (ArtifactError, ImportError) as exc:
            return f"Cannot load this version: {exc}"
        blocks = []
        shoppers = insights.recent_shoppers(3)
        names = shopper_names(shoppers)
        for shopper in shoppers:
            recent = list(reversed(history.recent_events(shopper)))[:3]
            result = services.for_you(shopper, limit=5, model=model)
            blocks.append(
                format_html(
                    "<p><strong>{}</strong> (latest: {}) → <em>{}</em></p><ol>{}</ol>",
                    names[shopper.key],
                    "; ".join(event_label(e) for e in recent) or "nothing",
                    result.source,
                    format_html_join(
                        "",
                        "<li>{} — {} (score {})</li>",
                        ((r.display.get("name"), r.reason, score_text(r.score)) for r in result),
                    ),
                )
            )
        return format_html_join("", "{}", ((block,) for block in blocks)) or "No shopper activity yet."

    @admin.display(description="click-through (impressions → clicks)")
    def click_through(self, obj: ModelVersion) -> str:
        rows = insights.click_through(model_version=obj.pk)
        if not rows:
            return "No carousel shown with this version yet."
        return format_html(
            "<table><tr><th>list</th><th>impressions</th><th>clicks</th><th>CTR</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (r.scenario, r.impressions, r.clicks, f"{r.rate:.1%}" if r.rate is not None else "-")
                    for r in rows
                ),
            ),
        )

    @admin.display(description="click-through on logged traffic (off-policy)")
    def off_policy(self, obj: ModelVersion) -> str:
        found = (obj.metrics or {}).get("off_policy")
        if not found:
            return (
                "Not estimated yet: select the version in the list and run "
                "“Estimate click-through on logged traffic”."
            )
        if not found.get("lists"):
            return f"No logged “for you” list this version could score ({found.get('skipped', 0):,} skipped)."
        rows = [
            (name, f"{found[key]['value']:.4f}", f"{found[key]['low']:.4f} to {found[key]['high']:.4f}")
            for key, name in (("ips", "IPS"), ("snips", "self-normalized IPS"), ("dr", "doubly robust"))
        ]
        return format_html(
            "<table><tr><th>estimator</th><th>clicks per list</th><th>95 % interval</th></tr>{}"
            "<tr><td>served (logged)</td><td>{}</td><td>-</td></tr></table>"
            "<p>{} logged lists of the last {} days ({} explored), {} places where this version shows what "
            "was shown, {:,.0f} effective lists; {} lists skipped (no event this version knows). Offline "
            "holdout figures are above; these are estimates of what shoppers would have clicked.</p>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
            f"{found['logged']:.4f}",
            f"{found['lists']:,}",
            found.get("days", "-"),
            f"{100 * found.get('explored_share', 0):.0f} %",
            f"{found['matched']:,}",
            found["effective_lists"],
            f"{found.get('skipped', 0):,}",
        )

    @admin.action(description="Estimate click-through on logged traffic (off-policy)")
    def estimate_on_traffic(self, request: HttpRequest, queryset) -> None:
        """Queue the estimate (a scoring per logged list belongs in a worker, as a retrain does)."""
        try:
            from . import tasks  # the celery extra: only this action needs it
        except ImportError as exc:
            messages.error(request, f"Cannot queue the estimate: {exc}")
            return
        versions = [version.pk for version in queryset[:3]]
        for pk in versions:
            transaction.on_commit(lambda pk=pk: tasks.send(tasks.estimate_off_policy, pk))
        messages.success(
            request,
            f"Estimating version(s) {', '.join(map(str, versions))} on logged traffic; "
            "each version's page shows the result when it is done.",
        )

    @admin.action(description="Activate if better on logged traffic (off-policy)")
    def promote_on_traffic(self, request: HttpRequest, queryset) -> None:
        if queryset.count() != 1:
            messages.error(request, "Select exactly one version.")
            return
        try:
            promoted, note = registry.promote_on_traffic(queryset.get())
        except ValueError as exc:
            messages.error(request, str(exc))
            return
        (messages.success if promoted else messages.warning)(request, note)

    @admin.display(description="all metrics")
    def metrics_table(self, obj: ModelVersion) -> str:
        variants = (obj.metrics or {}).get("variants", {})
        rows = [
            (variant, name, *("-" if v is None else f"{v:.4f}" for v in values.values()))
            for variant, data in variants.items()
            for name, values in data.get("models", {}).items()
        ]
        if not rows:
            return "-"
        columns = next(iter(next(iter(variants.values()))["models"].values())).keys()
        cell = "<td>{}</td>" * (len(rows[0]))
        return format_html(
            "<table><tr><th>variant</th><th>model</th>{}</tr>{}</table>",
            format_html_join("", "<th>{}</th>", ((c,) for c in columns)),
            format_html_join("", "<tr>" + cell + "</tr>", rows),
        )


@admin.register(SearchQuery)
class SearchQueryAdmin(ReadOnlyAdmin):
    """What the suggestions are made of (rebuilt from the events; read-only here), whether
    each is suggested and why not; "Never suggest" blocks a query across rebuilds."""

    list_display = (
        "text",
        "source",
        "score_shown",
        "searches",
        "shoppers",
        "success_shown",
        "zero_results",
        "suggested",
    )
    list_filter = ("source", "found_nothing")
    search_fields = ("key",)
    actions = ("block_queries",)
    readonly_fields = ("key", "text", "source", "score", "searches", "shoppers", "successes", "zero_results",
                       "found_nothing", "last_searched", "categories", "related", "suggested")  # fmt: skip

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        self._blocked = frozenset(BlockedQuery.objects.values_list("key", flat=True))
        return super().changelist_view(request, extra_context)

    @admin.display(description="suggested")
    def suggested(self, obj: SearchQuery) -> str:
        blocked = getattr(self, "_blocked", None)
        if blocked is None:
            blocked = frozenset(BlockedQuery.objects.filter(key=obj.key).values_list("key", flat=True))
        reason = why_not_suggested(obj, blocked)
        return "yes" if reason is None else f"no: {reason}"

    @admin.action(description="Never suggest the selected queries", permissions=("change",))
    def block_queries(self, request: HttpRequest, queryset) -> None:
        rows = [BlockedQuery(key=key, text=text) for key, text in queryset.values_list("key", "text")]
        BlockedQuery.objects.bulk_create(rows, ignore_conflicts=True)
        publish_suggestions()
        messages.success(
            request,
            ngettext("%(n)d query will not be suggested.", "%(n)d queries will not be suggested.", len(rows))
            % {"n": len(rows)},
        )

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # The rows stay read-only (no change form saves them); "change" allows blocking.
        return obj is None and request.user.has_perm("recommendations.add_blockedquery")

    @admin.display(description="score", ordering="score")
    def score_shown(self, obj: SearchQuery) -> str:
        return f"{obj.score:.3f}"

    @admin.display(description="success rate")
    def success_shown(self, obj: SearchQuery) -> str:
        rate = obj.success_rate
        return "-" if rate is None else f"{rate:.0%}"


@admin.register(BlockedQuery)
class BlockedQueryAdmin(admin.ModelAdmin):
    """Queries never suggested; delete one to allow it again (the index reloads either way)."""

    list_display = ("text", "key", "blocked_at")
    search_fields = ("key",)
    readonly_fields = ("key", "text", "blocked_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: BlockedQuery) -> None:
        super().delete_model(request, obj)
        publish_suggestions()

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        super().delete_queryset(request, queryset)
        publish_suggestions()


@admin.register(SearchWithoutResults)
class SearchWithoutResultsAdmin(ReadOnlyAdmin):
    """Searches that found nothing, most frequent first: add products, synonyms or redirects."""

    list_display = ("text", "zero_results", "searches", "found_nothing", "last_searched")
    search_fields = ("key",)

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).filter(zero_results__gt=0)


admin.site.register(Experiment, ExperimentAdmin)  # experiment_admin.py: A/B tests have their own module
