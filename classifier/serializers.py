from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from ads.api.serializers import ActiveCategoryField, CategorySerializer
from ads.uploads import read_photo


class QuickCheckRequestSerializer(serializers.Serializer):
    # Empty files pass here so that the photo rules (ads.uploads) name them like any bad photo.
    image = serializers.FileField(
        allow_empty_file=True,
        help_text="One photo: JPEG, PNG, WebP or GIF, at most ADS_MAX_PHOTO_BYTES.",
    )
    category = ActiveCategoryField(help_text="The slug of the category the seller chose.")

    def validate_image(self, upload):
        try:
            return read_photo(upload)  # decoded by content; the declared type is not trusted
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.messages) from None


class QuickCheckSerializer(serializers.Serializer):
    """The original prototype's answer (``class``, ``categories_matched``), extended."""

    predicted_class = serializers.CharField(
        source="predicted",
        allow_null=True,
        help_text="The predicted category's slug; null when the photo shows none of the "
        "categories.",
    )
    confidence = serializers.FloatField(help_text="The model's probability for that category.")
    categories_matched = serializers.BooleanField(
        source="matched",
        allow_null=True,
        help_text="Whether the photo matches the chosen category; null when the model "
        "does not know that category and cannot check it.",
    )
    confident = serializers.BooleanField(
        help_text="The confidence reaches the model's threshold: after posting, the ad "
        "would be decided without a moderator."
    )
    none_of_these = serializers.BooleanField(
        help_text="The photo shows none of the categories: after posting, a moderator "
        "looks at the ad. (Always false with a model version that cannot tell.)"
    )
    sure = serializers.BooleanField(
        help_text="The answer is certain enough to tell the seller as such: a category "
        "when `confident`; none of these when no category reaches the threshold. When "
        "false, say that the model is not sure and that a moderator will look."
    )
    category = CategorySerializer(help_text="The category the seller chose.")
    suggested_category = CategorySerializer(
        source="suggested",
        allow_null=True,
        help_text="The predicted category, when it is not the chosen one (and is active).",
    )
    switch_to = CategorySerializer(
        allow_null=True,
        help_text="The category to offer a one-click switch to: the suggested category "
        "when the mismatch is confident; null otherwise (an unsure mismatch goes to a "
        "moderator as it is).",
    )
    model_version = serializers.IntegerField(source="version.number")

    def get_fields(self):
        fields = super().get_fields()
        # "class" is the prototype's key, and a Python keyword.
        fields["class"] = fields.pop("predicted_class")
        return fields
