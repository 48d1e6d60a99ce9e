"""The model registry with the live audit of automatic decisions: the classifier's registry
knows nothing of moderators' answers (it sits below moderation), so moderation extends its
pages, as it extends the ads' pages with their decisions."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpResponseBadRequest

from classifier.admin.registry import ModelVersionAdmin
from classifier.models import ModelVersion

from .. import audit
from .audit_tables import live_audit as audit_table

AUDIT_PARAMETER = "audit_days"


class ModelVersionWithAuditAdmin(ModelVersionAdmin):
    """The registry's list shows the live error rate per category over a chosen window
    (``?audit_days=``); a version's page, that of the ads it published alone."""

    change_list_template = "admin/moderation/modelversion_change_list.html"
    readonly_fields = [*ModelVersionAdmin.readonly_fields, "live_audit"]
    fieldsets = [
        *ModelVersionAdmin.fieldsets,
        ("Live audit of the ads it published alone (all days)", {"fields": ["live_audit"]}),
    ]

    def changelist_view(self, request, extra_context=None):
        # The window is no filter of the list: taken out before the changelist reads the
        # query string (it would refuse an unknown parameter).
        request.GET = request.GET.copy()
        asked = request.GET.pop(AUDIT_PARAMETER, [None])[-1]
        try:
            days = audit.window(asked)
        except audit.BadWindow as error:
            return HttpResponseBadRequest(str(error), content_type="text/plain; charset=utf-8")
        context = {"live_audit": audit_table(days, request.path)}
        return super().changelist_view(request, context | (extra_context or {}))

    @admin.display(description="Live audit")
    def live_audit(self, obj: ModelVersion):
        return audit_table(None, "", version=obj)


admin.site.unregister(ModelVersion)
admin.site.register(ModelVersion, ModelVersionWithAuditAdmin)
