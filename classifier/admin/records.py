"""Read-only records: label checks and predictions."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from ..models import LabelCheck, Prediction


@admin.register(LabelCheck)
class LabelCheckAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "status",
        "folds",
        "epochs",
        "checked",
        "flagged",
        "requested_by",
        "finished_at",
        "error",
    ]
    list_filter = ["status"]
    fields = [*list_display, "thresholds", "progress"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False  # started from the training images page or find_label_errors

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["image_link", "category", "confidence_shown", "model_version", "created_at"]
    list_filter = ["category", "model_version"]
    search_fields = ["image__ad__title"]
    list_select_related = ["image__ad", "model_version"]

    def has_add_permission(self, request):
        return False  # predictions are made by the model only

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Photo")
    def image_link(self, obj):
        url = reverse("admin:ads_ad_change", args=[obj.image.ad_id])
        return format_html('<a href="{}">{}</a>', url, obj.image)

    @admin.display(description="Confidence", ordering="confidence")
    def confidence_shown(self, obj):
        return f"{obj.confidence:.1%}"
