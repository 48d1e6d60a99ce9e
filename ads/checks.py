"""System checks: upload limits that would refuse every ad; keys that would not be kept."""

from django.conf import settings
from django.core.checks import Error, Warning, register


@register("ads")
def upload_limits_check(app_configs, **kwargs):
    errors = []
    max_files = settings.DATA_UPLOAD_MAX_NUMBER_FILES
    if not 1 <= settings.ADS_MAX_PHOTOS <= (max_files or settings.ADS_MAX_PHOTOS):
        errors.append(
            Error(
                f"ADS_MAX_PHOTOS is {settings.ADS_MAX_PHOTOS}; it must be at least 1 and at "
                f"most DATA_UPLOAD_MAX_NUMBER_FILES ({max_files}).",
                id="ads.E001",
            )
        )
    if settings.ADS_MAX_PHOTO_BYTES < 1:
        errors.append(
            Error(
                f"ADS_MAX_PHOTO_BYTES is {settings.ADS_MAX_PHOTO_BYTES}; every photo would be "
                "refused.",
                id="ads.E002",
            )
        )
    if settings.ADS_MAX_AD_PHOTO_BYTES < settings.ADS_MAX_PHOTO_BYTES:
        errors.append(
            Warning(
                f"ADS_MAX_AD_PHOTO_BYTES ({settings.ADS_MAX_AD_PHOTO_BYTES}) is less than "
                f"ADS_MAX_PHOTO_BYTES ({settings.ADS_MAX_PHOTO_BYTES}): an ad of one photo of "
                "the size allowed would be refused.",
                id="ads.W001",
            )
        )
    if settings.ADS_IDEMPOTENCY_KEEP_HOURS < 1:
        errors.append(
            Error(
                f"ADS_IDEMPOTENCY_KEEP_HOURS is {settings.ADS_IDEMPOTENCY_KEEP_HOURS}; keys would "
                "be forgotten at once, and a retried post would create its ad twice.",
                id="ads.E003",
            )
        )
    return errors
