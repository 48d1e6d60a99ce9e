"""Adding example photos to a category: several photo files, or zips of photos, in one
form (``classifier.services.import_uploads`` reads and stores them as ``import_images``
does), next to how many training photos each active category has and how many training
needs. Reached from the training images' list and from a category's page."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from ads.models import Category
from ads.photos import MIN_SIDE

from .. import services

ADD_PHOTOS = "classifier.add_trainingimage"
# A message lists this many names at most: a bad zip may refuse hundreds of entries.
NAMES_SHOWN = 20


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class PhotosField(forms.Field):
    """The files chosen, as a list. Not ``FileField``: one empty or odd file must not
    refuse the others; each is judged by the import, and reported by name."""

    widget = MultipleFileInput(attrs={"accept": "image/*,.zip,application/zip"})

    def to_python(self, data):
        if not data:
            return []
        return list(data) if isinstance(data, (list, tuple)) else [data]


class CategoryField(forms.ModelChoiceField):
    def label_from_instance(self, category: Category) -> str:
        return category.name if category.active else f"{category.name} (inactive)"


class ExamplePhotosForm(forms.Form):
    category = CategoryField(Category.objects.all())
    photos = PhotosField(
        help_text="Photos (JPEG, PNG, WebP, GIF) and zips of photos; several at once."
    )


def add_photos_view(model_admin, request):
    """GET: the form (``?category=<id>`` chooses the category) and the photos per category.
    POST: import the photos sent, then back here with what was kept and what was not."""
    if not request.user.has_perm(ADD_PHOTOS):
        raise PermissionDenied
    if request.method == "POST":
        form = ExamplePhotosForm(request.POST, request.FILES)
        if form.is_valid():
            category = form.cleaned_data["category"]
            _import(model_admin, request, category, form.cleaned_data["photos"])
            url = reverse("admin:classifier_trainingimage_add_photos")
            return HttpResponseRedirect(f"{url}?category={category.pk}")
    else:
        form = ExamplePhotosForm(initial={"category": request.GET.get("category")})
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Add example photos",
        "opts": model_admin.opts,
        "form": form,
        "per_category": services.photos_per_category(),
        "inactive": Category.objects.filter(active=False),
        **_limits(),
    }
    return TemplateResponse(request, "admin/classifier/trainingimage/add_photos.html", context)


def _limits() -> dict:
    mib = 1024 * 1024
    return {
        "max_files": settings.CLASSIFIER_PHOTO_UPLOAD_MAX_FILES,
        "max_mib": settings.CLASSIFIER_PHOTO_UPLOAD_MAX_BYTES // mib,
        "max_request_files": settings.DATA_UPLOAD_MAX_NUMBER_FILES,
        "max_photo_mib": settings.ADS_MAX_PHOTO_BYTES // mib,
        "min_side": MIN_SIDE,
        "evaluation_percent": settings.CLASSIFIER_EVALUATION_PERCENT,
        "min_photos": settings.CLASSIFIER_MIN_PHOTOS_PER_CATEGORY,
    }


def _import(model_admin, request, category: Category, photos) -> None:
    say = model_admin.message_user
    try:
        report = services.import_uploads(category, photos)
    except services.ClassifierError as error:
        say(request, f"Nothing added: {error}.", messages.ERROR)
        return
    added = report.imported[category.slug]
    level = messages.SUCCESS if added else messages.WARNING
    say(request, f"{added} example photo{'s' * (added != 1)} added to {category}.", level)
    if report.unreadable:
        refused = [f"{name}: {reason}" for name, reason in report.unreadable]
        say(request, f"Refused {len(refused)}: {_listed(refused)}", messages.ERROR)
    if report.duplicate_names:
        duplicates = [f"{name} ({what})" for name, what in report.duplicate_names]
        say(request, f"Skipped {len(duplicates)} duplicates: {_listed(duplicates)}", messages.INFO)
    _say_readiness(model_admin, request, category)


def _say_readiness(model_admin, request, category: Category) -> None:
    if not category.active:
        model_admin.message_user(
            request,
            f"{category} is inactive: its photos are kept, and trained on once it is active.",
            messages.WARNING,
        )
        return
    row = next(r for r in services.photos_per_category() if r.category.pk == category.pk)
    if row.too_few:
        model_admin.message_user(
            request,
            f"{category} has {row.train} training photos; training needs at least "
            f"{row.needed} (those held out for evaluation do not count).",
            messages.WARNING,
        )


def _listed(items: list[str]) -> str:
    shown = "; ".join(items[:NAMES_SHOWN])
    more = len(items) - NAMES_SHOWN
    return f"{shown}; and {more} more." if more > 0 else f"{shown}."
