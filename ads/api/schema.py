"""The API's OpenAPI description beyond what drf-spectacular reads from the code: the
error answers of each endpoint, the idempotency headers of posting an ad and the photo
endpoint's JPEG body. Kept out of the views (registered as view extensions when the app is
ready)."""

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers

from . import idempotency
from .serializers import AdSerializer, AdWriteSerializer
from .views import REPLAYED_HEADER

# Every error but a validation error has this shape.
DETAIL = inline_serializer("ErrorDetail", {"detail": serializers.CharField()})


def detail(description: str) -> OpenApiResponse:
    return OpenApiResponse(DETAIL, description=description)


def invalid(more: str = "") -> OpenApiResponse:
    return OpenApiResponse(
        OpenApiTypes.OBJECT,
        description="Invalid input: each field's name with the list of its problems; a refused "
        f"photo is named by its number and file name, with the reason.{more}",
        examples=[
            OpenApiExample(
                "A refused photo",
                value={"photos": ["photo 2 ('charger.heic'): unsupported image format HEIF"]},
            )
        ],
    )


INVALID = invalid()
UNAUTHENTICATED = detail("No valid token or session (`WWW-Authenticate: Token`).")
NOT_FOUND = detail("No such ad among the caller's own (another seller's ad is a 404 too).")
THROTTLED = detail("Too many requests; `Retry-After` says when to try again.")

IDEMPOTENCY_KEY = OpenApiParameter(
    idempotency.HEADER,
    str,
    OpenApiParameter.HEADER,
    pattern=idempotency.PATTERN,
    description=(
        "Post at most once: a key of the client's choice, new for each ad (a UUID). A "
        "request with a key this account used before (keys are kept 24 hours, unless the "
        "server says otherwise) and the same content (fields and photos' bytes) "
        "creates nothing and gets the first answer again, with `Idempotent-Replayed: true`; "
        "with other content, a 422. Safe to retry after a lost answer or a 503. A request "
        "sent while the first one with its key is still being saved waits for it and gets "
        "its answer. A refused request (400) keeps no key. Keys are per account; "
        f"{idempotency.RULE}, or the same in double quotes."
    ),
)
REPLAYED = OpenApiParameter(
    REPLAYED_HEADER,
    str,
    OpenApiParameter.HEADER,
    enum=["true"],
    response=[201],
    description="Present when the answer is the replay of an earlier request's, "
    "made with the same `Idempotency-Key` and content: nothing was created.",
)
KEY_REUSED = detail(
    "The `Idempotency-Key` was used before by this account for a request with other "
    "content; nothing was created. Send a new key to post a new ad."
)


class AdViewSetSchema(OpenApiViewExtension):
    target_class = "ads.api.views.AdViewSet"

    def view_replacement(self):
        read = {401: UNAUTHENTICATED, 404: NOT_FOUND}
        conflict = detail(
            "The category or photos cannot change any more: the ad was published or rejected."
        )

        @extend_schema_view(
            list=extend_schema(responses={200: AdSerializer(many=True), 401: UNAUTHENTICATED}),
            create=extend_schema(
                request=AdWriteSerializer,
                parameters=[IDEMPOTENCY_KEY, REPLAYED],
                responses={
                    201: AdSerializer,
                    400: invalid(
                        f" A malformed `{idempotency.HEADER}` is named the same way; the "
                        "key is not kept, so the corrected ad may be sent again under it."
                    ),
                    401: UNAUTHENTICATED,
                    422: KEY_REUSED,
                },
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
