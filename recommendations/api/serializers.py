"""What the API accepts and returns; validation errors become 400s with field messages."""

from __future__ import annotations

from rest_framework import serializers

from ..conf import app_settings
from ..models import ITEM_EVENTS, EventType

#: Bytes an event may take in a batch body: every field at its longest, with room to spare.
BYTES_PER_EVENT = 2048


def max_body_bytes() -> int:
    """The largest batch body taken: a full batch at its longest, and never less than 256 KiB."""
    return max(262_144, BYTES_PER_EVENT * app_settings.API_MAX_BATCH_EVENTS)


class StrictCharField(serializers.CharField):
    """A string, and only a string (DRF's CharField would take 0 or true as "0" or "True")."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class OptionalDecimalField(serializers.DecimalField):
    """A decimal where an empty string means "not given" (as the schema's pattern allows)."""

    def to_internal_value(self, data):
        if isinstance(data, str) and not data.strip():
            return None
        return super().to_internal_value(data)


class LimitQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, min_value=1)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The bound is a setting: read it when the serializer is made (the schema shows it too).
        self.fields["limit"] = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=app_settings.MAX_LIMIT,
            help_text=f"How many items (1 to {app_settings.MAX_LIMIT}; default {app_settings.DEFAULT_LIMIT}).",
        )


class ListQuerySerializer(LimitQuerySerializer):
    category = serializers.RegexField(
        r"^[^\x00-\x1f\x7f]+$",  # any text without control characters ("" is the blank branch)
        trim_whitespace=False,  # Python's strip() counts some control characters as spaces
        required=False,
        allow_blank=True,
        max_length=128,
        help_text="Only items of this category (or its sub-categories); empty: all.",
    )


class RecommendationSerializer(serializers.Serializer):
    item_id = serializers.CharField()
    name = serializers.CharField()
    url = serializers.CharField(allow_blank=True)
    price = serializers.CharField(allow_null=True)
    image_url = serializers.CharField(allow_blank=True)
    score = serializers.FloatField(
        help_text="Model probability, or the fallback's own score; higher first. Recently viewed: "
        "1 for the latest view, then less (the moment itself is viewed_at)."
    )
    reason = serializers.CharField(help_text="Why this item, e.g. “Because you viewed …”.")
    sponsored = serializers.BooleanField()
    viewed_at = serializers.DateTimeField(
        allow_null=True, help_text="Recently viewed: when the shopper last viewed it; null in other lists."
    )


class RecommendationListSerializer(serializers.Serializer):
    scenario = serializers.ChoiceField(
        choices=["for_you", "similar", "bought_together", "trending", "recently_viewed"]
    )
    source = serializers.CharField(help_text="model, trending, popular, co-views, baskets or history.")
    model_version = serializers.IntegerField(allow_null=True)
    experiment_id = serializers.IntegerField(
        allow_null=True, help_text="The A/B test whose arm made this list, if any."
    )
    arm = serializers.CharField(allow_blank=True, help_text="That test's arm (empty: none).")
    list_id = serializers.CharField(
        help_text="This showing's id: send it, with the item's 0-based position, on a click event."
    )
    items = RecommendationSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class EventSerializer(serializers.Serializer):
    event = serializers.ChoiceField(choices=EventType.values)
    client_event_id = serializers.RegexField(
        r"^[A-Za-z0-9._:-]{8,64}$",
        help_text="Unique id the app gives each event (8 to 64 of A-Z a-z 0-9 . _ : -); "
        "an event sent twice is stored once.",
        error_messages={"invalid": "Must be 8 to 64 characters, each a letter, a digit or one of . _ : -"},
    )
    item_id = StrictCharField(required=False, allow_blank=True, max_length=64, default="")
    category_id = StrictCharField(required=False, allow_blank=True, max_length=128, default="")
    query = StrictCharField(required=False, allow_blank=True, max_length=255, default="")
    result_count = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=10**9)
    price = OptionalDecimalField(
        required=False, allow_null=True, max_digits=12, decimal_places=2, min_value=0
    )
    quantity = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=100_000)
    timestamp = serializers.DateTimeField(
        required=False,
        help_text="When it happened (default: now). Up to CLIENT_CLOCK_SKEW_SECONDS ahead counts as now; "
        "further ahead, or older than CLIENT_MAX_EVENT_AGE_SECONDS, is refused.",
    )
    scenario = StrictCharField(required=False, allow_blank=True, max_length=32, default="")
    model_version = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**31 - 1
    )
    list_id = serializers.RegexField(
        r"^[A-Za-z0-9_-]{8,32}$",
        required=False,
        allow_blank=True,
        default="",
        help_text="Click: the list_id of the list the item was in (as the list's response gave it).",
    )
    position = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=1000,
        help_text="Click: the item's 0-based place.",
    )

    def validate(self, data):
        if data["event"] in ITEM_EVENTS and not data.get("item_id"):
            raise serializers.ValidationError({"item_id": f"A {data['event']!r} event needs an item_id."})
        if data["event"] == EventType.SEARCH and not data.get("query", "").strip():
            raise serializers.ValidationError({"query": "A 'search' event needs a query."})
        return data


class EventBatchSerializer(serializers.Serializer):
    events = EventSerializer(many=True, allow_empty=False)

    def validate_events(self, value):
        limit = app_settings.API_MAX_BATCH_EVENTS
        if len(value) > limit:
            raise serializers.ValidationError(
                f"At most {limit} events per request; send the rest in another."
            )
        ids = [event["client_event_id"] for event in value]
        if len(set(ids)) != len(ids):
            raise serializers.ValidationError("Two events of this batch share a client_event_id.")
        return value


class EventBatchResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Events taken (an id already stored is not stored twice).")
    tracked = serializers.BooleanField(help_text="False when Do-Not-Track or missing consent kept them out.")


class SuggestQuerySerializer(serializers.Serializer):
    q = serializers.RegexField(
        r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$",
        trim_whitespace=False,
        max_length=100,
        help_text="What the shopper has typed so far (1 to 100 characters, no control characters).",
    )
    limit = serializers.IntegerField(required=False, min_value=1, max_value=20)


class SuggestionSerializer(serializers.Serializer):
    text = serializers.CharField()
    score = serializers.FloatField()
    reason = serializers.CharField(help_text="popular, your earlier search, matches what you browse, ...")
    corrected = serializers.BooleanField(help_text="Found by allowing one typo in what was typed.")


class SuggestionListSerializer(serializers.Serializer):
    query = serializers.CharField()
    suggestions = SuggestionSerializer(many=True)


class DeviceSerializer(serializers.Serializer):
    device_id = serializers.CharField(help_text="Send it as X-Device-Id on every call of this install.")


class DeviceLinkSerializer(serializers.Serializer):
    linked_events = serializers.IntegerField(help_text="Anonymous events of this device now the user's.")
