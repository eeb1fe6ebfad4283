"""API views: recommendation lists for the caller only, and the app's event batches.

Who is asking: the signed-in user (session or token), else the anonymous device named by
the ``X-Device-Id`` header, else the browser session's visitor. There is no parameter
to name another shopper, so nobody can read anyone else's recommendations. Lists are
cached per shopper for ``RESPONSE_CACHE_SECONDS``; the key holds the shopper's event
generation and the model version, so a new event or a new model is seen at once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from typing import Any

from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, ParseError, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..capture.ingress import accept, impression_fields
from ..capture.receivers import link_visitor
from ..conf import app_settings
from ..identity import Shopper, device_visitor, issue_device_id, user_id_of, valid_device_id
from ..serving import history, services
from ..serving.loader import active_model
from ..suggest import services as suggest
from .serializers import (
    DeviceLinkSerializer,
    DeviceSerializer,
    ErrorSerializer,
    EventBatchResultSerializer,
    EventBatchSerializer,
    LimitQuerySerializer,
    ListQuerySerializer,
    RecommendationListSerializer,
    SuggestionListSerializer,
    SuggestQuerySerializer,
    max_body_bytes,
)
from .throttling import DevicesRateThrottle, EventsRateThrottle, SuggestRateThrottle

logger = logging.getLogger(__name__)

DEVICE_HEADER = "X-Device-Id"
DEVICE_PARAMETER = OpenApiParameter(
    DEVICE_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    pattern=r"^[A-Za-z0-9_-]{22}:[A-Za-z0-9_-]{20,64}$",
    description="Anonymous app install id, as issued by POST /api/v1/devices/ (used when not signed in).",
)
ITEM_PARAMETER = OpenApiParameter("item_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Item id.")
CACHE_PREFIX = "recommendations:api:"
BAD_REQUEST = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description='What is wrong, by field (`{"limit": ["…"]}`), or `{"detail": "…"}`.',
)


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


class SafeJSONParser(JSONParser):
    """JSON, with absurdly deep nesting answered by a 400 instead of a crash."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None


class JSONErrorsMixin:
    """A body over Django's DATA_UPLOAD_MAX_MEMORY_SIZE is a JSON 413, not Django's HTML 400."""

    def handle_exception(self, exc):
        if isinstance(exc, RequestDataTooBig):
            exc = PayloadTooLarge()
        return super().handle_exception(exc)


def unknown_endpoint(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any other path under the API: a JSON 404 like every API error, never the site's HTML page."""
    return JsonResponse({"detail": "No such API endpoint; see /api/docs/."}, status=404)


def shopper_of(request: Request) -> Shopper:
    """The caller as a shopper; a malformed device id is a 400."""
    device = request.headers.get(DEVICE_HEADER)
    if device is not None and not valid_device_id(device):
        raise ValidationError(
            {
                DEVICE_HEADER: "Not a device id of this shop: ask POST /api/v1/devices/ for one, once per install."
            }
        )
    return Shopper.from_device(request, user_id_of(request), device)


def refuse_empty_limit(request: Request) -> None:
    """``?limit=`` is an error here: a form would read "not given", an API says what is wrong."""
    if request.query_params.get("limit") == "":
        raise ValidationError({"limit": ["A valid integer is required."]})


@functools.cache
def list_serializer() -> RecommendationListSerializer:
    """One per process: a serializer deep-copies its declared fields each time one is made
    (a tenth of a list request), and writing data out changes nothing in it."""
    return RecommendationListSerializer()


class RecommendationView(JSONErrorsMixin, APIView):
    """GET a list of one scenario for the caller."""

    permission_classes = [AllowAny]
    scenario = ""
    needs_item = False

    def get(self, request: Request, item_id: str | None = None) -> Response:
        refuse_empty_limit(request)
        query = ListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        shopper = shopper_of(request)
        limit = query.validated_data.get("limit")
        category = query.validated_data.get("category") or None
        key = None
        seconds = app_settings.RESPONSE_CACHE_SECONDS
        if seconds and shopper.is_known:
            model = active_model()
            parts = [
                self.scenario,
                shopper.key,
                item_id or "",
                limit or "",
                category or "",
                history.generation(shopper),
                model.version_id if model is not None else 0,
            ]
            key = CACHE_PREFIX + hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()
            cached = cache.get(key)
            if cached is not None:
                return Response(cached)
        try:
            if self.scenario == "recently_viewed":
                result = services.recently_viewed(shopper, limit)
            else:
                result = services.recommend(
                    self.scenario, shopper, item=item_id, limit=limit, category=category
                )
        except services.UnknownItem as exc:
            raise NotFound(str(exc)) from None
        if result:
            self.record_impression(request, shopper, result, item_id)
        data = list_serializer().to_representation(
            {
                "scenario": result.scenario,
                "source": result.source,
                "model_version": result.model_version,
                "experiment_id": result.experiment_id,
                "arm": result.arm,
                "list_id": result.list_id,
                "items": [
                    {
                        "item_id": r.item_id,
                        "name": r.display.get("name", ""),
                        "url": r.display.get("url", ""),
                        "price": r.display.get("price"),
                        "image_url": r.display.get("image_url", ""),
                        "score": r.score,
                        "reason": r.reason,
                        "sponsored": r.sponsored,
                        "viewed_at": r.viewed_at,
                    }
                    for r in result
                ],
            }
        )
        if key is not None:
            cache.set(key, data, seconds)
        return Response(data)

    def record_impression(
        self, request: Request, shopper: Shopper, result: services.RecommendationList, item_id: str | None
    ) -> None:
        """The list was shown: one impression, as a carousel records it (fails open). A response
        served again from the cache is the same showing and records nothing more."""
        about = item_id if result.scenario in ("similar", "bought_together") else None
        try:
            accept(
                request,
                [{"event": "impression", "item": about, **impression_fields(result)}],
                shopper=shopper,
                source="api",
            )
        except Exception:
            logger.exception("Could not record the impression of a %r list.", result.scenario)


def _list_schema(summary: str, with_item: bool = False, with_category: bool = False):
    parameters: list[Any] = [DEVICE_PARAMETER, ListQuerySerializer if with_category else LimitQuerySerializer]
    if with_item:
        parameters.append(ITEM_PARAMETER)
    responses: dict[int, Any] = {200: RecommendationListSerializer, 400: BAD_REQUEST}
    if with_item:
        responses[404] = ErrorSerializer
    return extend_schema(summary=summary, parameters=parameters, responses=responses)


class ForYouView(RecommendationView):
    scenario = "for_you"

    @_list_schema(
        "Recommended for the caller, from what they did (a second ago included)", with_category=True
    )
    def get(self, request, item_id=None):
        return super().get(request)


class TrendingView(RecommendationView):
    scenario = "trending"

    @_list_schema("Trending items (time-decayed popularity)", with_category=True)
    def get(self, request, item_id=None):
        return super().get(request)


class RecentlyViewedView(RecommendationView):
    scenario = "recently_viewed"

    @_list_schema("The caller's recently viewed items")
    def get(self, request, item_id=None):
        return super().get(request)


class SimilarView(RecommendationView):
    scenario = "similar"

    @_list_schema("Items similar to an item", with_item=True)
    def get(self, request, item_id=None):
        return super().get(request, item_id)


class BoughtTogetherView(RecommendationView):
    scenario = "bought_together"

    @_list_schema("Items often bought with an item", with_item=True)
    def get(self, request, item_id=None):
        return super().get(request, item_id)


class EventBatchView(JSONErrorsMixin, APIView):
    """POST a batch of the app's events (idempotent by ``client_event_id``)."""

    permission_classes = [AllowAny]
    throttle_classes = [EventsRateThrottle]
    parser_classes = [SafeJSONParser]

    @extend_schema(
        summary="Record a batch of events from the app",
        parameters=[DEVICE_PARAMETER],
        request=EventBatchSerializer,
        responses={202: EventBatchResultSerializer, 400: BAD_REQUEST, 429: BAD_REQUEST},
    )
    def post(self, request: Request) -> Response:
        limit = max_body_bytes()
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:  # refused before the body is read
            raise PayloadTooLarge(
                f"At most {limit} bytes per request ({app_settings.API_MAX_BATCH_EVENTS} events)."
            )
        data = request.data
        if not isinstance(data, dict):
            raise ValidationError({"events": 'Send a JSON object: {"events": [...]}.'})
        events = data.get("events")
        limit = app_settings.API_MAX_BATCH_EVENTS
        if isinstance(events, list) and len(events) > limit:  # refused before validating each one
            raise ValidationError(
                {"events": f"At most {limit} events per request; send the rest in another."}
            )
        batch = EventBatchSerializer(data=data)
        batch.is_valid(raise_exception=True)
        shopper = shopper_of(request)
        if shopper.user_id is None and not shopper.visitor:
            raise ValidationError({DEVICE_HEADER: "Sign in, or send the app's device id in this header."})
        events = [
            {
                "event": event["event"],
                "item": event.get("item_id") or None,
                "category": event.get("category_id") or None,
                "query": event.get("query", ""),
                "result_count": event.get("result_count"),
                "price": event.get("price"),
                "quantity": event.get("quantity"),
                "timestamp": event.get("timestamp"),
                "client_event_id": event["client_event_id"],
                "scenario": event.get("scenario", ""),
                "model_version": event.get("model_version"),
                "list_id": event.get("list_id", ""),
                "position": event.get("position"),
            }
            for event in batch.validated_data["events"]
        ]
        try:
            accepted = accept(request, events, shopper=shopper, source="api", from_client=True)
        except ValueError as exc:
            raise ValidationError({"events": str(exc)}) from None
        return Response(
            {"accepted": accepted or 0, "tracked": accepted is not None}, status=status.HTTP_202_ACCEPTED
        )


class DeviceView(JSONErrorsMixin, APIView):
    """POST: a new app install's device id (once per install; send it as ``X-Device-Id``)."""

    permission_classes = [AllowAny]
    throttle_classes = [DevicesRateThrottle]

    @extend_schema(
        summary="A device id for a new app install (send it back as X-Device-Id)",
        request=None,
        responses={201: DeviceSerializer, 429: BAD_REQUEST},
    )
    def post(self, request: Request) -> Response:
        return Response({"device_id": issue_device_id()}, status=status.HTTP_201_CREATED)


class DeviceLinkView(JSONErrorsMixin, APIView):
    """POST, signed in: this device's anonymous history becomes the user's (the app just signed in)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Link the app install's anonymous history to the signed-in user",
        parameters=[DEVICE_PARAMETER],
        request=None,
        responses={200: DeviceLinkSerializer, 400: BAD_REQUEST, 403: BAD_REQUEST},
    )
    def post(self, request: Request) -> Response:
        visitor = device_visitor(request.headers.get(DEVICE_HEADER))
        if visitor is None:
            raise ValidationError({DEVICE_HEADER: "Send the device id this shop issued to this install."})
        moved = link_visitor(visitor, request.user)
        return Response({"linked_events": moved})


class SuggestView(JSONErrorsMixin, APIView):
    """GET completions of what the caller has typed, personalized for them."""

    permission_classes = [AllowAny]
    throttle_classes = [SuggestRateThrottle]
    related = False

    def get(self, request: Request) -> Response:
        refuse_empty_limit(request)
        query = SuggestQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        text, limit = query.validated_data["q"], query.validated_data.get("limit")
        try:
            if self.related:
                found = suggest.related(text, limit)
            else:
                found = suggest.suggest(shopper_of(request), text, limit)
        except ValueError as exc:
            raise ValidationError({"q": [str(exc)]}) from None
        return Response(
            SuggestionListSerializer({"query": text, "suggestions": [s.__dict__ for s in found]}).data
        )


class SuggestionsView(SuggestView):
    @extend_schema(
        summary="Search suggestions for what the caller has typed (popular, and theirs first)",
        parameters=[DEVICE_PARAMETER, SuggestQuerySerializer],
        responses={200: SuggestionListSerializer, 400: BAD_REQUEST, 429: BAD_REQUEST},
    )
    def get(self, request):
        return super().get(request)


class RelatedSearchesView(SuggestView):
    related = True

    @extend_schema(
        summary="Searches shoppers made next after this one",
        parameters=[SuggestQuerySerializer],
        responses={200: SuggestionListSerializer, 400: BAD_REQUEST, 429: BAD_REQUEST},
    )
    def get(self, request):
        return super().get(request)
