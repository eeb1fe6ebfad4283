"""``path("api/", include("recommendations.api.urls"))``: v1 endpoints, schema and Swagger UI."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import views

app_name = "recommendations-api"

urlpatterns = [
    path("v1/recommendations/for-you/", views.ForYouView.as_view(), name="for-you"),
    path("v1/recommendations/trending/", views.TrendingView.as_view(), name="trending"),
    path("v1/recommendations/recently-viewed/", views.RecentlyViewedView.as_view(), name="recently-viewed"),
    path("v1/recommendations/similar/<str:item_id>/", views.SimilarView.as_view(), name="similar"),
    path(
        "v1/recommendations/bought-together/<str:item_id>/",
        views.BoughtTogetherView.as_view(),
        name="bought-together",
    ),
    path("v1/events/", views.EventBatchView.as_view(), name="events"),
    path("v1/devices/", views.DeviceView.as_view(), name="devices"),
    path("v1/devices/link/", views.DeviceLinkView.as_view(), name="device-link"),
    path("search/suggest/", views.SuggestionsView.as_view(), name="suggest"),
    path("search/related/", views.RelatedSearchesView.as_view(), name="related-searches"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="recommendations-api:schema"), name="docs"),
    re_path(r"^", views.unknown_endpoint),  # last: every other API path is a JSON 404
]
