"""Pages of the app a shop includes: ``path("recommendations/", include("recommendations.urls"))``."""

from django.urls import path

from .capture import clicks

app_name = "recommendations"

urlpatterns = [
    path("click/<str:token>/", clicks.click, name="click"),
]
