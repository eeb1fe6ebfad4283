"""The demo's URLs plus ``/bench/trivial/``: a DRF view that returns a fixed list (the baseline);
``/bench/bare/``: the same view doing the bare bound of scoring first (one matrix-vector product
over the active model's item table and ``argpartition``), the ceiling of any endpoint that
scores every item; and ``/bench/for-you-unrecorded/``: the for-you API without its impression,
to time what recording the impression costs side by side with the real endpoint."""

import random

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


#: Random user vectors of each width, for the bare bound.
USERS: dict = {}


class BareBoundView(TrivialView):
    def get(self, request):
        from bench.common import bare_bound, bare_users
        from recommendations.serving.loader import active_model

        table = active_model().tower.item_table
        users = USERS.get(table.shape[1])
        if users is None:  # drawn once per process, not per request
            users = USERS[table.shape[1]] = bare_users(64, table.shape[1])
        bare_bound(users[random.randrange(len(users))], table)
        return super().get(request)


class UnrecordedForYouView(ForYouView):
    def record_impression(self, *args, **kwargs):
        pass


urlpatterns = [
    path("bench/trivial/", TrivialView.as_view()),
    path("bench/bare/", BareBoundView.as_view()),
    path("bench/for-you-unrecorded/", UnrecordedForYouView.as_view()),
    path("", include("config.urls")),
]
