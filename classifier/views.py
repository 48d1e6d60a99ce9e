from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404

from .models import TrainingImage


@staff_member_required
def training_image(request, pk: int):
    """Training photos are served to staff only, never from a public media URL."""
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
