from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import slug_re
from django.urls import reverse
from rest_framework import serializers
from rest_framework.settings import api_settings

from ads.verdicts import is_confident, is_sure, verdict_of

from .. import services
from ..models import Ad, AdImage, Category


class ActiveCategoryField(serializers.SlugRelatedField):
    """An active category, given by its slug."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("error_messages", {})
        kwargs["error_messages"].setdefault(
            "does_not_exist", "there is no active category with slug '{value}'"
        )
        super().__init__(slug_field="slug", queryset=Category.objects.active(), **kwargs)

    def to_internal_value(self, data):
        # Not a slug, not a category: answered without a query (PostgreSQL refuses a NUL
        # byte in a query parameter with an error, which would be a 500).
        if not isinstance(data, str) or not slug_re.fullmatch(data):
            self.fail("does_not_exist", slug_name=self.slug_field, value=str(data)[:50])
        return super().to_internal_value(data)


class CategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["slug", "name"]


class PredictionSerializer(serializers.Serializer):
    category = serializers.CharField()
    confidence = serializers.FloatField()
    none_of_these = serializers.BooleanField(
        allow_null=True,
        help_text="The photo shows none of the categories; null when the model version "
        "cannot tell.",
    )
    confident = serializers.SerializerMethodField(
        help_text="The confidence reaches the version's threshold (the routing's test)."
    )
    sure = serializers.SerializerMethodField(
        help_text="The verdict is told as certain: a category when confident, none of "
        "these when no category is; when false the seller reads that the model is not sure."
    )
    model_version = serializers.IntegerField(source="model_version.number")

    def get_confident(self, prediction) -> bool:
        return is_confident(prediction.confidence, prediction.model_version.threshold)

    def get_sure(self, prediction) -> bool:
        return is_sure(verdict_of(prediction), prediction.model_version.threshold)


class PhotoSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    prediction = serializers.SerializerMethodField()

    class Meta:
        model = AdImage
        fields = ["id", "width", "height", "url", "prediction"]

    def get_url(self, image: AdImage) -> str:
        path = reverse("ads:ad-photo", args=[image.ad_id, image.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_prediction(self, image: AdImage) -> dict | None:
        prediction = image.latest_prediction()
        return PredictionSerializer(prediction).data if prediction else None


class AdSerializer(serializers.ModelSerializer):
    """An ad as its seller (or staff) sees it; everything the pipeline sets is read-only."""

    category = CategorySerializer(read_only=True)
    suggested_category = CategorySerializer(read_only=True)
    photos = PhotoSerializer(source="images", many=True, read_only=True)

    class Meta:
        model = Ad
        fields = [
            "id",
            "title",
            "description",
            "price",
            "category",
            "status",
            "review_reason",
            "suggested_category",
            "rejection_reason",
            "rejection_note",
            "photos",
            "created_at",
            "updated_at",
            "decided_at",
        ]
        read_only_fields = fields


class AdWriteSerializer(serializers.ModelSerializer):
    """What a seller may send: the ad's own fields and its photos (repeated ``photos``)."""

    category = ActiveCategoryField()
    # Empty files pass here so that the upload validation names them like any bad photo.
    photos = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True), write_only=True, required=False
    )

    class Meta:
        model = Ad
        fields = ["title", "description", "price", "category", "photos"]

    def create(self, validated_data: dict) -> Ad:
        validated_data.setdefault("photos", [])
        return _validating(services.create_ad, **validated_data)

    def update(self, ad: Ad, validated_data: dict) -> Ad:
        return _validating(services.update_ad, ad, **validated_data)

    def to_representation(self, ad: Ad) -> dict:
        return AdSerializer(ad, context=self.context).data


def _validating(workflow, *args, **kwargs):
    """Run a service; its Django ``ValidationError`` becomes the API's 400."""
    try:
        return workflow(*args, **kwargs)
    except DjangoValidationError as error:
        detail = serializers.as_serializer_error(error)
        if "__all__" in detail:
            detail[api_settings.NON_FIELD_ERRORS_KEY] = detail.pop("__all__")
        raise serializers.ValidationError(detail) from error
