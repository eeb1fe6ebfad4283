"""Admin of A/B tests: create a draft with its arms, plan it, start it, read it, stop it.

Start, stop and "compute now" are POST-only buttons (staff with change permission, CSRF
checked by ``admin_view``). A draft's arms are edited inline; once started, nothing that
would change the meaning of its figures (arms, shares, lists, metric) can be edited.
Registered from ``admin.py``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from . import charts
from .lifecycle import experiments, outcomes
from .models import Arm, Experiment

#: Fields fixed once an experiment starts (its figures mean what they meant at the start).
FIXED_AT_START = (
    "name", "scenarios", "primary_metric", "minimum_detectable_effect", "alpha", "power", "attribution_hours",
)  # fmt: skip


class ExperimentForm(forms.ModelForm):
    scenarios = forms.MultipleChoiceField(
        choices=[(s, s.replace("_", " ")) for s in Experiment.SCENARIOS],
        widget=forms.CheckboxSelectMultiple,
        help_text="The lists whose items the arms choose.",
    )

    class Meta:
        model = Experiment
        fields = (
            "name", "description", "scenarios", "primary_metric", "minimum_detectable_effect", "alpha", "power",
            "attribution_hours", "auto_promote", "stop_for_harm",
        )  # fmt: skip

    def clean_minimum_detectable_effect(self) -> float:
        value = self.cleaned_data["minimum_detectable_effect"]
        if not 0.001 <= value <= 10:
            raise forms.ValidationError("Give a relative change between 0.001 (0.1 %) and 10 (1,000 %).")
        return value

    def clean_alpha(self) -> float:
        value = self.cleaned_data["alpha"]
        if not 0.0001 <= value <= 0.2:
            raise forms.ValidationError("Between 0.0001 and 0.2 (0.05 is usual).")
        return value

    def clean_power(self) -> float:
        value = self.cleaned_data["power"]
        if not 0.5 <= value < 1:
            raise forms.ValidationError("At least 0.5 and below 1 (0.8 is usual).")
        return value


class ArmInline(admin.TabularInline):
    model = Arm
    extra = 0
    min_num = 2
    fields = ("name", "is_control", "share", "strategy", "model_version")

    def _editable(self, obj: Experiment | None) -> bool:
        return obj is None or obj.status == Experiment.Status.DRAFT

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._editable(obj) and super().has_delete_permission(request, obj)


class ExperimentAdmin(admin.ModelAdmin):
    form = ExperimentForm
    inlines = (ArmInline,)
    list_display = ("name", "status", "lists", "arms_summary", "reading")
    list_filter = ("status",)
    change_form_template = "admin/recommendations/experiment/change_form.html"
    readonly_fields = (
        "status",
        "started_at",
        "stopped_at",
        "stop_reason",
        "verdict_text",
        "figures",
        "chart",
        "plan_text",
    )

    def get_fieldsets(self, request: HttpRequest, obj: Experiment | None = None) -> list:
        settings = (
            "name", "description", "scenarios", "primary_metric", "minimum_detectable_effect", "alpha", "power",
            "attribution_hours", "auto_promote", "stop_for_harm",
        )  # fmt: skip
        if obj is None:
            return [(None, {"fields": settings})]
        return [
            ("Reading", {"fields": ("status", "verdict_text", "figures", "chart", "plan_text")}),
            ("Settings", {"fields": settings}),
            ("Dates", {"fields": ("started_at", "stopped_at", "stop_reason")}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Experiment | None = None) -> tuple:
        fixed = FIXED_AT_START if obj is not None and obj.status != Experiment.Status.DRAFT else ()
        return (*self.readonly_fields, *fixed)

    def get_urls(self) -> list:
        def view(method):
            return self.admin_site.admin_view(require_POST(method))

        return [
            path("<int:pk>/start/", view(self.start_view), name="recommendations_experiment_start"),
            path("<int:pk>/stop/", view(self.stop_view), name="recommendations_experiment_stop"),
            path("<int:pk>/compute/", view(self.compute_view), name="recommendations_experiment_compute"),
            *super().get_urls(),
        ]

    def _act(self, request: HttpRequest, pk: int, action: Any, done: str) -> HttpResponse:
        experiment = get_object_or_404(Experiment, pk=pk)
        page = reverse("admin:recommendations_experiment_change", args=[pk])
        if not self.has_change_permission(request, experiment):
            messages.error(request, "You may not change experiments.")
            return HttpResponseRedirect(page)
        try:
            action(experiment)
        except experiments.ExperimentError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, done)
        return HttpResponseRedirect(page)

    def start_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._act(
            request, pk, experiments.start, "Started: shoppers are assigned to its arms from now on."
        )

    def stop_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        user = request.user.get_username()
        return self._act(
            request,
            pk,
            lambda e: experiments.stop(e, f"stopped by {user}"),
            "Stopped: every shopper is served the active version again.",
        )

    def compute_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._act(request, pk, experiments.update, "Today's figures were computed.")

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        experiment = self.get_object(request, object_id)
        extra = {**(extra_context or {})}
        if experiment is not None:
            extra["experiment"] = experiment
            extra["start_problems"] = (
                experiments.problems(experiment) if experiment.status == Experiment.Status.DRAFT else []
            )
        return super().change_view(request, object_id, form_url, extra)

    # --- columns and read-only fields ---------------------------------------------------------

    @admin.display(description="lists")
    def lists(self, obj: Experiment) -> str:
        return ", ".join(s.replace("_", " ") for s in obj.scenarios or []) or "-"

    @admin.display(description="arms")
    def arms_summary(self, obj: Experiment) -> str:
        return " · ".join(f"{arm.name} {arm.share} %: {arm.serves}" for arm in obj.arms.all()) or "-"

    @admin.display(description="reading")
    def reading(self, obj: Experiment) -> str:
        text = obj.verdict or "-"
        return text if len(text) <= 90 else text[:89] + "…"

    @admin.display(description="verdict")
    def verdict_text(self, obj: Experiment) -> str:
        if obj.status == Experiment.Status.DRAFT:
            return "Not started."
        latest = obj.results.order_by("-day").first()
        ratio = (latest.analysis.get("sample_ratio") or {}) if latest else {}
        if ratio.get("mismatch"):
            return format_html('<strong style="color:#b91c1c">⚠ {}</strong>', obj.verdict)
        return (
            obj.verdict or "Not computed yet (the outcomes task runs hourly; “Compute now” runs it at once)."
        )

    @admin.display(description="figures per arm (since the start)")
    def figures(self, obj: Experiment) -> str:
        latest = obj.results.order_by("-day").first()
        if latest is None:
            return "-"
        comparisons = latest.analysis.get("comparisons", {})
        rows = []
        for arm in obj.arms.all():
            data = latest.arms.get(arm.name, {})
            lists = data.get("lists", 0)
            found = comparisons.get(arm.name, {}).get(obj.primary_metric)

            def rate(count: float, lists: int = lists) -> str:
                return f"{100 * count / lists:.2f} %" if lists else "-"

            versus = "control" if arm.is_control else "-"
            if found is not None:
                unit = 1 if obj.primary_metric == "revenue_per_mille" else 100
                suffix = "" if unit == 1 else " pts"
                bounded = unit == 1 or found["high"] - found["low"] <= 2.0
                interval = (
                    f"{unit * found['low']:+.2f} to {unit * found['high']:+.2f}"
                    if bounded
                    else "not bounded yet"
                )
                versus = f"{unit * found['difference']:+.2f}{suffix} ({interval}; p {found['p_value']:.3f})"
            revenue = data.get("revenue", 0.0)
            rows.append(
                (
                    f"{arm.name}{' (control)' if arm.is_control else ''}",
                    arm.serves,
                    f"{data.get('shoppers', 0):,}",
                    f"{lists:,}",
                    rate(data.get("clicks", 0)),
                    rate(data.get("carts", 0)),
                    rate(data.get("purchases", 0)),
                    f"{1000 * revenue / lists:,.2f}" if lists else "-",
                    versus,
                )
            )
        head = (
            "arm", "serves", "shoppers", "lists shown", "click-through", "add to cart", "purchase",
            "revenue / 1000 lists", f"{outcomes.NAMES[obj.primary_metric]} vs control (always-valid interval)",
        )  # fmt: skip
        return format_html(
            '<div style="overflow-x:auto;max-width:100%"><table><tr>{}</tr>{}</table></div><p>As of {}.</p>',
            format_html_join("", "<th>{}</th>", ((h,) for h in head)),
            format_html_join("", "<tr>" + "<td>{}</td>" * len(head) + "</tr>", rows),
            timezone.localtime(latest.computed_at).strftime("%Y-%m-%d %H:%M"),
        )

    @admin.display(description="over time")
    def chart(self, obj: Experiment) -> str:
        results = list(obj.results.order_by("day"))
        if len(results) < 2:
            return "The chart starts on the second day."
        metric = obj.primary_metric
        series = {}
        for arm in obj.arms.all():
            values = []
            for result in results:
                sums = result.arms.get(arm.name, {}).get("sums", {}).get(metric)
                values.append(sums["y"] / sums["n"] if sums and sums["n"] else None)
            series[arm.name] = values
        return charts.line_chart(
            series,
            title=f"{outcomes.NAMES[metric]} per arm, cumulative",
            x_label="day",
            x_labels=[result.day.strftime("%m-%d") for result in results],
        )

    @admin.display(description="plan")
    def plan_text(self, obj: Experiment) -> str:
        # A draft plans from the shop's recent traffic; a started test from its control so far.
        if obj.status == Experiment.Status.DRAFT:
            plan = outcomes.plan(obj)
        else:
            latest = obj.results.order_by("-day").first()
            plan = latest.analysis.get("plan") if latest else None
        if not plan:
            return (
                "No shown lists to plan from yet: the plan appears once the shop has traffic on these lists."
            )
        days = f", about {plan['days']:.1f} days at the shop's recent pace" if plan.get("days") else ""
        return (
            f"To find a change of {100 * obj.minimum_detectable_effect:.0f} % in {outcomes.NAMES[obj.primary_metric]} "
            f"with {100 * obj.power:.0f} % power: {plan['shoppers']:,} shoppers in all{days}. "
            f"(A test read only once, at its end, would need {plan['fixed_horizon_shoppers']:,}; this one may be read "
            "every day.)"
        )
