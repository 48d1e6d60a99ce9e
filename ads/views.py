from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.utils.cache import patch_cache_control
from rest_framework import permissions, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser

from avito_mod.throttling import ExplainedThrottling

from . import services
from .models import Ad, AdImage, Category
from .permissions import IsSellerOrReadOnly
from .serializers import AdSerializer, AdWriteSerializer, CategorySerializer
from .throttling import UploadAddressThrottle, UploadUserThrottle


class Conflict(APIException):
    status_code = 409
    default_detail = "The ad cannot be changed in its current state."
    default_code = "conflict"


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

    def perform_create(self, serializer) -> None:
        serializer.save(seller=self.request.user)

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


class CategoryViewSet(viewsets.ReadOnlyModelViewSet):
    """The active categories a seller can choose from."""

    queryset = Category.objects.active()
    serializer_class = CategorySerializer
    lookup_field = "slug"
    permission_classes = [permissions.AllowAny]
