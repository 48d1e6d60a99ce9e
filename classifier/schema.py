"""The quick check's OpenAPI description: its request, answer and errors (see ads.api.schema)."""

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.utils import OpenApiExample, extend_schema

from ads.api.schema import INVALID, THROTTLED, UNAUTHENTICATED, detail

from .serializers import QuickCheckRequestSerializer, QuickCheckSerializer


class QuickCheckViewSchema(OpenApiViewExtension):
    target_class = "classifier.views.QuickCheckView"

    def view_replacement(self):
        @extend_schema(
            summary="Check one photo against a category before posting the ad",
            request={"multipart/form-data": QuickCheckRequestSerializer},
            responses={
                200: QuickCheckSerializer,
                400: INVALID,
                401: UNAUTHENTICATED,
                429: THROTTLED,
                503: detail("No usable model is active; nothing was checked."),
            },
            examples=[
                OpenApiExample(
                    "A laptop photo under Phones",
                    response_only=True,
                    value={
                        "class": "laptop",
                        "confidence": 0.97,
                        "categories_matched": False,
                        "confident": True,
                        "none_of_these": False,
                        "sure": True,
                        "category": {"slug": "phone", "name": "Phones"},
                        "suggested_category": {"slug": "laptop", "name": "Laptops"},
                        "switch_to": {"slug": "laptop", "name": "Laptops"},
                        "model_version": 1,
                    },
                ),
                OpenApiExample(
                    "A phone photo under Phones the model is not sure of",
                    response_only=True,
                    value={
                        "class": "laptop",
                        "confidence": 0.66,
                        "categories_matched": False,
                        "confident": False,
                        "none_of_these": False,
                        "sure": False,
                        "category": {"slug": "phone", "name": "Phones"},
                        "suggested_category": {"slug": "laptop", "name": "Laptops"},
                        "switch_to": None,
                        "model_version": 1,
                    },
                ),
            ],
        )
        class Fixed(self.target_class):
            pass

        return Fixed
