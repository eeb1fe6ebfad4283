"""Admin: a read-only, fast view of the event log.

The log is append-only and can be large: no add/change/delete, no full COUNT(*) on every
page, exact-match searches that use the indexes, and the user joined in the same query.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from .models import Event, VisitorLink


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = (
        "timestamp",
        "event_type",
        "shopper",
        "item_id",
        "category_id",
        "query",
        "result_count",
        "source",
    )
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

    @admin.display(description="shopper")
    def shopper(self, obj: Event) -> str:
        if obj.user_id:
            return obj.user.get_username()
        if obj.external_user_id:
            return f"imported user {obj.external_user_id}"
        return f"visitor {obj.session_key[:8]}" if obj.session_key else "-"


@admin.register(VisitorLink)
class VisitorLinkAdmin(ReadOnlyAdmin):
    list_display = ("session_key", "user", "linked_at")
    list_select_related = ("user",)
    search_fields = ("=session_key", "=user__username")
