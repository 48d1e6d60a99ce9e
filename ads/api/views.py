from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.utils.cache import patch_cache_control
from rest_framework import permissions, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from avito_mod.throttling import ExplainedThrottling

from .. import services
from ..models import Ad, AdImage, Category, IdempotencyKey
from ..throttling import UploadAddressThrottle, UploadUserThrottle
from . import idempotency
from .permissions import IsSellerOrReadOnly
from .serializers import AdSerializer, AdWriteSerializer, CategorySerializer

# On an answer replayed for a retry with the same Idempotency-Key (nothing was created).
REPLAYED_HEADER = "Idempotent-Replayed"


class Conflict(APIException):
    status_code = 409
    default_detail = "The ad cannot be changed in its current state."
    default_code = "conflict"


class IdempotencyKeyReused(APIException):
    status_code = 422
    default_detail = "This Idempotency-Key was already used for a request with other content."
    default_code = "idempotency_key_reused"


class AdPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class AdViewSet(ExplainedThrottling, viewsets.ModelViewSet):
    """A seller's ads. Create and edit with multipart forms; photos as repeated ``photos``."""

    permission_classes = [permissions.IsAuthenticated, IsSellerOrReadOnly]
    throttled_message = "Too many ads posted or photos changed from this account or address."
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    pagination_class = AdPagination
    # Ids fit a 64-bit column: a longer number is no ad (404), not a database error (500).
    lookup_value_regex = "[0-9]{1,18}"
    # PATCH only: a full PUT would have to resend every photo.
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return Ad.objects.visible_to(self.request.user).with_photos()

    def get_throttles(self):
        # Uploads only: each is up to ADS_MAX_PHOTOS photos to decode, store and classify.
        # (Throttles run after authentication and permissions, before the handler.)
        uploads = self.action == "create" or (
            self.action == "partial_update" and "photos" in self.request.data
        )
        return [UploadUserThrottle(), UploadAddressThrottle()] if uploads else []

    def get_serializer_class(self):
        if self.action in ("create", "partial_update"):
            return AdWriteSerializer
        return AdSerializer

    def create(self, request, *args, **kwargs):
        # With an Idempotency-Key, at most once per seller and key (services.Once).
        try:
            key = idempotency.parse_key(request.headers.get(idempotency.HEADER))
        except idempotency.MalformedKey as error:
            raise ValidationError({idempotency.HEADER: [str(error)]}) from error
        if key is None:
            return super().create(request, *args, **kwargs)
        fields = AdWriteSerializer.Meta.fields
        once = services.Once(key, idempotency.fingerprint(request.data, fields), self._answer)
        try:
            return self._create_once(once)
        except services.KeyReused as error:
            raise IdempotencyKeyReused(str(error)) from error

    def _create_once(self, once: services.Once) -> Response:
        earlier = services.earlier_answer(self.request.user, once)
        if earlier is None:
            # A new key: validated and created as without one. A refusal (400) keeps no key,
            # so the seller may correct the ad and send it again under the same key.
            serializer = self.get_serializer(data=self.request.data)
            serializer.is_valid(raise_exception=True)
            try:
                self.perform_create(serializer, once=once)
            except services.AlreadyPosted as error:
                earlier = error.earlier
            else:
                return _respond(once.kept, replayed=False)
        services.resume_classification(earlier)
        return _respond(earlier, replayed=True)

    def _answer(self, ad: Ad) -> dict:
        return AdSerializer(ad, context=self.get_serializer_context()).data

    def perform_create(self, serializer, once: services.Once | None = None) -> None:
        serializer.save(seller=self.request.user, once=once)

    def perform_update(self, serializer) -> None:
        try:
            serializer.save()
        except services.AdNotEditable as error:
            raise Conflict(str(error)) from error

    def perform_destroy(self, ad: Ad) -> None:
        services.delete_ad(ad)

    @action(detail=True, url_path=r"photos/(?P<photo_id>[0-9]{1,18})", url_name="photo")
    def photo(self, request, pk: str, photo_id: str, format: str | None = None):
        """The stored photo, to the ad's seller and staff only; there is no public URL."""
        visible = Ad.objects.visible_to(request.user)
        image = get_object_or_404(AdImage, pk=photo_id, ad_id=pk, ad__in=visible)
        try:
            handle = image.file.open("rb")
        except FileNotFoundError:
            raise Http404("the photo file is missing from storage") from None
        response = FileResponse(handle, content_type="image/jpeg")
        # Stored photos never change (a replaced photo gets a new id); only the viewer caches.
        patch_cache_control(response, private=True, max_age=3600)
        return response


def _respond(kept: IdempotencyKey, replayed: bool) -> Response:
    """The answer kept with a key: sent the first time, and again to every retry."""
    response = Response(kept.answer(), status=kept.status_code)
    if replayed:
        response[REPLAYED_HEADER] = "true"
    return response


class CategoryViewSet(viewsets.ReadOnlyModelViewSet):
    """The active categories a seller can choose from."""

    queryset = Category.objects.active()
    serializer_class = CategorySerializer
    lookup_field = "slug"
    permission_classes = [permissions.AllowAny]
