"""URLs of the demo: the shop, accounts and the admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("shop.urls_accounts")),
    path("", include("shop.urls")),
]
