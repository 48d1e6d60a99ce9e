"""The admin index's notice when ads wait for classification and no inference worker is alive
(``templates/admin/index.html``; ``moderation.pulse.worker_notices``)."""

from django import template

from moderation import pulse

from .audit_notices import SEES_NOTICES

register = template.Library()


@register.inclusion_tag("admin/moderation/worker_notices.html", takes_context=True)
def worker_notices(context) -> dict:
    request = context.get("request")
    if request is None or not request.user.has_perm(SEES_NOTICES):
        return {"notices": []}
    return {"notices": pulse.worker_notices()}
