"""The demo's URLs plus ``/bench/trivial/``: a DRF view that returns a fixed list (the baseline),
and ``/bench/for-you-unrecorded/``: the for-you API without its impression, to time what
recording the impression costs side by side with the real endpoint."""

from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from recommendations.api.views import ForYouView

FIXED = {
    "scenario": "trivial",
    "source": "fixed",
    "model_version": None,
    "items": [
        {"item_id": str(i), "name": f"Item {i}", "score": 1.0 / i, "reason": "fixed"} for i in range(1, 11)
    ],
}


class TrivialView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        return Response(FIXED)


class UnrecordedForYouView(ForYouView):
    def record_impression(self, *args, **kwargs):
        pass


urlpatterns = [
    path("bench/trivial/", TrivialView.as_view()),
    path("bench/for-you-unrecorded/", UnrecordedForYouView.as_view()),
    path("", include("config.urls")),
]
