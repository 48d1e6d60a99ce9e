"""The review queue's list: its filters, and the change list that skips the ads other
moderators hold and holds the top ones for the moderator looking at it."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Exists, OuterRef

from accounts.roles import DECIDE_AD
from ads.models import Ad, Category
from classifier.models import Prediction

from .. import services


class SellerCategoryFilter(admin.RelatedFieldListFilter):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.title = "seller's category"


class PredictedCategoryFilter(admin.SimpleListFilter):
    """Ads with at least one photo the model predicted as the chosen category."""

    title = "predicted category"
    parameter_name = "predicted"

    def lookups(self, request, model_admin):
        return [(category.slug, category.name) for category in Category.objects.all()]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        predicted = Prediction.objects.filter(image__ad=OuterRef("pk"), category=self.value())
        return queryset.filter(Exists(predicted))


class KindFilter(admin.SimpleListFilter):
    """Ads waiting for a decision, or ads the model published that moderators are asked to
    check (the live audit, ``moderation.audit``)."""

    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [("review", "Waiting for a decision"), ("audit", "Audit: published automatically")]

    def queryset(self, request, queryset):
        if self.value() == "review":
            return queryset.filter(status=Ad.Status.NEEDS_REVIEW)
        if self.value() == "audit":
            return queryset.filter(status=Ad.Status.PUBLISHED)
        return queryset


class ReviewQueueChangeList(ChangeList):
    claimed: set[int] = set()  # the ads this page holds for its moderator

    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        if not request.user.has_perm(DECIDE_AD):
            return queryset
        # A team on one queue: skip the ads others hold, hold the top ones for this
        # moderator. Those lost to someone claiming them this very moment are left out too.
        queryset = queryset.exclude(pk__in=services.held_by_others(request.user))
        if exclude_parameters is not None:  # the filters' counts: nothing to hold
            return queryset
        top = list(queryset.values_list("pk", flat=True)[: settings.MODERATION_CLAIM_TOP])
        self.claimed = services.claim(request.user, top)
        lost = set(top) - self.claimed
        return queryset.exclude(pk__in=lost) if lost else queryset

    def get_results(self, request) -> None:
        # A top-up asks for the few rows it needs (?rows=): fewer to render and to parse.
        self.list_per_page = getattr(request, "queue_rows", self.list_per_page)
        super().get_results(request)
        # With no search or filter, the ads left out are those others hold: Django's search
        # bar would say "1 result (2 total)" beside "1 ad in review", two counts and no why.
        if not (self.query or self.has_active_filters):
            self.full_result_count = self.result_count
        # Every row offers the same categories: one query for the page, not one per row.
        categories = list(Category.objects.active())
        for ad in self.result_list:
            ad.category_choices = categories
