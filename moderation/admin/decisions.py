"""Moderators' decisions, read-only: the audit trail and the provenance of training labels."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from ads.admin import AdAdmin
from ads.models import Ad

from ..models import ModerationDecision


@admin.register(ModerationDecision)
class ModerationDecisionAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "ad_link",
        "moderator",
        "action",
        "from_category",
        "to_category",
        "review_reason",
        "rejection_reason",
    ]
    list_filter = [
        "action",
        "rejection_reason",
        "review_reason",
        ("moderator", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["ad__title", "moderator__username"]
    list_select_related = ["ad", "moderator", "from_category", "to_category"]
    date_hierarchy = "created_at"
    # A decision's page shows its list columns, the note, and whether it was undone.
    fields = [*list_display, "note", "suggested_category", "took_over_from", "undone_at"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False  # decisions are made in the review queue

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the audit trail, and the provenance of training labels

    @admin.display(description="Ad", ordering="ad__title")
    def ad_link(self, decision: ModerationDecision):
        if decision.ad_id is None:
            return "(deleted by its seller)"
        url = reverse("admin:ads_ad_change", args=[decision.ad_id])
        return format_html('<a href="{}">{}</a>', url, decision.ad)


class DecisionInline(admin.TabularInline):
    """The ad's moderation history; read-only, since decisions are made in the review queue."""

    model = ModerationDecision
    fk_name = "ad"
    fields = [
        "created_at",
        "moderator",
        "action",
        "from_category",
        "to_category",
        "review_reason",
        "rejection_reason",
        "note",
        "took_over_from",
        "undone_at",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "moderation history"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset.select_related(
            "moderator", "from_category", "to_category", "took_over_from"
        )

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class AdWithHistoryAdmin(AdAdmin):
    """The ad's admin page with its moderation history below its photos: ads, the layer
    below, knows nothing of moderation, so moderation extends its page."""

    inlines = [*AdAdmin.inlines, DecisionInline]


admin.site.unregister(Ad)
admin.site.register(Ad, AdWithHistoryAdmin)
