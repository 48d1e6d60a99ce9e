"""Each category's state, publishing or review-only, and what it still needs: on the model
registry (per version) and on the categories page (for the active version).

The categories page belongs to ``ads``, which never imports the classifier: its admin is
extended here, as moderation extends the ads' page with their decisions.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from ads.admin import CategoryAdmin
from ads.models import Category

from ..models import ModelVersion
from ..services.evidence import CategoryState, category_states
from .comparison import html_table


def states_table(version: ModelVersion):
    """One row per class of ``version``: its state, photos, errors among the photos it
    decided alone (95 % interval), and what it still needs."""
    states = category_states(version)
    if not states:
        return "—"
    label = dict(Category.objects.values_list("slug", "name"))
    rows = [
        (
            label.get(slug, slug),
            state.state,
            state.counts.n,
            state.error_shown if state.source else "—",
            state.source or "no evidence",
            state.needs or "—",
        )
        for slug, state in states.items()
    ]
    headers = [
        "category",
        "state",
        "photos",
        "errors among those decided alone (95 %)",
        "from",
        "still needs",
    ]
    return format_html("{}{}", _rule(), html_table(headers, rows))


def _rule():
    needed = settings.CLASSIFIER_MIN_EVALUATION_PHOTOS
    if not needed:
        return mark_safe(
            "<p>The evidence rule is off (CLASSIFIER_MIN_EVALUATION_PHOTOS=0): every "
            "category the version knows publishes alone.</p>"
        )
    return format_html(
        "<p>A category publishes alone with at least {} evaluation photos, unless its errors "
        "among those decided alone as it are shown to pass {} (CLASSIFIER_TARGET_RISK: the "
        "95 % interval's lower end above it); until then its ads go to moderators "
        "(<em>review-only</em>).</p>",
        needed,
        f"{settings.CLASSIFIER_TARGET_RISK:.1%}",
    )


def active_states() -> dict[str, CategoryState]:
    active = ModelVersion.objects.active()
    return category_states(active) if active is not None else {}


class CategoryWithEvidenceAdmin(CategoryAdmin):
    """The categories page, with whether each category publishes alone under the active
    version and what it still needs."""

    list_display = [*CategoryAdmin.list_display, "publishing_state"]
    readonly_fields = ["publishing_state"]

    @admin.display(description="Publishes alone (active model)")
    def publishing_state(self, obj):
        state = active_states().get(obj.slug)
        if state is None:
            return "not known by the active model (its ads go to review)"
        if not state.needed:
            return str(state)
        if state.publishing:
            return format_html("publishing<br><small>{}</small>", state.error_shown)
        return format_html("<strong>review-only</strong><br><small>needs {}</small>", state.needs)


admin.site.unregister(Category)
admin.site.register(Category, CategoryWithEvidenceAdmin)
