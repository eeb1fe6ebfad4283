"""URLs of the demo: the shop, accounts, the admin, and the recommendations app's API and links."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    # Browsers ask every site for /favicon.ico, admin pages included.
    path("favicon.ico", RedirectView.as_view(url=static("shop/favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("accounts/", include("shop.urls_accounts")),
    path("api/", include("recommendations.api.urls")),
    path("recommendations/", include("recommendations.urls")),
    path("", include("shop.urls")),
]
