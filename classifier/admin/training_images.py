"""Training images: the training and evaluation sets per category, exclusion, relabelling,
suspected label errors and the label check that finds them."""

from __future__ import annotations

from functools import partial

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_http_methods

from .. import services
from ..models import LabelCheck, ModelVersion, TrainingImage
from ..services import retraining, shipped
from . import example_photos
from .common import REFRESH_SECONDS, back_to_list, is_running, post_view


class SuspectedFilter(admin.SimpleListFilter):
    title = "suspected label error"
    parameter_name = "suspected"

    def lookups(self, request, model_admin):
        return [("yes", "Suspected"), ("no", "Not suspected")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(suspected_category__isnull=False)
        if self.value() == "no":
            return queryset.filter(suspected_category__isnull=True)
        return queryset


@admin.register(TrainingImage)
class TrainingImageAdmin(admin.ModelAdmin):
    list_display = [
        "thumbnail",
        "category",
        "suspicion",
        "source",
        "subset",
        "use",
        "original_name",
        "size",
        "labelled_at",
        "fix",
    ]
    list_filter = [SuspectedFilter, "category", "not_product", "source", "subset", "excluded"]
    search_fields = ["original_name", "sha256", "phash"]
    list_select_related = ["category", "suspected_category"]
    readonly_fields = [
        "preview",
        "decision",
        "subset",
        "labelled_at",
        "excluded",
        "excluded_by",
        "excluded_at",
        "exclusion_reason",
        "relabelled_from",
        "relabelled_by",
        "relabelled_at",
        "suspected_category",
        "suspected_confidence",
        "suspected_margin",
        "suspected_at",
        "sha256",
        "phash",
        "width",
        "height",
        "file",
        "created_at",
    ]
    fields = ["preview", "category", "not_product", "source", "original_name", *readonly_fields[1:]]
    actions = ["exclude_selected", "include_selected", "relabel_selected"]
    list_per_page = 50

    def has_add_permission(self, request):
        # Images come in through import_images, "Add example photos" (several files or
        # zips at once, validated like ads' photos) and moderators' decisions.
        return False

    def get_ordering(self, request):
        if request.GET.get(SuspectedFilter.parameter_name) == "yes":
            return ["-suspected_margin", "-id"]  # the most glaring first
        return super().get_ordering(request)

    def save_model(self, request, obj, form, change):
        # A label changed by hand is an admin's relabel: say who and from what.
        if change and "category" in form.changed_data and obj.category_id:
            obj.relabelled_from_id = form.initial.get("category")
            obj.relabelled_by, obj.relabelled_at = request.user, timezone.now()
            obj.labelled_at = obj.relabelled_at
            obj.clear_suspicion(save=False)
        super().save_model(request, obj, form, change)

    # --- Columns

    @admin.display(description="Photo")
    def thumbnail(self, obj):
        return format_html(
            '<img src="{}" alt="" style="max-height:60px;max-width:80px">', _image_url(obj)
        )

    @admin.display(description="Photo")
    def preview(self, obj):
        return format_html('<img src="{}" alt="" style="max-width:320px">', _image_url(obj))

    @admin.display(description="Size")
    def size(self, obj):
        return f"{obj.width}×{obj.height}"

    @admin.display(description="Looks like", ordering="-suspected_margin")
    def suspicion(self, obj):
        if obj.suspected_category_id is None:
            return "—"
        return f"{obj.suspected_category} ({obj.suspected_confidence:.0%})"

    @admin.display(description="Used", ordering="excluded")
    def use(self, obj):
        if obj.excluded:
            return format_html("excluded<br><small>{}</small>", obj.exclusion_reason)
        return "yes"

    @admin.display(description="Fix")
    def fix(self, obj):
        if obj.suspected_category_id is None or obj.excluded or not getattr(obj, "can_fix", 0):
            return ""
        form = f"fix-{obj.pk}"
        return format_html(
            '<button type="submit" class="button" form="{}" formaction="{}">Relabel as {}'
            '</button> <button type="submit" class="button" form="{}" formaction="{}">'
            "Exclude</button>",
            form,
            reverse("admin:classifier_trainingimage_relabel", args=[obj.pk]),
            obj.suspected_category,
            form,
            reverse("admin:classifier_trainingimage_exclude", args=[obj.pk]),
        )

    # --- The page: the per-category summary, the label check, one-click fixes

    def changelist_view(self, request, extra_context=None):
        check = LabelCheck.objects.first()
        context = {
            "summary": services.training_set_summary(),
            "shipped_photos": shipped.summary(),
            "active_version": ModelVersion.objects.active(),
            "label_check": check,
            "can_check_labels": request.user.has_perm(retraining.TRAIN),
            "can_add_photos": request.user.has_perm(example_photos.ADD_PHOTOS),
            "too_few": [row for row in services.photos_per_category() if row.too_few],
            "refresh_seconds": REFRESH_SECONDS if is_running(check) else None,
        }
        response = super().changelist_view(request, context | (extra_context or {}))
        if hasattr(response, "context_data") and "cl" in response.context_data:
            can_fix = self.has_change_permission(request)
            for image in response.context_data["cl"].result_list:
                image.can_fix = can_fix
        return response

    def get_urls(self):
        own = [
            path(
                "<int:object_id>/relabel-suspected/",
                post_view(self, self.relabel_view),
                name="classifier_trainingimage_relabel",
            ),
            path(
                "<int:object_id>/exclude/",
                post_view(self, self.exclude_view),
                name="classifier_trainingimage_exclude",
            ),
            path(
                "check-labels/",
                post_view(self, self.check_labels_view),
                name="classifier_trainingimage_check_labels",
            ),
            path(
                "add-photos/",
                self.admin_site.admin_view(
                    require_http_methods(["GET", "HEAD", "POST"])(
                        partial(example_photos.add_photos_view, self)
                    )
                ),
                name="classifier_trainingimage_add_photos",
            ),
        ]
        return own + super().get_urls()

    def _changelist(self, request) -> HttpResponseRedirect:
        return back_to_list(request, reverse("admin:classifier_trainingimage_changelist"))

    def relabel_view(self, request, object_id: int):
        if not self.has_change_permission(request):
            raise PermissionDenied
        image = get_object_or_404(TrainingImage, pk=object_id)
        self._relabel(request, [image])
        return self._changelist(request)

    def exclude_view(self, request, object_id: int):
        if not self.has_change_permission(request):
            raise PermissionDenied
        image = get_object_or_404(TrainingImage, pk=object_id)
        self._exclude(request, [image])
        return self._changelist(request)

    def check_labels_view(self, request):
        if not request.user.has_perm(retraining.TRAIN):
            raise PermissionDenied
        try:
            check = retraining.request_label_check(request.user)
        except services.ClassifierError as error:
            self.message_user(request, f"Nothing started: {error}", messages.ERROR)
        else:
            self.message_user(
                request,
                f"{check} is queued on the training worker ({check.folds} trainings); the "
                "suspected label errors will be listed here when it is done.",
                messages.SUCCESS,
            )
        return self._changelist(request)

    @admin.action(description="Exclude from training and evaluation", permissions=["change"])
    def exclude_selected(self, request, queryset):
        self._exclude(request, list(queryset))

    @admin.action(description="Include again", permissions=["change"])
    def include_selected(self, request, queryset):
        count = services.include_images(list(queryset))
        self.message_user(request, f"{count} images included again.", messages.SUCCESS)

    @admin.action(description="Relabel as the suspected category", permissions=["change"])
    def relabel_selected(self, request, queryset):
        self._relabel(request, list(queryset.select_related("category", "suspected_category")))

    def _relabel(self, request, images):
        relabelled = services.relabel_as_suspected(images, request.user)
        if not relabelled:
            self.message_user(
                request, "No suspected label among them; nothing done.", messages.ERROR
            )
            return
        said = ", ".join(
            f"{image} (was {image.relabelled_from.slug if image.relabelled_from else '—'})"
            for image in relabelled
        )
        self.message_user(request, f"Relabelled: {said}.", messages.SUCCESS)

    def _exclude(self, request, images):
        reason = "suspected label error" if any(i.suspected_category_id for i in images) else ""
        count = services.exclude_images(images, request.user, reason or f"by {request.user}")
        self.message_user(request, f"{count} images excluded from training.", messages.SUCCESS)


def _image_url(obj: TrainingImage) -> str:
    return reverse("classifier:training-image", args=[obj.pk])
