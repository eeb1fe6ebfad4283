"""URLs of the demo: the shop, accounts, the admin, and the recommendations app's API and links."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("shop.urls_accounts")),
    path("api/", include("recommendations.api.urls")),
    path("recommendations/", include("recommendations.urls")),
    path("", include("shop.urls")),
]
