"""Claims on ads in review: who holds which ads; an admin releases one by deleting it."""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

from ..models import ReviewClaim


@admin.register(ReviewClaim)
class ReviewClaimAdmin(admin.ModelAdmin):
    """Who holds which ads in review; an admin releases a claim by deleting it."""

    list_display = ["ad", "moderator", "expires_at", "active"]
    list_select_related = ["ad", "moderator"]
    list_filter = [("moderator", admin.RelatedOnlyFieldListFilter)]
    readonly_fields = ["ad", "moderator", "expires_at"]

    def has_add_permission(self, request) -> bool:
        return False  # claims are taken by opening the queue

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(boolean=True, description="Active")
    def active(self, claim: ReviewClaim) -> bool:
        return claim.expires_at > timezone.now()
