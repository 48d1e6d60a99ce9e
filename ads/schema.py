"""The API's OpenAPI description beyond what drf-spectacular reads from the code: the
error answers of each endpoint and the photo endpoint's JPEG body. Kept out of the views
(registered as view extensions when the app is ready)."""

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers

from .serializers import AdSerializer, AdWriteSerializer

# Every error but a validation error has this shape.
DETAIL = inline_serializer("ErrorDetail", {"detail": serializers.CharField()})


def detail(description: str) -> OpenApiResponse:
    return OpenApiResponse(DETAIL, description=description)


INVALID = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="Invalid input: each field's name with the list of its problems; a refused "
    "photo is named by its number and file name, with the reason.",
    examples=[
        OpenApiExample(
            "A refused photo",
            value={"photos": ["photo 2 ('charger.heic'): unsupported image format HEIF"]},
        )
    ],
)
UNAUTHENTICATED = detail("No valid token or session (`WWW-Authenticate: Token`).")
NOT_FOUND = detail("No such ad among the caller's own (another seller's ad is a 404 too).")
THROTTLED = detail("Too many requests; `Retry-After` says when to try again.")


class AdViewSetSchema(OpenApiViewExtension):
    target_class = "ads.views.AdViewSet"

    def view_replacement(self):
        read = {401: UNAUTHENTICATED, 404: NOT_FOUND}
        conflict = detail(
            "The category or photos cannot change any more: the ad was published or rejected."
        )

        @extend_schema_view(
            list=extend_schema(responses={200: AdSerializer(many=True), 401: UNAUTHENTICATED}),
            create=extend_schema(
                request=AdWriteSerializer,
                responses={201: AdSerializer, 400: INVALID, 401: UNAUTHENTICATED},
            ),
            retrieve=extend_schema(responses={200: AdSerializer, **read}),
            partial_update=extend_schema(
                request=AdWriteSerializer,
                responses={200: AdSerializer, 400: INVALID, **read, 409: conflict},
            ),
            destroy=extend_schema(responses={204: None, **read}),
            photo=extend_schema(
                summary="One stored photo of an ad (to its seller and staff only)",
                responses={
                    (200, "image/jpeg"): OpenApiResponse(
                        OpenApiTypes.BINARY, description="The re-encoded JPEG, no metadata."
                    ),
                    **read,
                },
            ),
        )
        class Fixed(self.target_class):
            pass

        return Fixed
