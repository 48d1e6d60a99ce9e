"""What the classifier's admin pages share: POST-only buttons that return to the filtered
list, and whether a training or label check is running."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpResponseRedirect, QueryDict
from django.views.decorators.http import require_POST

from ..models import LabelCheck, ModelVersion

REFRESH_SECONDS = 5


def post_view(model_admin: admin.ModelAdmin, view):
    return model_admin.admin_site.admin_view(require_POST(view))


def back_to_list(request, url: str) -> HttpResponseRedirect:
    """To ``url`` with the filters the admin had on the page the button was on."""
    filters = QueryDict(request.POST.get("_changelist_filters", ""))
    return HttpResponseRedirect(f"{url}?{filters.urlencode()}" if filters else url)


def is_running(item) -> bool:
    return item is not None and item.status in (
        ModelVersion.Status.TRAINING,
        LabelCheck.Status.RUNNING,
    )
