"""Admin of the shop: the catalogue, and orders with their lines."""

from django.contrib import admin

from .models import Category, Order, OrderLine, Product


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "parent")
    list_filter = (("parent", admin.RelatedOnlyFieldListFilter),)
    list_select_related = ("parent",)
    search_fields = ("name", "slug")


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "brand", "category", "price", "stock", "is_active")
    list_editable = ("is_active",)
    list_filter = ("is_active", ("category", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("category__parent",)
    search_fields = ("=id", "name", "brand", "category__slug")
    autocomplete_fields = ("category",)
    readonly_fields = ("created",)


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    autocomplete_fields = ("product",)


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "created", "user", "email", "total")
    list_select_related = ("user",)
    search_fields = ("=id", "email", "user__username")
    date_hierarchy = "created"
    readonly_fields = ("created",)
    inlines = (OrderLineInline,)
