from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from rest_framework.exceptions import APIException
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from avito_mod.throttling import ExplainedThrottling

from .models import TrainingImage
from .serializers import QuickCheckRequestSerializer, QuickCheckSerializer
from .services import ClassifierError
from .services.quick_check import quick_check
from .throttling import QuickCheckAddressThrottle, QuickCheckUserThrottle


class ModelUnavailable(APIException):
    status_code = 503
    default_detail = "The classifier is unavailable; try again later."
    default_code = "model_unavailable"


class QuickCheckView(ExplainedThrottling, APIView):
    """Check one photo against the chosen category before the ad is posted.

    Answers with the predicted category, its confidence, whether it matches the chosen
    one and, when it does not, the category to switch to. Nothing is stored.
    """

    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [QuickCheckUserThrottle, QuickCheckAddressThrottle]
    throttled_message = "Too many quick checks from this account or address."
    serializer_class = QuickCheckRequestSerializer

    def post(self, request):
        asked = QuickCheckRequestSerializer(data=request.data)
        asked.is_valid(raise_exception=True)
        try:
            result = quick_check(asked.validated_data["image"], asked.validated_data["category"])
        except ClassifierError as error:
            raise ModelUnavailable(str(error)) from error
        return Response(QuickCheckSerializer(result).data)


@staff_member_required
def training_image(request, pk: int):
    """Training photos are served to those who may see the training set (admins; not
    moderators, who are staff too), never from a public media URL."""
    if not request.user.has_perm("classifier.view_trainingimage"):
        raise PermissionDenied
    image = get_object_or_404(TrainingImage, pk=pk)
    try:
        handle = image.file.open("rb")
    except FileNotFoundError:
        raise Http404("the image file is missing from storage") from None
    return FileResponse(handle, content_type=_content_type(image.file.name))


def _content_type(name: str) -> str:
    suffix = name.rsplit(".", 1)[-1].lower()
    return {
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "png": "image/png",
        "webp": "image/webp",
        "gif": "image/gif",
    }.get(suffix, "application/octet-stream")
